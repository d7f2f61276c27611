//! host-local style IPAM for podnet.
//!
//! [`IpamConfig`] is the `ipam` section of a network configuration;
//! [`IpamConfig::range_sets`] validates it into [`ResolvedRangeSet`]s.
//! A [`Store`] keeps the reservations of one network on disk, in a layout
//! compatible with the host-local plugin plus one record per attachment,
//! which makes release and lookup independent of the number of
//! reservations and keeps every interrupted allocation recoverable.

#![forbid(unsafe_code)]

mod addr;
mod config;
mod dns;
mod error;
mod resolve;
mod store;

pub use config::{DnsConfig, IpamConfig, Range, RangeSet, RouteSpec, DEFAULT_DATA_DIR};
pub use dns::parse_resolv_conf;
pub use error::IpamError;
pub use resolve::{ResolvedRange, ResolvedRangeSet};
pub use store::{Allocation, AttachmentKey, Record, Store};
