use serde_json::{json, Value};

use crate::{codes, CniResult, Dns, Interface, IpConfig, Route, Version};

fn full() -> CniResult {
    CniResult {
        interfaces: vec![
            Interface {
                name: "veth1234".into(),
                mac: Some("aa:bb:cc:dd:ee:01".into()),
                mtu: Some(1450),
                ..Interface::default()
            },
            Interface {
                name: "eth0".into(),
                mac: Some("aa:bb:cc:dd:ee:02".into()),
                mtu: Some(1450),
                sandbox: Some("/var/run/netns/x".into()),
                socket_path: Some("/run/vhost.sock".into()),
                pci_id: Some("0000:00:1f.6".into()),
            },
        ],
        ips: vec![
            IpConfig {
                address: "10.1.0.5/24".parse().unwrap(),
                gateway: Some("10.1.0.1".parse().unwrap()),
                interface: Some(1),
            },
            IpConfig {
                address: "fd00::5/64".parse().unwrap(),
                gateway: None,
                interface: Some(0),
            },
        ],
        routes: vec![
            Route {
                mtu: Some(1400),
                advmss: Some(1360),
                priority: Some(10),
                table: Some(0),
                scope: Some(253),
                ..Route::new(
                    "0.0.0.0/0".parse().unwrap(),
                    Some("10.1.0.1".parse().unwrap()),
                )
            },
            Route::new("fd00::/8".parse().unwrap(), None),
        ],
        dns: Dns {
            nameservers: vec!["10.96.0.10".into()],
            domain: Some("cluster.local".into()),
            search: vec!["default.svc.cluster.local".into()],
            options: vec!["ndots:5".into()],
        },
    }
}

/// `full()` as seen through a version without the 1.1.0 additions.
fn full_pre_v11() -> CniResult {
    let mut r = full();
    for i in &mut r.interfaces {
        i.mtu = None;
        i.socket_path = None;
        i.pci_id = None;
    }
    for rt in &mut r.routes {
        *rt = Route::new(rt.dst, rt.gw);
    }
    r
}

fn expected_interfaces(v11: bool) -> Value {
    if v11 {
        json!([
            {"name": "veth1234", "mac": "aa:bb:cc:dd:ee:01", "mtu": 1450},
            {"name": "eth0", "mac": "aa:bb:cc:dd:ee:02", "mtu": 1450,
             "sandbox": "/var/run/netns/x", "socketPath": "/run/vhost.sock",
             "pciID": "0000:00:1f.6"}
        ])
    } else {
        json!([
            {"name": "veth1234", "mac": "aa:bb:cc:dd:ee:01"},
            {"name": "eth0", "mac": "aa:bb:cc:dd:ee:02", "sandbox": "/var/run/netns/x"}
        ])
    }
}

fn expected_dns() -> Value {
    json!({"nameservers": ["10.96.0.10"], "domain": "cluster.local",
           "search": ["default.svc.cluster.local"], "options": ["ndots:5"]})
}

#[test]
fn v0x_shape() {
    for v in [Version::V0_3_0, Version::V0_3_1, Version::V0_4_0] {
        let want = json!({
            "cniVersion": v.as_str(),
            "interfaces": expected_interfaces(false),
            "ips": [
                {"version": "4", "interface": 1, "address": "10.1.0.5/24", "gateway": "10.1.0.1"},
                {"version": "6", "interface": 0, "address": "fd00::5/64"}
            ],
            "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}, {"dst": "fd00::/8"}],
            "dns": expected_dns(),
        });
        assert_eq!(full().to_value(v), want, "{v}");
    }
}

#[test]
fn v100_shape() {
    let want = json!({
        "cniVersion": "1.0.0",
        "interfaces": expected_interfaces(false),
        "ips": [
            {"interface": 1, "address": "10.1.0.5/24", "gateway": "10.1.0.1"},
            {"interface": 0, "address": "fd00::5/64"}
        ],
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}, {"dst": "fd00::/8"}],
        "dns": expected_dns(),
    });
    assert_eq!(full().to_value(Version::V1_0_0), want);
}

#[test]
fn v110_shape() {
    let want = json!({
        "cniVersion": "1.1.0",
        "interfaces": expected_interfaces(true),
        "ips": [
            {"interface": 1, "address": "10.1.0.5/24", "gateway": "10.1.0.1"},
            {"interface": 0, "address": "fd00::5/64"}
        ],
        "routes": [
            {"dst": "0.0.0.0/0", "gw": "10.1.0.1", "mtu": 1400, "advmss": 1360,
             "priority": 10, "table": 0, "scope": 253},
            {"dst": "fd00::/8"}
        ],
        "dns": expected_dns(),
    });
    assert_eq!(full().to_value(Version::V1_1_0), want);
}

#[test]
fn empty_result_shape() {
    let empty = CniResult::default();
    for v in Version::ALL {
        let got = empty.to_value(v);
        let want = if v < Version::V1_0_0 {
            json!({"cniVersion": v.as_str(), "dns": {}})
        } else {
            json!({"cniVersion": v.as_str()})
        };
        assert_eq!(got, want, "{v}");
    }
}

#[test]
fn round_trip_every_version() {
    for v in Version::ALL {
        let expect = if v == Version::V1_1_0 {
            full()
        } else {
            full_pre_v11()
        };
        let value = full().to_value(v);
        assert_eq!(CniResult::from_value(&value, v).unwrap(), expect, "{v}");
        let text = serde_json::to_string(&value).unwrap();
        let reparsed: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(CniResult::from_value(&reparsed, v).unwrap(), expect, "{v}");
        assert_eq!(
            CniResult::default(),
            CniResult::from_value(&CniResult::default().to_value(v), v).unwrap()
        );
    }
}

#[test]
fn zero_and_empty_fields_are_unset() {
    let value = json!({
        "cniVersion": "1.1.0",
        "interfaces": [{"name": "eth0", "mac": "", "mtu": 0, "sandbox": ""}],
        "ips": [{"address": "10.0.0.2/8", "gateway": ""}],
        "routes": [{"dst": "0.0.0.0/0", "gw": "", "mtu": 0, "advmss": 0, "priority": 0, "table": 0, "scope": 0}],
        "dns": {"domain": "", "nameservers": null}
    });
    let r = CniResult::from_value(&value, Version::V1_1_0).unwrap();
    assert_eq!(
        r.interfaces[0],
        Interface {
            name: "eth0".into(),
            ..Interface::default()
        }
    );
    assert_eq!(r.ips[0].gateway, None);
    assert_eq!(r.routes[0].mtu, None);
    assert_eq!(r.routes[0].table, Some(0));
    assert_eq!(r.routes[0].scope, Some(0));
    assert!(r.dns.is_empty());
}

#[test]
fn tolerant_parsing() {
    let v040 = json!({
        "cniVersion": "0.4.0",
        "ips": [{"version": "4", "address": "10.1.0.5/24"}],
        "dns": {},
        "unknownKey": [1, 2, 3]
    });
    let r = CniResult::from_value(&v040, Version::V0_4_0).unwrap();
    assert_eq!(r.ips.len(), 1);
    assert_eq!(r.ips[0].interface, None);
    // "version" in 1.x and a minimal result are tolerated.
    let v100 = json!({"ips": [{"version": "4", "address": "10.1.0.5/24"}]});
    assert!(CniResult::from_value(&v100, Version::V1_0_0).is_ok());
    assert_eq!(
        CniResult::from_value(&json!({}), Version::V1_1_0).unwrap(),
        CniResult::default()
    );
    // 1.1.0-only keys are not read for older versions.
    let rt = json!({"routes": [{"dst": "10.0.0.0/8", "mtu": 1400, "scope": 999}]});
    assert_eq!(
        CniResult::from_value(&rt, Version::V1_0_0).unwrap().routes[0].mtu,
        None
    );
    assert!(CniResult::from_value(&rt, Version::V1_1_0).is_err());
}

#[test]
fn bad_shapes_are_code_6() {
    let bad = [
        json!([]),
        json!("x"),
        json!({"interfaces": {}}),
        json!({"interfaces": [{"mac": "aa"}]}),
        json!({"interfaces": [{"name": 5}]}),
        json!({"interfaces": [["eth0"]]}),
        json!({"ips": [{"address": "10.1.0.5"}]}),
        json!({"ips": [{"address": "nonsense/24"}]}),
        json!({"ips": [{"address": "10.1.0.5/24", "gateway": "10.1.0"}]}),
        json!({"ips": [{"address": "10.1.0.5/24", "interface": -1}]}),
        json!({"ips": [{"address": "10.1.0.5/24", "interface": 1.5}]}),
        json!({"routes": [{"gw": "10.0.0.1"}]}),
        json!({"routes": [{"dst": "10.0.0.0/8", "table": 4294967296u64}]}),
        json!({"dns": []}),
        json!({"dns": {"nameservers": [1]}}),
        json!({"dns": {"domain": 1}}),
    ];
    for value in bad {
        let err = CniResult::from_value(&value, Version::V1_1_0).unwrap_err();
        assert_eq!(err.code, codes::DECODE, "{value}");
        assert!(!err.details.is_empty());
    }
}

#[test]
fn append_chains_results() {
    let mut first = CniResult {
        interfaces: vec![Interface {
            name: "a".into(),
            ..Interface::default()
        }],
        ips: vec![IpConfig {
            address: "10.0.0.2/24".parse().unwrap(),
            gateway: None,
            interface: Some(0),
        }],
        dns: Dns {
            domain: Some("first".into()),
            ..Dns::default()
        },
        ..CniResult::default()
    };
    let mut second = full();
    second.ips.push(IpConfig {
        address: "10.0.0.3/24".parse().unwrap(),
        gateway: None,
        interface: None,
    });
    first.append(second);
    let names: Vec<_> = first.interfaces.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["a", "veth1234", "eth0"]);
    let idx: Vec<_> = first.ips.iter().map(|ip| ip.interface).collect();
    assert_eq!(idx, [Some(0), Some(2), Some(1), None]);
    assert_eq!(first.routes.len(), 2);
    assert_eq!(first.dns.domain.as_deref(), Some("first"));
    assert_eq!(first.dns.nameservers, ["10.96.0.10"]);
    assert_eq!(first.dns.options, ["ndots:5"]);
}
