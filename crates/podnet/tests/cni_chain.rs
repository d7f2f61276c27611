//! Chaining (prevResult carried; the reference tuning and portmap plugins after podnet) and
//! IPAM delegation (host-local under podnet-cni; podnet-ipam under the reference bridge).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::*;
use podnet::cni_exec::{invoke, Call, Reply};
use podnet_netdev::testing::TestNs;
use serde_json::{json, Value};

fn reference(node: &Node, plugin: &str, mut call: Call, conf: &Value) -> Reply {
    call.path = Some(REFERENCE.into());
    invoke(
        &Path::new(REFERENCE).join(plugin),
        node.ns.ns(),
        &call,
        &serde_json::to_vec(conf).unwrap(),
    )
    .unwrap()
}

#[test]
fn podnet_first_then_reference_tuning_and_portmap() {
    if !has_reference() {
        eprintln!("skipped: containernetworking-plugins not installed");
        return;
    }
    let mut node = Node::new("t-chain", "bridge");
    node.conf["cniVersion"] = json!("1.0.0"); // the Debian reference plugins speak up to 1.0.0
    let pod = TestNs::new("p").unwrap();
    let add = Call::attachment("ADD", "c1", &pod.path());
    let r1 = node.call_with(&add, &node.conf);
    assert!(r1.ok(), "{}", r1.stdout);
    let tuning = json!({"cniVersion": "1.0.0", "name": "t-chain", "type": "tuning",
        "sysctl": {"net.ipv4.conf.eth0.arp_announce": "2"}, "prevResult": r1.json});
    let r2 = reference(&node, "tuning", add.clone(), &tuning);
    assert!(r2.ok(), "tuning: {} {}", r2.stdout, r2.stderr);
    let portmap = json!({"cniVersion": "1.0.0", "name": "t-chain", "type": "portmap",
        "capabilities": {"portMappings": true}, "snat": true,
        "runtimeConfig": {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]},
        "prevResult": r2.json});
    let r3 = reference(&node, "portmap", add.clone(), &portmap);
    assert!(r3.ok(), "portmap: {} {}", r3.stdout, r3.stderr);
    // podnet's result survives the whole chain.
    assert_eq!(r3.json["ips"], r1.json["ips"]);
    assert_eq!(r3.json["interfaces"], r1.json["interfaces"]);
    let sysctl = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            pod.name(),
            "cat",
            "/proc/sys/net/ipv4/conf/eth0/arp_announce",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&sysctl.stdout).trim(), "2");
    // CHECK of the whole chain with the final result, then DEL in reverse order.
    let mut check = node.conf.clone();
    check["prevResult"] = r3.json.clone();
    assert!(node
        .call_with(
            &Call {
                command: "CHECK".into(),
                ..add.clone()
            },
            &check
        )
        .ok());
    let del = Call {
        command: "DEL".into(),
        ..add
    };
    assert!(reference(&node, "portmap", del.clone(), &portmap).ok());
    assert!(reference(&node, "tuning", del.clone(), &tuning).ok());
    assert!(node.call_with(&del, &node.conf).ok());
    assert!(node.veths().is_empty() && node.reservations().is_empty());
}

#[test]
fn prev_result_is_carried_when_podnet_is_not_first() {
    let mut node = Node::new("t-prev", "ptp");
    let prev = json!({"cniVersion": "1.1.0",
        "interfaces": [{"name": "dummy0", "mac": "02:00:00:00:00:01", "sandbox": "/x"}],
        "ips": [{"address": "192.0.2.10/24", "interface": 0}],
        "routes": [{"dst": "198.51.100.0/24"}],
        "dns": {"nameservers": ["192.0.2.53"]}});
    node.conf["prevResult"] = prev;
    let (pod, r) = node.add("c1");
    let ifs = r["interfaces"].as_array().unwrap();
    assert_eq!(ifs[0]["name"], "dummy0");
    assert_eq!(ifs.len(), 3, "prev's + host veth + pod interface");
    assert_eq!(r["ips"][0]["address"], "192.0.2.10/24");
    assert_eq!(r["ips"][0]["interface"], 0);
    assert_eq!(
        r["ips"][1]["interface"], 2,
        "podnet's ips point at its own interface, shifted"
    );
    assert_eq!(r["routes"][0]["dst"], "198.51.100.0/24");
    assert_eq!(r["dns"]["nameservers"][0], "192.0.2.53");
    node.conf.as_object_mut().unwrap().remove("prevResult");
    assert!(node.call("DEL", "c1", &pod.path()).ok());
}

#[test]
fn delegated_ipam_host_local_is_added_and_released() {
    if !has_reference() {
        eprintln!("skipped: containernetworking-plugins not installed");
        return;
    }
    let mut node = Node::new("t-delegate", "bridge");
    node.conf["cniVersion"] = json!("1.0.0"); // the Debian reference host-local speaks up to 1.0.0
    let dir = node.data.path().join("host-local");
    node.conf["ipam"] = json!({"type": "host-local", "ranges": [[{"subnet": "10.247.0.0/24"}]],
        "routes": [{"dst": "0.0.0.0/0"}], "dataDir": dir});
    let pod = TestNs::new("p").unwrap();
    let mut add = Call::attachment("ADD", "c1", &pod.path());
    add.path = Some(REFERENCE.into());
    let r = node.call_with(&add, &node.conf);
    assert!(r.ok(), "{} {}", r.stdout, r.stderr);
    assert_eq!(result_ips(&r.json), vec!["10.247.0.2"]);
    assert!(ping(pod.name(), "10.247.0.1"));
    let reserved = |_: &Node| {
        let files = std::fs::read_dir(dir.join("t-delegate"))
            .map(|d| d.map(|e| e.unwrap().file_name()).collect::<Vec<_>>());
        files
            .unwrap_or_default()
            .iter()
            .filter(|f| f.to_str().unwrap().starts_with("10."))
            .count()
    };
    assert_eq!(reserved(&node), 1);
    let del = Call {
        command: "DEL".into(),
        ..add.clone()
    };
    assert!(node.call_with(&del, &node.conf).ok());
    assert_eq!(reserved(&node), 0);
    // A failure after the delegate's ADD calls its DEL: nothing stays reserved.
    node.conf["ipam"]["routes"] = json!([{"dst": "192.0.2.0/24", "gw": "198.51.100.1"}]);
    let r = node.call_with(&add, &node.conf);
    assert_eq!(error_code(&r), 102);
    assert_eq!(reserved(&node), 0, "delegate DEL ran on rollback");
    assert!(node.veths().is_empty());
}

#[test]
fn podnet_ipam_serves_the_reference_bridge() {
    if !has_reference() {
        eprintln!("skipped: containernetworking-plugins not installed");
        return;
    }
    let node = Node::new("t-ipam-bin", "bridge");
    let ipam_dir = Path::new(IPAM_PLUGIN)
        .parent()
        .unwrap()
        .display()
        .to_string();
    let conf = json!({"cniVersion": "1.0.0", "name": "t-ipam-bin", "type": "bridge", "bridge": "refbr0",
        "isGateway": true, "ipam": {"type": "podnet-ipam", "ranges": [[{"subnet": "10.248.0.0/24"}]],
        "dataDir": node.data.path()}});
    let pod = TestNs::new("p").unwrap();
    let mut add = Call::attachment("ADD", "c1", &pod.path());
    add.path = Some(format!("{ipam_dir}:{REFERENCE}"));
    let r = invoke(
        &Path::new(REFERENCE).join("bridge"),
        node.ns.ns(),
        &add,
        &serde_json::to_vec(&conf).unwrap(),
    )
    .unwrap();
    assert!(r.ok(), "{} {}", r.stdout, r.stderr);
    assert_eq!(result_ips(&r.json), vec!["10.248.0.2"]);
    assert_eq!(node.records(), 1);
    assert!(ping(pod.name(), "10.248.0.1"));
    let del = Call {
        command: "DEL".into(),
        ..add
    };
    let r = invoke(
        &Path::new(REFERENCE).join("bridge"),
        node.ns.ns(),
        &del,
        &serde_json::to_vec(&conf).unwrap(),
    )
    .unwrap();
    assert!(r.ok(), "{}", r.stdout);
    assert_eq!(node.records(), 0);
    assert!(node.reservations().is_empty());
}
