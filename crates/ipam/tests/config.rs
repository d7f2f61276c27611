#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;

use common::{config, ip, sets};
use podnet_ipam::{parse_resolv_conf, IpamConfig, IpamError, Range, RangeSet};

fn err(json: &str) -> IpamError {
    let e = config(json).range_sets(None).unwrap_err();
    assert_eq!(e.cni_code(), 7, "{e}");
    e
}

#[test]
fn defaults_for_v4_and_v6() {
    let s = sets(
        r#"{"type":"host-local","ranges":[[{"subnet":"10.1.2.3/24"}],[{"subnet":"fd00::/64"}]]}"#,
    );
    let v4 = &s[0].ranges()[0];
    assert_eq!(v4.subnet().to_string(), "10.1.2.0/24");
    assert_eq!(v4.range_start(), ip("10.1.2.1"));
    assert_eq!(v4.range_end(), ip("10.1.2.254"));
    assert_eq!(v4.gateway(), ip("10.1.2.1"));
    assert!(s[0].is_ipv4());
    let v6 = &s[1].ranges()[0];
    assert_eq!(v6.range_start(), ip("fd00::1"));
    assert_eq!(v6.range_end(), ip("fd00::ffff:ffff:ffff:ffff"));
    assert_eq!(v6.gateway(), ip("fd00::1"));
    assert!(!s[1].is_ipv4());
}

#[test]
fn explicit_bounds_and_gateway() {
    let s = sets(
        r#"{"type":"host-local","ranges":[[{"subnet":"10.0.0.0/24","rangeStart":"10.0.0.10",
            "rangeEnd":"10.0.0.20","gateway":"10.0.0.254"}]]}"#,
    );
    let r = &s[0].ranges()[0];
    assert_eq!(
        (r.range_start(), r.range_end()),
        (ip("10.0.0.10"), ip("10.0.0.20"))
    );
    assert_eq!(r.gateway(), ip("10.0.0.254"));
    assert!(r.contains(ip("10.0.0.15")) && !r.contains(ip("10.0.0.21")));
    assert_eq!(s[0].range_for(ip("10.0.0.10")).map(|(i, _)| i), Some(0));
}

#[test]
fn shorthand_becomes_one_set() {
    let s = sets(r#"{"type":"host-local","subnet":"10.9.0.0/16","rangeStart":"10.9.1.0"}"#);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].ranges()[0].range_start(), ip("10.9.1.0"));
    err(r#"{"type":"host-local","subnet":"10.9.0.0/16","ranges":[[{"subnet":"10.8.0.0/16"}]]}"#);
    err(r#"{"type":"host-local","rangeStart":"10.9.1.0"}"#);
}

#[test]
fn invalid_ranges() {
    err(r#"{"type":"host-local"}"#);
    err(r#"{"type":"host-local","ranges":[[]]}"#);
    err(r#"{"type":"host-local","ranges":[[{"subnet":"10.0.0.0/31"}]]}"#);
    err(r#"{"type":"host-local","ranges":[[{"subnet":"fd00::/127"}]]}"#);
    err(r#"{"type":"host-local","ranges":[[{"subnet":"10.0.0.0/24","rangeStart":"10.0.1.1"}]]}"#);
    err(r#"{"type":"host-local","ranges":[[{"subnet":"10.0.0.0/24","rangeEnd":"fd00::1"}]]}"#);
    err(r#"{"type":"host-local","ranges":[[{"subnet":"10.0.0.0/24","gateway":"10.0.1.1"}]]}"#);
    err(r#"{"type":"host-local","ranges":[[{"subnet":"10.0.0.0/24",
        "rangeStart":"10.0.0.9","rangeEnd":"10.0.0.8"}]]}"#);
}

#[test]
fn family_and_overlap_rules() {
    let mixed = err(
        r#"{"type":"host-local","ranges":[[{"subnet":"10.0.0.0/24"},{"subnet":"fd00::/64"}]]}"#,
    );
    assert!(mixed.to_string().contains("mixed"), "{mixed}");
    err(r#"{"type":"host-local","ranges":[[{"subnet":"10.0.0.0/24"},{"subnet":"10.0.0.0/25"}]]}"#);
    err(
        r#"{"type":"host-local","ranges":[[{"subnet":"10.0.0.0/16"}],[{"subnet":"10.0.5.0/24"}]]}"#,
    );
    // Disjoint parts of one subnet are fine, as in host-local.
    sets(
        r#"{"type":"host-local","ranges":[[
            {"subnet":"10.0.0.0/24","rangeStart":"10.0.0.2","rangeEnd":"10.0.0.9"},
            {"subnet":"10.0.0.0/24","rangeStart":"10.0.0.10","rangeEnd":"10.0.0.19"}]]}"#,
    );
}

#[test]
fn runtime_ranges_replace_configured_ones() {
    let cfg = config(r#"{"type":"host-local","ranges":[[{"subnet":"10.0.0.0/24"}]]}"#);
    let runtime: Vec<RangeSet> = vec![vec![Range {
        subnet: "192.168.7.0/24".parse().unwrap(),
        range_start: None,
        range_end: None,
        gateway: None,
    }]];
    let s = cfg.range_sets(Some(&runtime)).unwrap();
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].ranges()[0].subnet().to_string(), "192.168.7.0/24");
    let s = cfg.range_sets(Some(&[])).unwrap();
    assert_eq!(s[0].ranges()[0].subnet().to_string(), "10.0.0.0/24");
    let empty = IpamConfig::default();
    assert!(empty.range_sets(Some(&runtime)).is_ok());
}

#[test]
fn serde_shape() {
    let cfg = config(
        r#"{"type":"host-local","ranges":[[{"subnet":"10.0.0.0/24"}]],
            "routes":[{"dst":"0.0.0.0/0"},{"dst":"10.1.0.0/16","gw":"10.0.0.1"}],
            "dataDir":"/tmp/x","resolvConf":"/etc/resolv.conf",
            "dns":{"nameservers":["10.0.0.10"],"search":["svc"]}}"#,
    );
    assert_eq!(cfg.kind, "host-local");
    assert_eq!(cfg.routes[1].gw, Some(ip("10.0.0.1")));
    assert_eq!(cfg.data_dir_or_default().to_str(), Some("/tmp/x"));
    assert_eq!(cfg.dns.as_ref().map(|d| d.search.len()), Some(1));
    assert_eq!(
        IpamConfig::default().data_dir_or_default().to_str(),
        Some("/var/lib/cni/networks")
    );
    let unknown = r#"{"type":"host-local","bogus":1}"#;
    assert!(serde_json::from_str::<IpamConfig>(unknown).is_err());
}

#[test]
fn resolv_conf_file() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    writeln!(
        f,
        "nameserver 1.1.1.1\nsearch a b\noptions ndots:2\ndomain d"
    )
    .unwrap();
    let dns = parse_resolv_conf(f.path()).unwrap();
    assert_eq!(dns.nameservers, ["1.1.1.1"]);
    assert_eq!(dns.search, ["a", "b"]);
    assert_eq!(dns.options, ["ndots:2"]);
    assert_eq!(dns.domain.as_deref(), Some("d"));
    let missing = parse_resolv_conf(std::path::Path::new("/nonexistent/resolv.conf"));
    assert_eq!(missing.unwrap_err().cni_code(), 5);
}
