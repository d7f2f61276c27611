//! The CNI result: one model (the 1.1.0 shape) for every spec version.

use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::Value;

use crate::error::CniError;
use crate::version::Version;
use crate::wire;

/// The result of ADD (and the `prevResult` of later commands).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniResult {
    /// Interfaces created or used (host and sandbox side).
    pub interfaces: Vec<Interface>,
    /// IP addresses assigned.
    pub ips: Vec<IpConfig>,
    /// Routes installed.
    pub routes: Vec<Route>,
    /// DNS settings.
    pub dns: Dns,
}

/// One network interface in a result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Interface {
    /// Interface name.
    pub name: String,
    /// Hardware address, when L2 addresses matter.
    pub mac: Option<String>,
    /// MTU (1.1.0 only).
    pub mtu: Option<u32>,
    /// Netns path for sandbox interfaces; `None` for host interfaces.
    pub sandbox: Option<String>,
    /// vhost-user socket path (1.1.0 only).
    pub socket_path: Option<String>,
    /// PCI address of the device (1.1.0 only).
    pub pci_id: Option<String>,
}

/// One assigned address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpConfig {
    /// Address with its prefix length, e.g. `10.1.0.5/24`.
    pub address: IpNet,
    /// Default gateway for the subnet, if any.
    pub gateway: Option<IpAddr>,
    /// Index into [`CniResult::interfaces`].
    pub interface: Option<usize>,
}

/// One route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Destination network.
    pub dst: IpNet,
    /// Next hop; `None` means the plugin's default gateway.
    pub gw: Option<IpAddr>,
    /// Route MTU (1.1.0 only).
    pub mtu: Option<u32>,
    /// TCP advertised MSS (1.1.0 only).
    pub advmss: Option<u32>,
    /// Route priority/metric (1.1.0 only).
    pub priority: Option<u32>,
    /// Routing table ID (1.1.0 only).
    pub table: Option<u32>,
    /// Route scope (1.1.0 only).
    pub scope: Option<u8>,
}

/// DNS information.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dns {
    /// Name servers, in priority order.
    pub nameservers: Vec<String>,
    /// Local domain for short host names.
    pub domain: Option<String>,
    /// Search domains, in priority order.
    pub search: Vec<String>,
    /// Resolver options.
    pub options: Vec<String>,
}

impl Dns {
    /// Whether no DNS field is set.
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty()
            && self.domain.is_none()
            && self.search.is_empty()
            && self.options.is_empty()
    }

    /// Fills each empty field of `self` from `other`.
    pub fn fill_from(&mut self, other: Dns) {
        if self.nameservers.is_empty() {
            self.nameservers = other.nameservers;
        }
        if self.domain.is_none() {
            self.domain = other.domain;
        }
        if self.search.is_empty() {
            self.search = other.search;
        }
        if self.options.is_empty() {
            self.options = other.options;
        }
    }
}

impl Route {
    /// A route to `dst` via `gw` with no 1.1.0 attributes.
    pub fn new(dst: IpNet, gw: Option<IpAddr>) -> Self {
        Route {
            dst,
            gw,
            mtu: None,
            advmss: None,
            priority: None,
            table: None,
            scope: None,
        }
    }
}

impl CniResult {
    /// The result as `v`'s JSON object, `cniVersion` included.
    pub fn to_value(&self, v: Version) -> Value {
        wire::encode(self, v)
    }

    /// Parses a result given in `version`'s format (code 6 on a bad shape).
    pub fn from_value(v: &Value, version: Version) -> Result<Self, CniError> {
        wire::decode(v, version)
    }

    /// Chains `other` after `self`: interfaces, ips (with interface indexes
    /// shifted past `self`'s interfaces) and routes are appended; empty DNS
    /// fields of `self` are filled from `other`.
    pub fn append(&mut self, other: CniResult) {
        let offset = self.interfaces.len();
        self.interfaces.extend(other.interfaces);
        self.ips.extend(other.ips.into_iter().map(|mut ip| {
            ip.interface = ip.interface.map(|i| i.saturating_add(offset));
            ip
        }));
        self.routes.extend(other.routes);
        self.dns.fill_from(other.dns);
    }
}
