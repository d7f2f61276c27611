use std::io;

use netlink_packet_core::DecodeError;

/// Everything that can go wrong talking to ctnetlink.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConntrackError {
    /// The netlink socket could not be created or used.
    #[error("ctnetlink socket")]
    Socket(#[source] io::Error),
    /// The kernel refused a request.
    #[error("{op}")]
    Kernel {
        /// What was asked, e.g. `dump conntrack table`.
        op: String,
        /// The errno the kernel answered with.
        #[source]
        source: io::Error,
    },
    /// A kernel message could not be decoded.
    #[error("cannot decode ctnetlink answer")]
    Decode(#[source] DecodeError),
    /// A conntrack entry lacked an attribute every entry has.
    #[error("conntrack entry without {0}")]
    Missing(&'static str),
    /// Some deletions failed; the others went through.
    #[error("deleted {deleted} conntrack entries, {} deletions failed", failures.len())]
    Incomplete {
        /// How many entries were deleted.
        deleted: usize,
        /// Why each failed deletion failed (never empty).
        failures: Vec<ConntrackError>,
    },
}

impl ConntrackError {
    /// The kernel's errno, when the kernel refused the request.
    pub fn errno(&self) -> Option<i32> {
        match self {
            ConntrackError::Kernel { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}
