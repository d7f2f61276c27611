//! CNI specification types for podnet.
//!
//! Covers the spec versions 0.3.0, 0.3.1, 0.4.0, 1.0.0 and 1.1.0:
//! version negotiation ([`Version`]), the error object ([`CniError`]),
//! the plugin environment ([`Env`], [`CniArgs`]) and the result object
//! ([`CniResult`]), converted to and from every version's JSON shape.

pub mod args;
pub mod env;
pub mod error;
pub mod result;
pub mod version;
mod wire;

pub use args::{CniArgs, K8S_ARGS};
pub use env::{validate_container_id, validate_ifname, Command, Env};
pub use error::{codes, CniError};
pub use result::{CniResult, Dns, Interface, IpConfig, Route};
pub use version::{parse_version_field, version_reply, Version};

#[cfg(test)]
mod tests;
