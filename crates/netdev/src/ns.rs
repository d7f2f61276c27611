use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::sched::{setns, CloneFlags};

use crate::{NetdevError, Result};

/// An open network namespace (a file descriptor on it).
#[derive(Debug)]
pub struct NetNs {
    file: File,
    path: PathBuf,
}

impl NetNs {
    /// Opens the namespace at `path` (`/var/run/netns/NAME`, `/proc/PID/ns/net`, …).
    pub fn open(path: impl AsRef<Path>) -> Result<NetNs> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|source| NetdevError::OpenNs {
            path: path.clone(),
            source,
        })?;
        Ok(NetNs { file, path })
    }

    /// The namespace of the calling thread.
    pub fn current() -> Result<NetNs> {
        NetNs::open(format!("/proc/self/task/{}/ns/net", nix::unistd::gettid()))
    }

    /// The path it was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The raw descriptor, for `IFLA_NET_NS_FD`.
    pub fn raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// True when both are the same namespace (same nsfs inode).
    pub fn same_as(&self, other: &NetNs) -> Result<bool> {
        let a = self.identity()?;
        let b = other.identity()?;
        Ok(a == b)
    }

    fn identity(&self) -> Result<(u64, u64)> {
        let meta = self.file.metadata().map_err(|source| NetdevError::OpenNs {
            path: self.path.clone(),
            source,
        })?;
        Ok((meta.dev(), meta.ino()))
    }

    /// Switches the calling thread into this namespace until the guard drops.
    pub fn enter(&self) -> Result<NsGuard> {
        let back = NetNs::current()?;
        setns(self.file.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|source| {
            NetdevError::SetNs {
                path: self.path.clone(),
                source,
            }
        })?;
        Ok(NsGuard { back })
    }

    /// Runs `f` with the calling thread inside this namespace.
    pub fn run<T>(&self, f: impl FnOnce() -> T) -> Result<T> {
        let _guard = self.enter()?;
        Ok(f())
    }
}

/// Returns the thread to its previous namespace on drop.
#[derive(Debug)]
pub struct NsGuard {
    back: NetNs,
}

impl Drop for NsGuard {
    fn drop(&mut self) {
        if let Err(e) = setns(self.back.file.as_fd(), CloneFlags::CLONE_NEWNET) {
            // Carrying on in the wrong namespace would program the wrong node: stop here.
            eprintln!("podnet: cannot return to {}: {e}", self.back.path.display());
            std::process::abort();
        }
    }
}
