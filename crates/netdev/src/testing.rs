//! Throwaway network namespaces for tests, benchmarks and the sandbox: named uniquely per
//! process and per call, removed on drop (also when a test panics).

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::{NetNs, NetdevError, Result};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A named network namespace under `/run/netns`, deleted on drop.
#[derive(Debug)]
pub struct TestNs {
    name: String,
    ns: NetNs,
}

impl TestNs {
    /// Creates `pn<tag>-<pid>-<n>` with its loopback up.
    pub fn new(tag: &str) -> Result<TestNs> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("pn{tag}-{}-{n}", std::process::id());
        run_ip(&["netns", "add", &name])?;
        let ns = NetNs::open(format!("/run/netns/{name}"))?;
        let guard = TestNs { name, ns };
        run_ip(&["-n", &guard.name, "link", "set", "lo", "up"])?;
        Ok(guard)
    }

    /// The namespace's name (for `ip -n`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its path under /run/netns.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.name))
    }

    /// The open namespace.
    pub fn ns(&self) -> &NetNs {
        &self.ns
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        let _ = run_ip(&["netns", "del", &self.name]);
    }
}

fn run_ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(NetdevError::Socket)?;
    if out.status.success() {
        return Ok(());
    }
    Err(NetdevError::Socket(std::io::Error::other(format!(
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    ))))
}
