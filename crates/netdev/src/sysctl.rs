use std::path::Path;

use crate::{NetdevError, Result};

/// Writes a sysctl under `/proc/sys` in the calling thread's network namespace,
/// e.g. `sysctl_write("net/ipv4/ip_forward", "1")`. Skips the write when the value is set.
pub fn sysctl_write(key: &str, value: &str) -> Result<()> {
    let path = Path::new("/proc/sys").join(key);
    let err = |source| NetdevError::Sysctl {
        path: path.clone(),
        source,
    };
    if std::fs::read_to_string(&path).map_err(err)?.trim() == value {
        return Ok(());
    }
    std::fs::write(&path, value).map_err(err)
}

/// Reads a sysctl under `/proc/sys` in the calling thread's network namespace.
pub fn sysctl_read(key: &str) -> Result<String> {
    let path = Path::new("/proc/sys").join(key);
    std::fs::read_to_string(&path)
        .map(|s| s.trim().to_string())
        .map_err(|source| NetdevError::Sysctl { path, source })
}
