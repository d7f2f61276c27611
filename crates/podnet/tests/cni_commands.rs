//! Every command of the plugin against real namespaces.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use podnet::cni_exec::Call;
use serde_json::json;

#[test]
fn bridge_add_wires_a_dual_stack_pod() {
    let node = Node::new("t-bridge-add", "bridge");
    let (p1, r1) = node.add("c1");
    let (p2, r2) = node.add("c2");
    // Result shape (1.1.0): bridge, host veth, pod interface with sandbox; ips point at it.
    assert_eq!(r1["cniVersion"], "1.1.0");
    let ifs = r1["interfaces"].as_array().unwrap();
    assert_eq!(ifs.len(), 3);
    assert_eq!(ifs[0]["name"], "podnet0");
    assert_eq!(ifs[2]["name"], "eth0");
    assert_eq!(ifs[2]["sandbox"], p1.path().display().to_string());
    assert!(r1["ips"]
        .as_array()
        .unwrap()
        .iter()
        .all(|ip| ip["interface"] == 2 && ip.get("version").is_none()));
    assert_eq!(result_ips(&r1), vec!["10.244.1.2", "fd00:10:244:1::2"]);
    assert_eq!(r1["ips"][0]["gateway"], "10.244.1.1");

    // The bridge: explicit MAC, gateway addresses; the host veth: a port with hairpin.
    let br = &ip_json(node.ns.name(), &["addr", "show", "podnet0"])[0];
    assert_eq!(
        br["address"].as_str().unwrap(),
        podnet_netdev::format_mac(&podnet_cni_plugin::names::bridge_mac("podnet0"))
    );
    let addrs: Vec<_> = br["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]))
        .collect();
    assert!(
        addrs.contains(&"10.244.1.1/24".to_string())
            && addrs.contains(&"fd00:10:244:1::1/64".to_string()),
        "{addrs:?}"
    );
    let hv = ifs[1]["name"].as_str().unwrap();
    let port = &ip_json(node.ns.name(), &["link", "show", hv])[0];
    assert_eq!(port["master"], "podnet0");
    assert_eq!(port["linkinfo"]["info_slave_data"]["hairpin"], true);
    assert_eq!(port["mtu"], 1500);
    assert_eq!(port["ifalias"], "podnet/t-bridge-add/c1/eth0");
    // A bridge port has no IPv6 of its own (no link-local): its delete stays at the floor.
    let port_addrs = &ip_json(node.ns.name(), &["addr", "show", hv])[0]["addr_info"];
    assert_eq!(port_addrs.as_array().map(Vec::len), Some(0), "{port_addrs}");

    // The pod: addresses (IPv6 not tentative), default routes via the gateways.
    let eth0 = &ip_json(p1.name(), &["addr", "show", "eth0"])[0];
    assert_eq!(eth0["address"], ifs[2]["mac"]);
    assert!(eth0["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a.get("tentative").is_none()));
    let routes = ip_json(p1.name(), &["route", "show", "default"]);
    assert_eq!(routes[0]["gateway"], "10.244.1.1");
    let routes6 = ip_json(p1.name(), &["-6", "route", "show", "default"]);
    assert_eq!(routes6[0]["gateway"], "fd00:10:244:1::1");

    // Real packets, both families, at once (no DAD wait).
    for ip in result_ips(&r2) {
        assert!(ping(p1.name(), &ip), "c1 -> {ip}");
    }
    assert!(ping(p2.name(), "10.244.1.1"));
    assert!(node.check("c1", &p1.path(), &r1).ok());
    assert!(node.call("DEL", "c1", &p1.path()).ok());
    assert!(node.call("DEL", "c2", &p2.path()).ok());
    assert!(node.veths().is_empty());
    assert!(node.reservations().is_empty());
}

#[test]
fn ptp_add_routes_a_slash_32_with_proxy_arp() {
    let node = Node::new("t-ptp", "ptp");
    let (p1, r1) = node.add("c1");
    let (p2, r2) = node.add("c2");
    assert_eq!(r1["ips"][0]["address"], "10.244.1.2/32");
    assert_eq!(r1["ips"][1]["address"], "fd00:10:244:1::2/128");
    assert_eq!(
        r1["interfaces"].as_array().unwrap().len(),
        2,
        "no bridge in ptp mode"
    );
    assert!(ip_json(node.ns.name(), &["link", "show", "type", "bridge"])
        .as_array()
        .unwrap()
        .is_empty());
    let hv = r1["interfaces"][0]["name"].as_str().unwrap().to_string();
    let out = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            node.ns.name(),
            "cat",
            &format!("/proc/sys/net/ipv4/conf/{hv}/proxy_arp"),
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1");
    // Host route to the pod, tagged with podnet's protocol.
    let host_routes = ip_json(node.ns.name(), &["route", "show", "10.244.1.2"]);
    assert_eq!(host_routes[0]["dev"], hv.as_str());
    assert_eq!(host_routes[0]["protocol"], "122");
    // The pod: on-link gateway route and default via it.
    let pod_routes = ip_json(p1.name(), &["route", "show"]);
    assert!(
        pod_routes
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["dst"] == "10.244.1.1" && r["scope"] == "link"),
        "{pod_routes}"
    );
    for ip in result_ips(&r2) {
        assert!(ping(p1.name(), &ip), "c1 -> {ip}");
    }
    assert!(node.check("c2", &p2.path(), &r2).ok());
    assert!(node.call("DEL", "c1", &p1.path()).ok());
    assert!(node.call("DEL", "c2", &p2.path()).ok());
    assert!(node.veths().is_empty() && node.reservations().is_empty());
}

#[test]
fn every_version_is_answered_in_its_format() {
    for (v, has_version_field) in [
        ("0.3.0", true),
        ("0.3.1", true),
        ("0.4.0", true),
        ("1.0.0", false),
        ("1.1.0", false),
    ] {
        let mut node = Node::new(&format!("t-ver-{}", v.replace('.', "")), "bridge");
        node.conf["cniVersion"] = json!(v);
        let (pod, r) = node.add("c1");
        assert_eq!(r["cniVersion"], v);
        let ip = &r["ips"][0];
        assert_eq!(ip.get("version").is_some(), has_version_field, "{v}: {r}");
        if has_version_field {
            assert_eq!(ip["version"], "4");
        }
        let check = node.check("c1", &pod.path(), &r);
        if v.starts_with("0.3") {
            assert_eq!(error_code(&check), 1, "CHECK on {v}");
        } else {
            assert!(check.ok(), "{v}: {}", check.stdout);
        }
        let status = node.call_with(
            &Call {
                command: "STATUS".into(),
                ..Default::default()
            },
            &node.conf,
        );
        if v == "1.1.0" {
            assert!(status.ok());
        } else {
            assert_eq!(error_code(&status), 1, "STATUS on {v}");
            let gc = node.call_with(
                &Call {
                    command: "GC".into(),
                    ..Default::default()
                },
                &node.conf,
            );
            assert_eq!(error_code(&gc), 1, "GC on {v}");
        }
        assert!(node.call("DEL", "c1", &pod.path()).ok());
    }
}

#[test]
fn version_command_lists_supported_versions() {
    let node = Node::new("t-version", "bridge");
    let r = node.call_raw(
        &Call {
            command: "VERSION".into(),
            ..Default::default()
        },
        br#"{"cniVersion":"0.4.0"}"#,
    );
    assert!(r.ok());
    assert_eq!(r.json["cniVersion"], "0.4.0");
    assert_eq!(
        r.json["supportedVersions"],
        json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
    );
}

#[test]
fn del_is_idempotent_and_survives_missing_pieces() {
    let node = Node::new("t-del", "bridge");
    let (pod, _) = node.add("c1");
    assert!(node.call("DEL", "c1", &pod.path()).ok());
    assert!(node.call("DEL", "c1", &pod.path()).ok(), "second DEL");
    // Namespace gone, never added, no netns at all.
    let (pod2, _) = node.add("c2");
    let path = pod2.path();
    drop(pod2);
    assert!(node.call("DEL", "c2", &path).ok());
    assert!(node.call("DEL", "never", &path).ok());
    let mut call = Call::attachment("DEL", "c3", &path);
    call.netns = None;
    assert!(node.call_with(&call, &node.conf).ok());
    assert!(node.veths().is_empty() && node.reservations().is_empty());
}

#[test]
fn check_finds_what_is_missing() {
    let node = Node::new("t-check", "bridge");
    let (pod, r) = node.add("c1");
    assert!(node.check("c1", &pod.path(), &r).ok());
    // Address removed from the pod.
    ip(pod.name(), &["addr", "del", "10.244.1.2/24", "dev", "eth0"]);
    assert_eq!(error_code(&node.check("c1", &pod.path(), &r)), 104);
    ip(pod.name(), &["addr", "add", "10.244.1.2/24", "dev", "eth0"]);
    // Removing the address took the default route with it: still failing.
    assert_eq!(error_code(&node.check("c1", &pod.path(), &r)), 104);
    ip(
        pod.name(),
        &[
            "route",
            "add",
            "default",
            "via",
            "10.244.1.1",
            "proto",
            "122",
        ],
    );
    assert!(node.check("c1", &pod.path(), &r).ok());
    // A route removed.
    ip(pod.name(), &["route", "del", "default"]);
    assert_eq!(error_code(&node.check("c1", &pod.path(), &r)), 104);
    ip(
        pod.name(),
        &[
            "route",
            "add",
            "default",
            "via",
            "10.244.1.1",
            "proto",
            "122",
        ],
    );
    assert!(node.check("c1", &pod.path(), &r).ok());
    // The reservation released behind its back.
    let mut other = r.clone();
    other["ips"][0]["address"] = json!("10.244.1.99/24");
    ip(
        pod.name(),
        &["addr", "add", "10.244.1.99/24", "dev", "eth0"],
    );
    assert_eq!(
        error_code(&node.check("c1", &pod.path(), &other)),
        104,
        "IPAM holds .2, not .99"
    );
    // The interface gone.
    ip(pod.name(), &["link", "del", "eth0"]);
    assert_eq!(error_code(&node.check("c1", &pod.path(), &r)), 104);
    assert!(node.call("DEL", "c1", &pod.path()).ok());
}

#[test]
fn status_reports_an_exhausted_pool() {
    let mut node = Node::new("t-status", "bridge");
    node.conf["ipam"]["ranges"] = json!([[{"subnet": "10.250.0.0/30"}]]);
    node.conf["ipam"]["routes"] = json!([]);
    let status = || {
        node.call_with(
            &Call {
                command: "STATUS".into(),
                ..Default::default()
            },
            &node.conf,
        )
    };
    assert!(status().ok());
    let (pod, _) = node.add("c1"); // .2: the only address besides network, gateway, broadcast
    assert_eq!(error_code(&status()), 50);
    let pod2 = podnet_netdev::testing::TestNs::new("p").unwrap();
    let r = node.call("ADD", "c2", &pod2.path());
    assert_eq!(error_code(&r), 100, "pool exhausted");
    assert_eq!(node.veths().len(), 1, "failed ADD left no veth");
    assert!(node.call("DEL", "c1", &pod.path()).ok());
    assert!(status().ok());
}

#[test]
fn static_ip_and_mac_from_runtime_config_and_args() {
    let mut node = Node::new("t-static", "bridge");
    node.conf["runtimeConfig"] = json!({"ips": ["10.244.1.77/24"], "mac": "02:aa:bb:cc:dd:ee"});
    let (pod, r) = node.add("c1");
    assert_eq!(result_ips(&r)[0], "10.244.1.77");
    assert_eq!(r["interfaces"][2]["mac"], "02:aa:bb:cc:dd:ee");
    let eth0 = &ip_json(pod.name(), &["link", "show", "eth0"])[0];
    assert_eq!(eth0["address"], "02:aa:bb:cc:dd:ee");
    // The same static IP again: address in use, nothing made.
    let pod2 = podnet_netdev::testing::TestNs::new("p").unwrap();
    let r2 = node.call("ADD", "c2", &pod2.path());
    assert_eq!(error_code(&r2), 101);
    assert_eq!(node.veths().len(), 1);
    // CNI_ARGS IP= and MAC=, with the K8S_ keys.
    node.conf.as_object_mut().unwrap().remove("runtimeConfig");
    let mut call = Call::attachment("ADD", "c3", &pod2.path());
    call.args = Some("IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;IP=10.244.1.88;MAC=02:00:00:00:00:88".into());
    let r3 = node.call_with(&call, &node.conf);
    assert!(r3.ok(), "{}", r3.stdout);
    assert_eq!(result_ips(&r3.json)[0], "10.244.1.88");
    assert_eq!(r3.json["interfaces"][2]["mac"], "02:00:00:00:00:88");
    assert!(node.call("DEL", "c1", &pod.path()).ok());
    assert!(node.call("DEL", "c3", &pod2.path()).ok());
}

#[test]
fn ip_masq_programs_the_network_table() {
    let mut node = Node::new("t-masq", "bridge");
    node.conf["ipMasq"] = json!(true);
    let (pod, _) = node.add("c1");
    let table = podnet_cni_plugin::masq::table("t-masq");
    let list = |set: &str| {
        let out = std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                node.ns.name(),
                "nft",
                "-j",
                "list",
                "set",
                "inet",
                &table,
                set,
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(list("pods4").contains("10.244.1.2"), "{}", list("pods4"));
    assert!(list("pods6").contains("fd00:10:244:1::2"));
    assert!(list("nets4").contains("10.244.1.0"));
    let del = node.call("DEL", "c1", &pod.path());
    assert!(del.ok(), "{} {}", del.stdout, del.stderr);
    assert!(!list("pods4").contains("10.244.1.2"));
    assert!(
        node.call("DEL", "c1", &pod.path()).ok(),
        "DEL again with the element gone"
    );
}

#[test]
fn promisc_mtu_and_private_state() {
    use std::os::unix::fs::PermissionsExt;
    let mut node = Node::new("t-promisc", "bridge");
    node.conf["promiscMode"] = json!(true);
    node.conf["mtu"] = json!(1400);
    node.conf["hairpinMode"] = json!(false);
    let (pod, r) = node.add("c1");
    let br = &ip_json(node.ns.name(), &["link", "show", "podnet0"])[0];
    assert!(
        br["flags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "PROMISC"),
        "{br}"
    );
    let hv = r["interfaces"][1]["name"].as_str().unwrap();
    let port = &ip_json(node.ns.name(), &["link", "show", hv])[0];
    assert_eq!(port["mtu"], 1400);
    assert_eq!(port["linkinfo"]["info_slave_data"]["hairpin"], false);
    assert_eq!(
        ip_json(pod.name(), &["link", "show", "eth0"])[0]["mtu"],
        1400
    );
    // State is private to root.
    let dir = node.data.path().join("t-promisc");
    assert_eq!(
        std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    for e in std::fs::read_dir(&dir).unwrap() {
        let meta = e.unwrap().metadata().unwrap();
        assert_eq!(
            meta.permissions().mode() & 0o077,
            0,
            "not world- or group-readable"
        );
    }
    assert!(node.call("DEL", "c1", &pod.path()).ok());
}

#[test]
fn status_reports_missing_node_state() {
    let mut node = Node::new("t-status-state", "bridge");
    // The store cannot be created: a regular file stands where its parent should be.
    let file = node.data.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    node.conf["ipam"]["dataDir"] = json!(file.join("networks"));
    let r = node.call_with(
        &Call {
            command: "STATUS".into(),
            ..Default::default()
        },
        &node.conf,
    );
    assert_eq!(error_code(&r), 50, "{}", r.stdout);
}
