//! Supported CNI spec versions and the VERSION command reply.

use std::fmt;
use std::str::FromStr;

use serde_json::{json, Value};

use crate::error::{codes, CniError};

/// A CNI spec version this crate speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Version {
    /// Spec 0.3.0 (rich result type, chaining).
    V0_3_0,
    /// Spec 0.3.1 (typo fixes only).
    V0_3_1,
    /// Spec 0.4.0 (CHECK, prevResult on DEL).
    V0_4_0,
    /// Spec 1.0.0 (`version` dropped from ips).
    V1_0_0,
    /// Spec 1.1.0 (STATUS, GC, new result fields).
    V1_1_0,
}

impl Version {
    /// Every supported version, oldest first.
    pub const ALL: [Version; 5] = [
        Version::V0_3_0,
        Version::V0_3_1,
        Version::V0_4_0,
        Version::V1_0_0,
        Version::V1_1_0,
    ];

    /// The newest supported version.
    pub const LATEST: Version = Version::V1_1_0;

    /// Whether the CHECK command exists in this version (0.4.0 and later).
    pub fn has_check(self) -> bool {
        self >= Version::V0_4_0
    }

    /// Whether the STATUS and GC commands exist in this version (1.1.0 and later).
    pub fn has_status_gc(self) -> bool {
        self >= Version::V1_1_0
    }

    /// The version string, e.g. `"1.1.0"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V0_3_0 => "0.3.0",
            Version::V0_3_1 => "0.3.1",
            Version::V0_4_0 => "0.4.0",
            Version::V1_0_0 => "1.0.0",
            Version::V1_1_0 => "1.1.0",
        }
    }

    /// Whether ips carry the `"version": "4"|"6"` field (before 1.0.0).
    pub fn has_ip_version_field(self) -> bool {
        self < Version::V1_0_0
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Version {
    type Err = CniError;

    /// Parses an exact version string; anything unsupported is code 1.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Version::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| incompatible(s))
    }
}

fn incompatible(found: &str) -> CniError {
    let supported: Vec<&str> = Version::ALL.iter().map(|v| v.as_str()).collect();
    CniError::new(
        codes::INCOMPATIBLE_VERSION,
        "incompatible CNI versions",
        format!(
            "config is {:?}, plugin supports [{}]",
            found,
            supported.join(", ")
        ),
    )
}

/// Output of the VERSION command.
///
/// `cniVersion` echoes `config_version` when it is supported, else `"1.1.0"`.
pub fn version_reply(config_version: Option<&str>) -> Value {
    let echoed = config_version
        .and_then(|s| s.parse::<Version>().ok())
        .unwrap_or(Version::LATEST);
    let supported: Vec<&str> = Version::ALL.iter().map(|v| v.as_str()).collect();
    json!({ "cniVersion": echoed.as_str(), "supportedVersions": supported })
}

/// Reads `cniVersion` from a network configuration.
///
/// Missing counts as the spec's implicit "0.1.0" (unsupported, code 1);
/// a non-string value (or a configuration that is not an object) is code 6;
/// an unsupported string is code 1.
pub fn parse_version_field(conf: &Value) -> Result<Version, CniError> {
    let Some(obj) = conf.as_object() else {
        return Err(CniError::msg(
            codes::DECODE,
            "network configuration must be a JSON object",
        ));
    };
    match obj.get("cniVersion") {
        None | Some(Value::Null) => Err(incompatible("0.1.0")),
        Some(Value::String(s)) => s.parse(),
        Some(_) => Err(CniError::msg(codes::DECODE, "cniVersion must be a string")),
    }
}
