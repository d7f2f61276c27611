//! The crate's error type and its mapping to CNI error codes.

use std::net::IpAddr;
use std::path::PathBuf;

/// CNI well-known code: invalid environment variables.
const CNI_INVALID_ENV: u32 = 4;
/// CNI well-known code: I/O failure.
const CNI_IO: u32 = 5;
/// CNI well-known code: invalid network config.
const CNI_INVALID_CONFIG: u32 = 7;
/// Plugin-specific code: no free address left in a range set.
const CNI_EXHAUSTED: u32 = 100;
/// Plugin-specific code: a requested address is already in use.
const CNI_IN_USE: u32 = 101;

/// Everything that can go wrong in IPAM configuration or the address store.
#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    /// The IPAM configuration (or the runtime `ipRanges`) is invalid.
    #[error("invalid IPAM configuration: {0}")]
    InvalidConfig(String),

    /// The network name cannot be used as a single directory name.
    #[error("invalid network name {0:?}: must be one safe path component")]
    InvalidNetworkName(String),

    /// The container ID or interface name cannot be stored.
    #[error("invalid attachment: {0}")]
    InvalidAttachment(String),

    /// A file-system operation on the store or on resolv.conf failed.
    #[error("{op} {path}")]
    Io {
        /// What was being done, e.g. "creating".
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// Taking the store lock failed.
    #[error("locking {path}")]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The errno returned by flock(2).
        #[source]
        source: nix::errno::Errno,
    },

    /// An attachment record on disk could not be decoded.
    #[error("corrupt attachment record {path}")]
    CorruptRecord {
        /// The record file.
        path: PathBuf,
        /// The decoding error.
        #[source]
        source: serde_json::Error,
    },

    /// An attachment record could not be encoded.
    #[error("encoding attachment record")]
    Encode(#[source] serde_json::Error),

    /// A range set has no free address left.
    #[error("no IP addresses available in range set {index} ({set})")]
    Exhausted {
        /// Index of the range set in the resolved configuration.
        index: usize,
        /// Human-readable description of the range set.
        set: String,
    },

    /// A requested (static) address is reserved by another attachment.
    #[error("requested IP address {0} is already in use")]
    AddressInUse(IpAddr),

    /// A requested (static) address lies in none of the range sets.
    #[error("requested IP address {0} is outside every configured range")]
    OutOfRange(IpAddr),

    /// A requested (static) address is in a range but may not be handed out.
    #[error("requested IP address {ip} cannot be assigned: {reason}")]
    NotAssignable {
        /// The requested address.
        ip: IpAddr,
        /// Why it cannot be assigned.
        reason: &'static str,
    },

    /// The attachment already holds a reservation (ADD without DEL).
    #[error("container {container_id} interface {ifname} already has addresses")]
    AlreadyAllocated {
        /// The container ID of the attachment.
        container_id: String,
        /// The interface name of the attachment.
        ifname: String,
    },

    /// The store no longer reserves an address recorded for the attachment.
    #[error("address {ip} of container {container_id} interface {ifname} is not reserved for it")]
    NotReserved {
        /// The address whose IP file is missing or names someone else.
        ip: IpAddr,
        /// The container ID of the attachment.
        container_id: String,
        /// The interface name of the attachment.
        ifname: String,
    },
}

impl IpamError {
    /// The CNI error code to report for this error.
    pub fn cni_code(&self) -> u32 {
        match self {
            Self::InvalidConfig(_)
            | Self::InvalidNetworkName(_)
            | Self::OutOfRange(_)
            | Self::NotAssignable { .. } => CNI_INVALID_CONFIG,
            Self::InvalidAttachment(_) => CNI_INVALID_ENV,
            Self::Io { .. }
            | Self::Lock { .. }
            | Self::CorruptRecord { .. }
            | Self::Encode(_)
            | Self::NotReserved { .. } => CNI_IO,
            Self::Exhausted { .. } => CNI_EXHAUSTED,
            Self::AddressInUse(_) | Self::AlreadyAllocated { .. } => CNI_IN_USE,
        }
    }

    /// Shorthand for an [`IpamError::InvalidConfig`].
    pub(crate) fn config(msg: impl Into<String>) -> Self {
        Self::InvalidConfig(msg.into())
    }

    /// Builds a closure that wraps an `io::Error` for `path`.
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { op, path, source }
    }
}
