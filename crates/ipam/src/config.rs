//! The IPAM section of a network configuration (host-local compatible).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Where the store lives when `dataDir` is not configured.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/cni/networks";

/// A set of ranges of one IP family; each attachment gets one address per set.
pub type RangeSet = Vec<Range>;

/// The `ipam` object of the network configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IpamConfig {
    /// The IPAM plugin type (e.g. `host-local`).
    #[serde(rename = "type")]
    pub kind: String,
    /// The range sets to allocate from; one address per set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ranges: Vec<RangeSet>,
    /// Routes to return with the allocated addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteSpec>,
    /// Root directory of the store; defaults to [`DEFAULT_DATA_DIR`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// A resolv.conf file to return as the DNS configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolv_conf: Option<PathBuf>,
    /// DNS configuration to return.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<DnsConfig>,
    /// Legacy single-range shorthand: the subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<IpNet>,
    /// Legacy single-range shorthand: the first address to hand out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range_start: Option<IpAddr>,
    /// Legacy single-range shorthand: the last address to hand out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range_end: Option<IpAddr>,
    /// Legacy single-range shorthand: the gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
}

impl IpamConfig {
    /// The configured data directory, or [`DEFAULT_DATA_DIR`].
    pub fn data_dir_or_default(&self) -> &Path {
        self.data_dir
            .as_deref()
            .unwrap_or_else(|| Path::new(DEFAULT_DATA_DIR))
    }

    /// Whether any of the legacy single-range fields is set.
    pub(crate) fn has_shorthand(&self) -> bool {
        self.subnet.is_some()
            || self.range_start.is_some()
            || self.range_end.is_some()
            || self.gateway.is_some()
    }
}

/// One contiguous range of addresses inside a subnet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Range {
    /// The subnet; host bits are ignored.
    pub subnet: IpNet,
    /// First address to hand out (inclusive); defaults to network + 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range_start: Option<IpAddr>,
    /// Last address to hand out (inclusive); defaults to the last host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range_end: Option<IpAddr>,
    /// The gateway; defaults to network + 1 and is never handed out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
}

/// A route to return with the allocated addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    /// The destination.
    pub dst: IpNet,
    /// The next hop; the interface's gateway when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
}

/// DNS settings as in the CNI result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DnsConfig {
    /// Name server addresses, in order of preference.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// The local domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Search domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    /// Resolver options.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}
