//! JSON wire format of results for each spec version.
//!
//! Field presence follows the Go reference library (`types/040`,
//! `types/100`): empty lists and unset fields are left out, except that
//! 0.3.x/0.4.0 always carry a `dns` object (possibly `{}`).

mod decode;
mod encode;

pub(crate) use decode::decode;
pub(crate) use encode::encode;

use crate::version::Version;

/// Whether `v` has the 1.1.0 additions (interface mtu/socketPath/pciID,
/// route mtu/advmss/priority/table/scope).
fn has_v11_fields(v: Version) -> bool {
    v >= Version::V1_1_0
}
