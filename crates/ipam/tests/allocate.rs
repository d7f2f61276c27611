#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;

use common::{alloc_one, ip, key, sets, store, v4_sets};
use podnet_ipam::{AttachmentKey, IpamError};

#[test]
fn round_robin_without_immediate_reuse() {
    let (_tmp, store) = store();
    let s = v4_sets("10.0.0.0/29");
    assert_eq!(alloc_one(&store, &s, "a"), "10.0.0.2");
    assert_eq!(alloc_one(&store, &s, "b"), "10.0.0.3");
    store.release(&key("a")).unwrap();
    assert_eq!(alloc_one(&store, &s, "c"), "10.0.0.4");
    assert_eq!(alloc_one(&store, &s, "d"), "10.0.0.5");
    assert_eq!(alloc_one(&store, &s, "e"), "10.0.0.6");
    // Wraps around to the freed address, skipping the gateway and network.
    assert_eq!(alloc_one(&store, &s, "f"), "10.0.0.2");
}

#[test]
fn reopening_keeps_the_cursor() {
    let (tmp, store) = store();
    let s = v4_sets("10.0.0.0/24");
    alloc_one(&store, &s, "a");
    store.release(&key("a")).unwrap();
    let again = podnet_ipam::Store::open(tmp.path(), "net1").unwrap();
    assert_eq!(alloc_one(&again, &s, "b"), "10.0.0.3");
}

#[test]
fn reserved_addresses_never_handed_out() {
    let (_tmp, store) = store();
    let s = v4_sets("10.0.0.0/29");
    let got: BTreeSet<String> = (0..5)
        .map(|i| alloc_one(&store, &s, &format!("c{i}")))
        .collect();
    let want: BTreeSet<String> = (2..=6).map(|i| format!("10.0.0.{i}")).collect();
    assert_eq!(got, want);
    let e = store.allocate(&key("full"), &s, &[]).unwrap_err();
    assert!(matches!(e, IpamError::Exhausted { index: 0, .. }), "{e}");
    assert_eq!(e.cni_code(), 100);
    assert!(store.exhausted(&s).unwrap());
}

#[test]
fn explicit_range_covering_network_and_broadcast() {
    let (_tmp, store) = store();
    let s = sets(
        r#"{"type":"host-local","ranges":[[{"subnet":"10.0.0.0/30","rangeStart":"10.0.0.0",
            "rangeEnd":"10.0.0.3","gateway":"10.0.0.2"}]]}"#,
    );
    assert_eq!(alloc_one(&store, &s, "a"), "10.0.0.1");
    assert!(store.exhausted(&s).unwrap());
}

#[test]
fn gateway_of_another_range_is_skipped() {
    let (_tmp, store) = store();
    let s = sets(
        r#"{"type":"host-local","ranges":[[
            {"subnet":"10.0.0.0/24","rangeStart":"10.0.0.5","rangeEnd":"10.0.0.6"},
            {"subnet":"10.0.0.0/24","rangeStart":"10.0.0.7","rangeEnd":"10.0.0.8","gateway":"10.0.0.5"}]]}"#,
    );
    assert_eq!(alloc_one(&store, &s, "a"), "10.0.0.6");
    assert_eq!(alloc_one(&store, &s, "b"), "10.0.0.7");
}

#[test]
fn dual_stack_gets_one_address_per_set() {
    let (_tmp, store) = store();
    let s = sets(
        r#"{"type":"host-local","ranges":[[{"subnet":"10.0.0.0/24"}],[{"subnet":"fd00::/120"}]]}"#,
    );
    let got = store.allocate(&key("a"), &s, &[]).unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].address.to_string(), "10.0.0.2/24");
    assert_eq!(got[0].gateway, Some(ip("10.0.0.1")));
    assert_eq!(got[1].address.to_string(), "fd00::2/120");
    assert_eq!(got[1].gateway, Some(ip("fd00::1")));
    let rec = store.get(&key("a")).unwrap().unwrap();
    assert_eq!(rec.ips, [ip("10.0.0.2"), ip("fd00::2")]);
    assert!(store.dir().join("fd00::2").is_file());
}

#[test]
fn static_addresses() {
    let (_tmp, store) = store();
    let s = sets(
        r#"{"type":"host-local","ranges":[[{"subnet":"10.0.0.0/24"}],[{"subnet":"fd00::/120"}]]}"#,
    );
    let got = store.allocate(&key("a"), &s, &[ip("fd00::50")]).unwrap();
    assert_eq!(got[0].address.to_string(), "10.0.0.2/24");
    assert_eq!(got[1].address.to_string(), "fd00::50/120");
    // The cursor follows the static address, as in host-local.
    let got = store.allocate(&key("b"), &s, &[ip("10.0.0.77")]).unwrap();
    assert_eq!(got[0].address.to_string(), "10.0.0.77/24");
    assert_eq!(got[1].address.to_string(), "fd00::51/120");

    let in_use = store
        .allocate(&key("c"), &s, &[ip("10.0.0.77")])
        .unwrap_err();
    assert!(matches!(in_use, IpamError::AddressInUse(_)), "{in_use}");
    assert_eq!(in_use.cni_code(), 101);
    let outside = store
        .allocate(&key("c"), &s, &[ip("10.9.0.1")])
        .unwrap_err();
    assert!(matches!(outside, IpamError::OutOfRange(_)), "{outside}");
    assert_eq!(outside.cni_code(), 7);
    let gw = store
        .allocate(&key("c"), &s, &[ip("10.0.0.1")])
        .unwrap_err();
    assert!(matches!(gw, IpamError::NotAssignable { .. }), "{gw}");
    let two = store
        .allocate(&key("c"), &s, &[ip("10.0.0.8"), ip("10.0.0.9")])
        .unwrap_err();
    assert!(matches!(two, IpamError::NotAssignable { .. }), "{two}");
    // Failed attempts leave nothing behind.
    assert!(store.get(&key("c")).unwrap().is_none());
    assert_eq!(alloc_one_v4(&store, &s, "c"), "10.0.0.78");
}

fn alloc_one_v4(
    store: &podnet_ipam::Store,
    s: &[podnet_ipam::ResolvedRangeSet],
    id: &str,
) -> String {
    store.allocate(&key(id), s, &[]).unwrap()[0]
        .address
        .addr()
        .to_string()
}

#[test]
fn ipv4_mapped_request_is_canonicalized() {
    let (_tmp, store) = store();
    let s = v4_sets("10.0.0.0/24");
    let got = store
        .allocate(&key("a"), &s, &[ip("::ffff:10.0.0.9")])
        .unwrap();
    assert_eq!(got[0].address.to_string(), "10.0.0.9/24");
}

#[test]
fn second_add_for_same_attachment_fails() {
    let (_tmp, store) = store();
    let s = v4_sets("10.0.0.0/24");
    alloc_one(&store, &s, "a");
    let e = store.allocate(&key("a"), &s, &[]).unwrap_err();
    assert!(matches!(e, IpamError::AlreadyAllocated { .. }), "{e}");
    // Another interface of the same container is a different attachment.
    let other = AttachmentKey::new("a", "net1");
    assert_eq!(store.allocate(&other, &s, &[]).unwrap().len(), 1);
}

#[test]
fn exhaustion_per_set() {
    let (_tmp, store) = store();
    let s = sets(
        r#"{"type":"host-local","ranges":[[{"subnet":"10.0.0.0/30"}],[{"subnet":"fd00::/120"}]]}"#,
    );
    assert!(!store.exhausted(&s).unwrap());
    store.allocate(&key("a"), &s, &[]).unwrap();
    assert!(store.exhausted(&s).unwrap());
    let e = store.allocate(&key("b"), &s, &[]).unwrap_err();
    assert!(matches!(e, IpamError::Exhausted { index: 0, .. }), "{e}");
    // The v6 set was not touched by the failed attempt.
    assert!(store.get(&key("b")).unwrap().is_none());
    store.release(&key("a")).unwrap();
    assert!(!store.exhausted(&s).unwrap());
}

#[test]
fn invalid_inputs() {
    let tmp = tempfile::tempdir().unwrap();
    for bad in ["", ".", "..", "a/b", "x\0y"] {
        let e = podnet_ipam::Store::open(tmp.path(), bad).unwrap_err();
        assert!(
            matches!(e, IpamError::InvalidNetworkName(_)),
            "{bad:?}: {e}"
        );
    }
    let (_tmp, store) = store();
    let s = v4_sets("10.0.0.0/24");
    let e = store
        .allocate(&AttachmentKey::new("c\n", "eth0"), &s, &[])
        .unwrap_err();
    assert_eq!(e.cni_code(), 4);
    let e = store.allocate(&key("a"), &[], &[]).unwrap_err();
    assert_eq!(e.cni_code(), 7);
}
