//! The store-wide flock(2) on `<dir>/lock`.

use std::fs::File;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use super::fsutil::open_private;
use crate::error::IpamError;

/// Name of the lock file (the same one host-local uses).
pub(crate) const LOCK_FILE: &str = "lock";

/// A held lock; released when dropped.
pub(crate) type LockGuard = Flock<File>;

/// Takes the lock of the store in `dir`. The lock file is opened anew on
/// every call so that each caller has its own open file description.
pub(crate) fn lock(dir: &Path, exclusive: bool) -> Result<LockGuard, IpamError> {
    let path = dir.join(LOCK_FILE);
    let mut file = open_private(&path).map_err(IpamError::io("opening", &path))?;
    let arg = if exclusive {
        FlockArg::LockExclusive
    } else {
        FlockArg::LockShared
    };
    loop {
        match Flock::lock(file, arg) {
            Ok(guard) => return Ok(guard),
            Err((f, Errno::EINTR)) => file = f,
            Err((_, source)) => return Err(IpamError::Lock { path, source }),
        }
    }
}
