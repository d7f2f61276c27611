//! host-gw and VXLAN routing across three node namespaces on one underlay bridge, with pods wired by the
//! real podnet-cni: pods reach pods on other nodes; a second reconcile writes nothing; a node
//! removed loses its route; foreign routes are untouched.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use podnet::cni_exec::{invoke, Call};
use podnet_netdev::testing::TestNs;
use podnet_netdev::Netlink;
use podnet_routing::{desired_routes, reconcile, reconcile_vxlan, NodeInfo, VxlanConfig};
use serde_json::json;

struct Cluster {
    /// The underlay and node namespaces, removed on drop.
    underlay: Underlay,
    nodes: Vec<NodeInfo>,
    data: tempfile::TempDir,
}

fn cluster(n: usize) -> Cluster {
    cluster_with(n, false)
}

/// `dual`: nodes get an IPv6 pod CIDR too (the underlay stays IPv4).
fn cluster_with(n: usize, dual: bool) -> Cluster {
    let underlay = Underlay::new(n);
    let nodes = (1..=n)
        .map(|i| NodeInfo {
            name: format!("node-{i}"),
            addresses: vec![Underlay::address(i).parse().unwrap()],
            pod_cidrs: std::iter::once(format!("10.244.{i}.0/24"))
                .chain(dual.then(|| format!("fd00:10:244:{i}::/64")))
                .map(|c| c.parse().unwrap())
                .collect(),
            vtep_mac: None,
        })
        .collect();
    Cluster {
        underlay,
        nodes,
        data: tempfile::tempdir().unwrap(),
    }
}

impl Cluster {
    /// A pod on `node`; its addresses (one per pod CIDR of the node).
    fn add_pod(&self, node: usize) -> (TestNs, Vec<String>) {
        let (ns, info) = (&self.underlay.nodes[node], &self.nodes[node]);
        let ranges: Vec<_> = info
            .pod_cidrs
            .iter()
            .map(|c| json!([{"subnet": c}]))
            .collect();
        let conf = json!({"cniVersion": "1.1.0", "name": "hostgw", "type": "podnet-cni", "mode": "bridge",
            "ipam": {"type": "podnet-ipam", "ranges": ranges,
                     "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}], "dataDir": self.data.path().join(&info.name)}});
        let pod = TestNs::new("p").unwrap();
        let r = invoke(
            Path::new(PLUGIN),
            ns.ns(),
            &Call::attachment("ADD", "c", &pod.path()),
            &serde_json::to_vec(&conf).unwrap(),
        )
        .unwrap();
        assert!(r.ok(), "{}", r.stdout);
        (pod, result_ips(&r.json))
    }

    fn reconcile(&self, node: usize, infos: &[NodeInfo]) -> podnet_routing::Plan {
        let (ns, info) = (&self.underlay.nodes[node], &self.nodes[node]);
        let mut nl = Netlink::in_ns(ns.ns()).unwrap();
        reconcile(&mut nl, &desired_routes(&info.name, infos)).unwrap()
    }

    fn reconcile_vxlan(&self, node: usize, infos: &[NodeInfo]) -> podnet_routing::VxlanPlan {
        let (ns, info) = (&self.underlay.nodes[node], &self.nodes[node]);
        let mut nl = Netlink::in_ns(ns.ns()).unwrap();
        reconcile_vxlan(&mut nl, &VxlanConfig::default(), info, infos).unwrap()
    }

    fn infos(&self) -> Vec<NodeInfo> {
        self.nodes.clone()
    }
}

/// Every pod pings every address of every pod on the other nodes.
fn assert_full_mesh(pods: &[(TestNs, Vec<String>)]) {
    for (from, (pod, _)) in pods.iter().enumerate() {
        for (to, (_, addrs)) in pods.iter().enumerate() {
            for addr in addrs.iter().filter(|_| from != to) {
                assert!(
                    ping(pod.name(), addr),
                    "pod on node {from} -> pod on node {to} ({addr})"
                );
            }
        }
    }
}

#[test]
fn host_gw_routes_pods_across_nodes() {
    let c = cluster(3);
    let pods: Vec<_> = (0..3).map(|i| c.add_pod(i)).collect();
    assert!(!ping(pods[0].0.name(), &pods[1].1[0]), "no route yet");
    let infos = c.infos();
    for i in 0..3 {
        assert_eq!(c.reconcile(i, &infos).added.len(), 2, "node {i}");
    }
    assert_full_mesh(&pods);
    // Nothing changed: nothing written.
    for i in 0..3 {
        assert_eq!(c.reconcile(i, &infos).operations(), 0);
    }
    // A foreign route in the same table is never touched.
    let foreign = c.underlay.nodes[0].name();
    ip(
        foreign,
        &[
            "route",
            "add",
            "10.99.0.0/16",
            "via",
            "192.168.77.3",
            "proto",
            "static",
        ],
    );
    // node-3 leaves: node-1 drops its route (and only that).
    let plan = c.reconcile(0, &infos[..2]);
    assert_eq!(plan.removed.len(), 1);
    assert_eq!(plan.removed[0].dst, infos[2].pod_cidrs[0]);
    assert!(plan.added.is_empty());
    assert!(!ping(pods[0].0.name(), &pods[2].1[0]));
    assert!(ping(pods[0].0.name(), &pods[1].1[0]));
    let routes = ip_json(foreign, &["route", "show", "10.99.0.0/16"]);
    assert_eq!(routes.as_array().unwrap().len(), 1, "foreign route kept");
    // node-2 moves to another address: its route is replaced, not duplicated.
    let mut moved = infos.clone();
    moved[1].addresses = vec!["192.168.77.3".parse().unwrap()];
    let plan = c.reconcile(0, &moved);
    assert_eq!(
        plan.added.len(),
        2,
        "node-3 back and node-2 replaced: {plan:?}"
    );
    let r = ip_json(
        foreign,
        &["route", "show", &infos[1].pod_cidrs[0].to_string()],
    );
    assert_eq!(r.as_array().unwrap().len(), 1);
    assert_eq!(r[0]["gateway"], "192.168.77.3");
}

#[test]
fn vxlan_routes_dual_stack_pods_across_nodes() {
    let c = cluster_with(3, true);
    let pods: Vec<_> = (0..3).map(|i| c.add_pod(i)).collect();
    assert_eq!(pods[0].1.len(), 2, "dual-stack pod");
    let infos = c.infos();
    for i in 0..3 {
        let plan = c.reconcile_vxlan(i, &infos);
        assert_eq!(plan.routes.added.len(), 4, "node {i}: {plan:?}");
    }
    let vx = &ip_json(
        c.underlay.nodes[0].name(),
        &["link", "show", "podnet.vxlan"],
    )[0];
    assert_eq!(vx["linkinfo"]["info_data"]["id"], 1);
    assert_eq!(vx["mtu"], 1450, "underlay MTU minus the VXLAN overhead");
    assert_eq!(
        vx["address"],
        podnet_netdev::format_mac(&podnet_routing::vtep_mac(&infos[0]))
    );
    let fdb = Command::new("bridge")
        .args([
            "-n",
            c.underlay.nodes[0].name(),
            "-j",
            "fdb",
            "show",
            "dev",
            "podnet.vxlan",
        ])
        .output()
        .unwrap();
    let fdb: serde_json::Value = serde_json::from_slice(&fdb.stdout).unwrap();
    assert!(
        fdb.as_array()
            .unwrap()
            .iter()
            .any(|e| e["dst"] == "192.168.77.2"),
        "{fdb}"
    );
    assert_full_mesh(&pods);
    for i in 0..3 {
        assert_eq!(
            c.reconcile_vxlan(i, &infos).operations(),
            0,
            "restart with nothing changed writes nothing"
        );
    }
    // node-3 leaves: its neighbour, FDB entry and route go.
    let plan = c.reconcile_vxlan(0, &infos[..2]);
    assert_eq!(plan.routes.removed.len(), 2, "its IPv4 and IPv6 routes");
    assert_eq!(
        plan.entries, 3,
        "two neighbours (one per family) and one FDB entry removed"
    );
    assert!(!ping(pods[0].0.name(), &pods[2].1[0]));
    assert!(!ping(pods[0].0.name(), &pods[2].1[1]));
    assert!(ping(pods[0].0.name(), &pods[1].1[0]));
}
