//! Helpers shared by the integration tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::IpAddr;

use podnet_ipam::{AttachmentKey, IpamConfig, ResolvedRangeSet, Store};
use tempfile::TempDir;

/// Parses an `ipam` JSON object.
pub fn config(json: &str) -> IpamConfig {
    serde_json::from_str(json).unwrap()
}

/// Resolves the range sets of an `ipam` JSON object.
pub fn sets(json: &str) -> Vec<ResolvedRangeSet> {
    config(json).range_sets(None).unwrap()
}

/// A single IPv4 range set over `subnet`.
pub fn v4_sets(subnet: &str) -> Vec<ResolvedRangeSet> {
    sets(&format!(
        r#"{{"type":"host-local","ranges":[[{{"subnet":"{subnet}"}}]]}}"#
    ))
}

pub fn key(id: &str) -> AttachmentKey {
    AttachmentKey::new(id, "eth0")
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A fresh store in a temporary data directory.
pub fn store() -> (TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), "net1").unwrap();
    (dir, store)
}

/// Allocates for `id` and returns the single address.
pub fn alloc_one(store: &Store, sets: &[ResolvedRangeSet], id: &str) -> String {
    let got = store.allocate(&key(id), sets, &[]).unwrap();
    assert_eq!(got.len(), 1);
    got[0].address.addr().to_string()
}
