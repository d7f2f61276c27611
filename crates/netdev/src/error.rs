use std::io;
use std::path::PathBuf;

/// Everything that can go wrong talking to the kernel.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetdevError {
    /// A network namespace file could not be opened.
    #[error("cannot open network namespace {path}")]
    OpenNs {
        /// The namespace path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// `setns(2)` failed.
    #[error("cannot enter network namespace {path}")]
    SetNs {
        /// The namespace path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: nix::Error,
    },
    /// The netlink socket could not be created or used.
    #[error("netlink socket: {0}")]
    Socket(#[source] io::Error),
    /// The kernel refused a request.
    #[error("{op}: {source}")]
    Kernel {
        /// What was asked, e.g. `create veth veth1234`.
        op: String,
        /// The errno the kernel answered with.
        #[source]
        source: io::Error,
    },
    /// The kernel's answer could not be decoded.
    #[error("cannot decode netlink answer to {op}: {detail}")]
    Decode {
        /// What was asked.
        op: String,
        /// The decoder's message.
        detail: String,
    },
    /// A link that must exist does not.
    #[error("link {0} not found")]
    NoSuchLink(String),
    /// A sysctl could not be read or written.
    #[error("sysctl {path}")]
    Sysctl {
        /// The /proc/sys path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

impl NetdevError {
    /// The kernel's errno, when the kernel refused the request.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetdevError::Kernel { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    /// True when the kernel said the object already exists (EEXIST).
    pub fn is_exists(&self) -> bool {
        self.errno() == Some(libc::EEXIST)
    }

    /// True when the kernel said the object does not exist (ENODEV, ENOENT, ESRCH, EADDRNOTAVAIL).
    pub fn is_not_found(&self) -> bool {
        matches!(self, NetdevError::NoSuchLink(_))
            || matches!(
                self.errno(),
                Some(libc::ENODEV | libc::ENOENT | libc::ESRCH | libc::EADDRNOTAVAIL)
            )
    }
}
