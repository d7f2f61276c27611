//! Bad input gets a clear JSON error and changes nothing; a failure midway is undone.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use podnet::cni_exec::Call;
use podnet_netdev::testing::TestNs;
use serde_json::json;

/// Nothing was made on the node: no veth, no bridge, no reservation.
fn untouched(node: &Node) {
    assert!(node.veths().is_empty(), "veths: {:?}", node.veths());
    assert!(
        ip_json(node.ns.name(), &["link", "show", "type", "bridge"])
            .as_array()
            .unwrap()
            .is_empty(),
        "bridge made"
    );
    assert!(
        node.reservations().is_empty() && node.records() == 0,
        "reservations made"
    );
}

#[test]
fn invalid_environment_is_code_4_and_changes_nothing() {
    let node = Node::new("t-env", "bridge");
    let pod = TestNs::new("p").unwrap();
    let base = Call::attachment("ADD", "c1", &pod.path());
    let cases: Vec<(&str, Call)> = vec![
        (
            "container id charset",
            Call {
                container_id: Some("-bad".into()),
                ..base.clone()
            },
        ),
        (
            "container id charset",
            Call {
                container_id: Some("a b".into()),
                ..base.clone()
            },
        ),
        (
            "missing container id",
            Call {
                container_id: None,
                ..base.clone()
            },
        ),
        (
            "ifname too long",
            Call {
                ifname: Some("a234567890123456".into()),
                ..base.clone()
            },
        ),
        (
            "ifname slash",
            Call {
                ifname: Some("a/b".into()),
                ..base.clone()
            },
        ),
        (
            "ifname colon",
            Call {
                ifname: Some("a:b".into()),
                ..base.clone()
            },
        ),
        (
            "ifname space",
            Call {
                ifname: Some("a b".into()),
                ..base.clone()
            },
        ),
        (
            "ifname dot",
            Call {
                ifname: Some(".".into()),
                ..base.clone()
            },
        ),
        (
            "ifname dotdot",
            Call {
                ifname: Some("..".into()),
                ..base.clone()
            },
        ),
        (
            "missing netns",
            Call {
                netns: None,
                ..base.clone()
            },
        ),
        (
            "bad CNI_ARGS pair",
            Call {
                args: Some("K8S_POD_NAME".into()),
                ..base.clone()
            },
        ),
        (
            "unknown command",
            Call {
                command: "FROB".into(),
                ..base.clone()
            },
        ),
    ];
    for (what, call) in cases {
        let r = node.call_with(&call, &node.conf);
        assert_eq!(error_code(&r), 4, "{what}: {}", r.stdout);
    }
    // 15 characters is fine.
    let ok = node.call_with(
        &Call {
            ifname: Some("a23456789012345".into()),
            ..base.clone()
        },
        &node.conf,
    );
    assert!(ok.ok(), "{}", ok.stdout);
    assert!(node
        .call_with(
            &Call {
                command: "DEL".into(),
                ifname: Some("a23456789012345".into()),
                ..base.clone()
            },
            &node.conf
        )
        .ok());
    untouched_after_del(&node);
}

fn untouched_after_del(node: &Node) {
    assert!(node.veths().is_empty());
    assert!(node.reservations().is_empty());
}

#[test]
fn unknown_cni_args_are_code_2_unless_ignored() {
    let node = Node::new("t-args", "bridge");
    let pod = TestNs::new("p").unwrap();
    let mut call = Call::attachment("ADD", "c1", &pod.path());
    call.args = Some("FOO=bar;K8S_POD_NAME=x".into());
    assert_eq!(error_code(&node.call_with(&call, &node.conf)), 2);
    untouched(&node);
    call.args = Some("IgnoreUnknown=true;FOO=bar;K8S_POD_NAME=x".into());
    assert!(node.call_with(&call, &node.conf).ok());
    assert!(node.call("DEL", "c1", &pod.path()).ok());
}

#[test]
fn bad_netns_is_rejected() {
    let node = Node::new("t-netns", "bridge");
    let missing = std::path::PathBuf::from("/run/netns/podnet-does-not-exist");
    assert_eq!(error_code(&node.call("ADD", "c1", &missing)), 3);
    // The plugin's own namespace (the node's) as the pod's.
    assert_eq!(error_code(&node.call("ADD", "c1", &node.ns.path())), 4);
    // A file that is not a namespace.
    assert_ne!(
        error_code(&node.call("ADD", "c1", std::path::Path::new("/etc/hostname"))),
        0
    );
    untouched(&node);
}

#[test]
fn bad_configs_get_their_codes() {
    let node = Node::new("t-conf", "bridge");
    let pod = TestNs::new("p").unwrap();
    let call = Call::attachment("ADD", "c1", &pod.path());
    let with = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut c = node.conf.clone();
        f(&mut c);
        node.call_with(&call, &c)
    };
    assert_eq!(error_code(&with(&|c| c["cniVersion"] = json!("0.2.0"))), 1);
    assert_eq!(error_code(&with(&|c| c["cniVersion"] = json!("9.9.9"))), 1);
    assert_eq!(
        error_code(&with(&|c| {
            c.as_object_mut().unwrap().remove("cniVersion");
        })),
        1
    );
    assert_eq!(
        error_code(&with(&|c| c["hairpinMod"] = json!(true))),
        2,
        "typo in a field"
    );
    assert_eq!(error_code(&with(&|c| c["ipam"]["rangez"] = json!([]))), 2);
    assert_eq!(error_code(&with(&|c| c["mode"] = json!("macvlan"))), 7);
    assert_eq!(error_code(&with(&|c| c["mtu"] = json!(10))), 7);
    assert_eq!(
        error_code(&with(&|c| c["ipam"]["ranges"] =
            json!([[{"subnet": "10.0.0.0/24", "rangeStart": "10.1.0.5"}]]))),
        7
    );
    assert_eq!(error_code(&with(&|c| c["ipam"]["ranges"] = json!([]))), 7);
    assert_eq!(
        error_code(&with(
            &|c| c["runtimeConfig"] = json!({"mac": "01:00:00:00:00:01"})
        )),
        7,
        "multicast MAC"
    );
    assert_eq!(
        error_code(&with(&|c| c["runtimeConfig"] = json!({"ips": ["10.9.9.9"]}))),
        7,
        "static IP outside ranges"
    );
    assert_eq!(
        error_code(&with(&|c| c["ipam"]["type"] = json!("no-such-ipam"))),
        7
    );
    assert_eq!(error_code(&node.call_raw(&call, b"{not json")), 6);
    assert_eq!(error_code(&node.call_raw(&call, b"")), 6);
    untouched(&node);
}

#[test]
fn failure_after_side_effects_is_rolled_back() {
    // A route whose gateway is unreachable fails after the veth and the reservation exist.
    let mut node = Node::new("t-rollback", "bridge");
    node.conf["ipam"]["routes"] = json!([{"dst": "192.0.2.0/24", "gw": "198.51.100.1"}]);
    let pod = TestNs::new("p").unwrap();
    let r = node.call("ADD", "c1", &pod.path());
    assert_eq!(error_code(&r), 102, "{}", r.stdout);
    assert!(node.veths().is_empty(), "veth left: {:?}", node.veths());
    let pod_links = ip_json(pod.name(), &["link", "show"]);
    assert!(
        pod_links
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["ifname"] == "lo"),
        "{pod_links}"
    );
    assert!(node.reservations().is_empty() && node.records() == 0);
    // The bridge it made is whole (explicit MAC, up), so the next ADD works: unlike plugins#620.
    node.conf["ipam"]["routes"] = json!([{"dst": "0.0.0.0/0"}]);
    let (_pod2, r2) = node.add("c2");
    assert_eq!(
        result_ips(&r2)[0],
        "10.244.1.3",
        "round-robin: .2 was just freed"
    );
}

#[test]
fn existing_interface_in_the_pod_is_refused_without_damage() {
    let node = Node::new("t-exists", "bridge");
    let (pod, _) = node.add("c1");
    // Same pod, same ifname, another container id: the interface exists.
    let r = node.call("ADD", "c2", &pod.path());
    assert_eq!(error_code(&r), 106);
    assert_eq!(node.veths().len(), 1);
    assert_eq!(node.records(), 1);
    // The same attachment twice: refused, the first stays intact.
    let r = node.call("ADD", "c1", &pod.path());
    assert_ne!(error_code(&r), 0);
    assert_eq!(node.veths().len(), 1);
    assert_eq!(node.reservations().len(), 2);
}

#[test]
fn garbage_on_stdin_always_yields_one_json_error() {
    let node = Node::new("t-garbage", "bridge");
    let pod = TestNs::new("p").unwrap();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let valid = serde_json::to_vec(&node.conf).unwrap();
    for i in 0..60 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut input = valid.clone();
        if i % 2 == 0 {
            // Mutate a valid config.
            for k in 0..(seed % 8 + 1) {
                let pos = ((seed >> (k * 3)) as usize) % input.len();
                input[pos] = (seed >> (k * 5)) as u8;
            }
        } else {
            input = (0..(seed % 200))
                .map(|k| (seed.rotate_left(k as u32) & 0xff) as u8)
                .collect();
        }
        let r = node.call_raw(&Call::attachment("ADD", "c1", &pod.path()), &input);
        if r.ok() {
            // A mutation that is still a valid config: clean it up.
            assert!(node
                .call_raw(&Call::attachment("DEL", "c1", &pod.path()), &input)
                .ok());
            continue;
        }
        assert!(
            r.code == 1,
            "exit code {} for {:?}",
            r.code,
            String::from_utf8_lossy(&input)
        );
        error_code(&r);
        assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    }
}
