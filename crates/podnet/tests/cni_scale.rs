//! Concurrency, churn and crashes: no duplicate address, no leaked veth or reservation.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use common::*;
use podnet::cni_exec::Call;
use podnet_netdev::testing::TestNs;

#[test]
fn thirty_two_concurrent_adds_on_a_fresh_node() {
    let node = Node::new("t-concurrent", "bridge");
    let pods: Vec<TestNs> = (0..32).map(|_| TestNs::new("p").unwrap()).collect();
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = pods
            .iter()
            .enumerate()
            .map(|(i, pod)| {
                let node = &node;
                s.spawn(move || node.call("ADD", &format!("c{i}"), &pod.path()))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut seen = HashSet::new();
    for (i, r) in results.iter().enumerate() {
        assert!(r.ok(), "ADD c{i}: {} {}", r.stdout, r.stderr);
        for ip in result_ips(&r.json) {
            assert!(seen.insert(ip.clone()), "duplicate address {ip}");
        }
    }
    assert_eq!(seen.len(), 64, "dual-stack: 2 addresses per pod");
    assert_eq!(node.veths().len(), 32);
    assert_eq!(
        ip_json(node.ns.name(), &["link", "show", "type", "bridge"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Every pod reaches the gateway and a pod at the far end, at once.
    assert!(ping(pods[0].name(), &result_ips(&results[31].json)[0]));
    assert!(ping(pods[31].name(), &result_ips(&results[0].json)[1]));
    for (i, pod) in pods.iter().enumerate() {
        assert!(node
            .check(&format!("c{i}"), &pod.path(), &results[i].json)
            .ok());
        assert!(node.call("DEL", &format!("c{i}"), &pod.path()).ok());
    }
    assert!(node.veths().is_empty() && node.reservations().is_empty() && node.records() == 0);
}

#[test]
fn hundred_add_check_del_cycles_leak_nothing() {
    let node = Node::new("t-cycles", "bridge");
    let pod = TestNs::new("p").unwrap();
    let mut addrs = HashSet::new();
    for i in 0..100 {
        let cid = format!("cycle-{i}");
        let r = node.call("ADD", &cid, &pod.path());
        assert!(r.ok(), "ADD {i}: {}", r.stdout);
        addrs.insert(result_ips(&r.json)[0].clone());
        assert!(node.check(&cid, &pod.path(), &r.json).ok(), "CHECK {i}");
        assert!(node.call("DEL", &cid, &pod.path()).ok(), "DEL {i}");
    }
    assert!(node.veths().is_empty(), "{:?}", node.veths());
    assert!(node.reservations().is_empty() && node.records() == 0);
    let pod_links = ip_json(pod.name(), &["link", "show"]);
    assert_eq!(
        pod_links.as_array().unwrap().len(),
        1,
        "only lo in the pod: {pod_links}"
    );
    assert!(
        addrs.len() >= 99,
        "round-robin hands out fresh addresses: {}",
        addrs.len()
    );
}

#[test]
fn a_kill_mid_add_leaves_nothing_del_cannot_clean() {
    let node = Node::new("t-kill", "bridge");
    for i in 0..24u64 {
        let pod = TestNs::new("p").unwrap();
        let cid = format!("k{i}");
        kill_add_after(&node, &cid, &pod.path(), Duration::from_micros(300 * i));
        let r = node.call("DEL", &cid, &pod.path());
        assert!(r.ok(), "DEL after kill {i}: {}", r.stdout);
        assert!(
            node.veths().is_empty(),
            "kill after {i}: {:?}",
            node.veths()
        );
        let left: Vec<_> = std::fs::read_dir(node.data.path().join("t-kill").join("attachments"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(
            node.reservations().is_empty() && node.records() == 0,
            "kill after {i}: {:?} {left:?}",
            node.reservations()
        );
    }
}

/// Starts ADD and kills it with SIGKILL after `delay` (it may have finished by then).
fn kill_add_after(node: &Node, cid: &str, pod: &Path, delay: Duration) {
    use std::process::{Command, Stdio};
    let mut cmd = Command::new(PLUGIN);
    cmd.env_clear()
        .env("CNI_COMMAND", "ADD")
        .env("CNI_CONTAINERID", cid)
        .env("CNI_NETNS", pod)
        .env("CNI_IFNAME", "eth0")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = node.ns.ns().run(|| cmd.spawn()).unwrap().unwrap();
    let conf = serde_json::to_vec(&node.conf).unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), &conf).unwrap();
    drop(child.stdin.take());
    std::thread::sleep(delay);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn gc_after_a_node_reboot_releases_everything_unlisted() {
    let node = Node::new("t-gc", "bridge");
    let other = {
        // A second network on the same node and store root: GC of the first never touches it.
        let mut n = Node::new("t-gc-other", "bridge");
        n.conf["name"] = "t-gc-other".into();
        n.conf["bridge"] = "podnet1".into();
        n.conf["ipam"]["dataDir"] = node.data.path().to_str().unwrap().into();
        n.conf["ipam"]["ranges"] = serde_json::json!([[{"subnet": "10.246.0.0/24"}]]);
        n.conf["ipam"]["routes"] = serde_json::json!([]);
        n
    };
    let (keep, _) = node.add("keep");
    let (gone1, _) = node.add("gone1");
    let (gone2, _) = node.add("gone2");
    let other_pod = TestNs::new("p").unwrap();
    let r = invoke_other(&node, &other, "ADD", "elsewhere", &other_pod.path());
    assert!(r.ok(), "{}", r.stdout);
    // "Reboot": the pods' namespaces vanish without DEL.
    drop(gone1);
    drop(gone2);
    assert_eq!(node.reservations().len(), 6);
    let mut gc = node.conf.clone();
    gc["cni.dev/valid-attachments"] =
        serde_json::json!([{"containerID": "keep", "ifname": "eth0"}]);
    let r = node.call_with(
        &Call {
            command: "GC".into(),
            ..Default::default()
        },
        &gc,
    );
    assert!(r.ok(), "{}", r.stdout);
    assert_eq!(node.reservations().len(), 2, "only keep's addresses stay");
    assert_eq!(node.records(), 1);
    assert_eq!(node.veths().len(), 2, "keep's veth and the other network's");
    let other_store = node.data.path().join("t-gc-other");
    assert_eq!(
        std::fs::read_dir(other_store.join("attachments"))
            .unwrap()
            .count(),
        1,
        "other network untouched"
    );
    drop(keep);
    // The older key, and a host-side leftover: a veth whose reservation is gone.
    let mut old = node.conf.clone();
    old["cni.dev/attachments"] = serde_json::json!([]);
    let r = node.call_with(
        &Call {
            command: "GC".into(),
            ..Default::default()
        },
        &old,
    );
    assert!(r.ok(), "{}", r.stdout);
    assert!(node.reservations().is_empty());
    assert_eq!(
        node.veths().len(),
        1,
        "only the other network's veth is left"
    );
}

fn invoke_other(
    node: &Node,
    other: &Node,
    cmd: &str,
    cid: &str,
    pod: &Path,
) -> podnet::cni_exec::Reply {
    podnet::cni_exec::invoke(
        Path::new(PLUGIN),
        node.ns.ns(),
        &Call::attachment(cmd, cid, pod),
        &serde_json::to_vec(&other.conf).unwrap(),
    )
    .unwrap()
}
