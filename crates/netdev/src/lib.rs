//! Network namespaces and netlink work for podnet: veth pairs, bridges, addresses, routes and
//! sysctls, over a small synchronous rtnetlink client built on `netlink-packet-route`.
//!
//! The CNI plugin is a short-lived process, so this crate is synchronous: one request, one
//! answer, no runtime to start. Every socket is bound to the namespace it was opened in, so
//! the plugin opens one per namespace and never has to switch back and forth per request.

mod addr;
mod error;
mod link;
mod neigh;
mod nl;
mod ns;
mod route;
mod sysctl;
pub mod testing;

pub use error::NetdevError;
pub use link::{format_mac, BridgeSpec, Link, PortConfig, VethSpec};
pub use neigh::{Neighbour, VxlanSpec};
pub use nl::Netlink;
pub use ns::{NetNs, NsGuard};
pub use route::{RouteSpec, PODNET_ROUTE_PROTO};
pub use sysctl::{sysctl_read, sysctl_write};

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, NetdevError>;
