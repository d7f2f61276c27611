//! The CNI error object and the well-known error codes.

use serde_json::Value;

/// Error codes: 0-99 are reserved by the CNI spec, 100 and up are podnet's own.
pub mod codes {
    /// Incompatible CNI version.
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    /// Unsupported field in the network configuration (or an unknown `CNI_ARGS` key).
    pub const UNSUPPORTED_FIELD: u32 = 2;
    /// Container unknown or does not exist.
    pub const UNKNOWN_CONTAINER: u32 = 3;
    /// Invalid necessary environment variables, such as `CNI_COMMAND` or `CNI_CONTAINERID`.
    pub const INVALID_ENV: u32 = 4;
    /// I/O failure, e.g. reading the network configuration from stdin failed.
    pub const IO_FAILURE: u32 = 5;
    /// Failed to decode content, e.g. unmarshalling the configuration or a version string.
    pub const DECODE: u32 = 6;
    /// Invalid network configuration: a validation of the configuration did not pass.
    pub const INVALID_CONFIG: u32 = 7;
    /// Try again later: a transient condition the runtime should retry after.
    pub const TRY_AGAIN: u32 = 11;
    /// STATUS: the plugin is not available, i.e. it cannot service ADD requests.
    pub const NOT_AVAILABLE: u32 = 50;
    /// STATUS: the plugin is not available, and existing containers in the
    /// network may have limited connectivity.
    pub const NOT_AVAILABLE_EXISTING: u32 = 51;
    /// podnet: the IP address pool has no free address left.
    pub const POOL_EXHAUSTED: u32 = 100;
    /// podnet: the requested address is already allocated to another container.
    pub const ADDRESS_IN_USE: u32 = 101;
    /// podnet: a netlink operation failed.
    pub const NETLINK: u32 = 102;
    /// podnet: a delegated (e.g. IPAM) plugin failed.
    pub const DELEGATE: u32 = 103;
    /// podnet: an internal error without a more specific code.
    pub const INTERNAL: u32 = 199;
}

/// A CNI error: printed on stdout as the error object, with a non-zero exit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{msg}{}", details_suffix(.details))]
pub struct CniError {
    /// Numeric error code (see [`codes`]).
    pub code: u32,
    /// Short error message.
    pub msg: String,
    /// Longer explanation; may be empty.
    pub details: String,
}

fn details_suffix(details: &str) -> String {
    if details.is_empty() {
        String::new()
    } else {
        format!("; {details}")
    }
}

impl CniError {
    /// Builds an error from a code, a short message and (possibly empty) details.
    pub fn new(code: u32, msg: impl Into<String>, details: impl Into<String>) -> Self {
        Self {
            code,
            msg: msg.into(),
            details: details.into(),
        }
    }

    /// Builds an error with a code and a message and no details.
    pub fn msg(code: u32, msg: impl Into<String>) -> Self {
        Self::new(code, msg, "")
    }

    /// Renders the spec's error object as one JSON object:
    /// `{"cniVersion","code","msg","details"}`, `details` left out when empty.
    pub fn to_json(&self, version: &str) -> String {
        let mut out = format!(
            "{{\"cniVersion\":{},\"code\":{},\"msg\":{}",
            Value::from(version),
            self.code,
            Value::from(self.msg.as_str())
        );
        if !self.details.is_empty() {
            out.push_str(",\"details\":");
            out.push_str(&Value::from(self.details.as_str()).to_string());
        }
        out.push('}');
        out
    }
}

impl From<serde_json::Error> for CniError {
    /// JSON errors become code 6 (decoding failure).
    fn from(err: serde_json::Error) -> Self {
        Self::new(codes::DECODE, "failed to decode JSON", err.to_string())
    }
}
