//! Packet traces through the generated state: what each kind of Service does to a connection's
//! first packet, and how many operations an incremental sync writes.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use common::*;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use podnet_proxy::select::NodeFacts;
use podnet_proxy::{compile, service_ports, trace, Compiled, Packet, Plan, Proto, Verdict};
use serde_json::json;

fn build(svcs: &[Service], slices: &[EndpointSlice], node: &NodeFacts) -> Compiled {
    build_after(svcs, slices, node, None)
}

fn build_after(
    svcs: &[Service],
    slices: &[EndpointSlice],
    node: &NodeFacts,
    previous: Option<&podnet_proxy::State>,
) -> Compiled {
    let mut problems = Vec::new();
    let ports = service_ports(svcs, slices, &mut problems);
    let mut c = compile(&ports, node, previous);
    c.problems.extend(problems);
    c
}

fn pkt(src: &str, dst: &str, proto: Proto, dport: u16) -> Packet {
    Packet {
        src: src.parse().unwrap(),
        dst: dst.parse().unwrap(),
        proto,
        dport,
        from_node: false,
    }
}

fn run(c: &Compiled, node: &NodeFacts, p: Packet) -> Verdict {
    trace(&c.state, node, p).unwrap()
}

/// DNAT to exactly `backends`, each with masquerade `masq`.
fn dnat(backends: &[&str], masq: bool) -> Verdict {
    Verdict::Dnat(
        backends
            .iter()
            .map(|b| (b.parse::<SocketAddr>().unwrap(), masq))
            .collect::<BTreeMap<_, _>>(),
    )
}

fn web() -> (Service, EndpointSlice) {
    let svc = service(
        "default",
        "web",
        json!({"clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"],
               "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}),
    );
    let sl = slice(
        "default",
        "web",
        "a",
        "IPv4",
        json!([{"name": "http", "port": 8080, "protocol": "TCP"}]),
        vec![
            ready("10.244.0.5", "node-1"),
            ready("10.244.1.5", "node-2"),
            ready("10.244.2.5", "node-3"),
        ],
    );
    (svc, sl)
}

#[test]
fn cluster_ip_spreads_over_ready_endpoints_and_masquerades_off_cluster_clients() {
    let n = node("node-1");
    let (svc, sl) = web();
    let c = build(&[svc], &[sl], &n);
    assert!(c.problems.is_empty(), "{:?}", c.problems);
    let all = ["10.244.0.5:8080", "10.244.1.5:8080", "10.244.2.5:8080"];
    assert_eq!(
        run(&c, &n, pkt("10.244.1.9", "10.96.0.20", Proto::Tcp, 80)),
        dnat(&all, false)
    );
    // From the node's own address (outside the pod CIDRs): masqueraded.
    assert_eq!(
        run(&c, &n, pkt("172.18.0.1", "10.96.0.20", Proto::Tcp, 80)),
        dnat(&all, true)
    );
    // UDP on a TCP port is not the Service: the ClusterIP rejects it.
    assert_eq!(
        run(&c, &n, pkt("10.244.1.9", "10.96.0.20", Proto::Udp, 80)),
        Verdict::Reject
    );
    // Another port of the ClusterIP: rejected; an unallocated service IP: dropped; elsewhere: untouched.
    assert_eq!(
        run(&c, &n, pkt("10.244.1.9", "10.96.0.20", Proto::Tcp, 81)),
        Verdict::Reject
    );
    assert_eq!(
        run(&c, &n, pkt("10.244.1.9", "10.96.0.21", Proto::Tcp, 80)),
        Verdict::Drop
    );
    assert_eq!(
        run(&c, &n, pkt("10.244.1.9", "10.244.2.5", Proto::Tcp, 8080)),
        Verdict::Pass
    );
}

#[test]
fn several_ports_protocols_and_named_target_ports() {
    let n = node("node-1");
    let svc = service(
        "ns",
        "dns",
        json!({"clusterIPs": ["10.96.0.10"], "ports": [
            {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": "dns"},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": "dns-tcp"},
            {"name": "sig", "port": 3868, "protocol": "SCTP", "targetPort": 3868}]}),
    );
    // Two pods whose named ports resolve to different numbers: two slices (as the controller makes).
    let a = slice(
        "ns",
        "dns",
        "a",
        "IPv4",
        json!([{"name": "dns", "port": 5353, "protocol": "UDP"}, {"name": "dns-tcp", "port": 5354, "protocol": "TCP"},
               {"name": "sig", "port": 3868, "protocol": "SCTP"}]),
        vec![ready("10.244.0.7", "node-1")],
    );
    let b = slice(
        "ns",
        "dns",
        "b",
        "IPv4",
        json!([{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
               {"name": "sig", "port": 3868, "protocol": "SCTP"}]),
        vec![ready("10.244.1.7", "node-2")],
    );
    let c = build(&[svc], &[a, b], &n);
    let src = "10.244.2.2";
    assert_eq!(
        run(&c, &n, pkt(src, "10.96.0.10", Proto::Udp, 53)),
        dnat(&["10.244.0.7:5353", "10.244.1.7:53"], false)
    );
    assert_eq!(
        run(&c, &n, pkt(src, "10.96.0.10", Proto::Tcp, 53)),
        dnat(&["10.244.0.7:5354", "10.244.1.7:53"], false)
    );
    assert_eq!(
        run(&c, &n, pkt(src, "10.96.0.10", Proto::Sctp, 3868)),
        dnat(&["10.244.0.7:3868", "10.244.1.7:3868"], false)
    );
    // The UDP frontend's endpoints are known for conntrack cleanup.
    assert_eq!(c.udp.len(), 1);
}

#[test]
fn no_endpoints_rejects_for_every_frontend() {
    let n = node("node-1");
    let svc = service(
        "default",
        "empty",
        json!({"type": "NodePort", "clusterIPs": ["10.96.0.30"],
        "externalIPs": ["192.0.2.10"],
        "ports": [{"port": 80, "nodePort": 30080}]}),
    );
    // Only a not-ready, not-terminating endpoint: nothing usable.
    let sl = slice(
        "default",
        "empty",
        "a",
        "IPv4",
        json!([{"port": 80}]),
        vec![ep("10.244.1.5", "node-2", false, false, false)],
    );
    let c = build(&[svc], &[sl], &n);
    for (dst, port) in [
        ("10.96.0.30", 80),
        ("172.18.0.1", 30080),
        ("192.0.2.10", 80),
    ] {
        assert_eq!(
            run(&c, &n, pkt("10.244.1.9", dst, Proto::Tcp, port)),
            Verdict::Reject,
            "{dst}"
        );
        assert_eq!(
            run(&c, &n, pkt("198.51.100.1", dst, Proto::Tcp, port)),
            Verdict::Reject,
            "{dst}"
        );
    }
}

#[test]
fn node_port_and_external_traffic_policy() {
    let n = node("node-1");
    let mk = |policy: &str| {
        service(
            "default",
            "np",
            json!({"type": "NodePort", "clusterIPs": ["10.96.0.40"],
        "externalTrafficPolicy": policy, "ports": [{"port": 80, "nodePort": 30080, "targetPort": 8080}]}),
        )
    };
    let sl = slice(
        "default",
        "np",
        "a",
        "IPv4",
        json!([{"port": 8080}]),
        vec![ready("10.244.0.5", "node-1"), ready("10.244.1.5", "node-2")],
    );
    let outside = pkt("198.51.100.7", "172.18.0.1", Proto::Tcp, 30080);
    let both = ["10.244.0.5:8080", "10.244.1.5:8080"];

    let c = build(&[mk("Cluster")], std::slice::from_ref(&sl), &n);
    assert_eq!(run(&c, &n, outside), dnat(&both, true));
    assert!(c.health.is_empty());

    let c = build(&[mk("Local")], std::slice::from_ref(&sl), &n);
    // Only the local endpoint, client address kept.
    assert_eq!(run(&c, &n, outside), dnat(&["10.244.0.5:8080"], false));
    // Pods reach every endpoint (not black-holed), unmasqueraded; the node itself, masqueraded.
    assert_eq!(
        run(&c, &n, pkt("10.244.3.3", "172.18.0.1", Proto::Tcp, 30080)),
        dnat(&both, false)
    );
    let mut from_node = pkt("172.18.0.1", "172.18.0.1", Proto::Tcp, 30080);
    from_node.from_node = true;
    assert_eq!(run(&c, &n, from_node), dnat(&both, true));
    // The ClusterIP is not affected by the external policy.
    assert_eq!(
        run(&c, &n, pkt("10.244.3.3", "10.96.0.40", Proto::Tcp, 80)),
        dnat(&both, false)
    );

    // On a node without a local endpoint, outside traffic is dropped (the load balancer's health
    // check steers it elsewhere); pods still get through.
    let n3 = NodeFacts {
        name: "node-3".into(),
        nodeport_addresses: vec!["172.18.0.3".parse().unwrap()],
        ..node("x")
    };
    let c = build(&[mk("Local")], &[sl], &n3);
    assert_eq!(
        run(
            &c,
            &n3,
            pkt("198.51.100.7", "172.18.0.3", Proto::Tcp, 30080)
        ),
        Verdict::Drop
    );
    assert_eq!(
        run(&c, &n3, pkt("10.244.3.3", "172.18.0.3", Proto::Tcp, 30080)),
        dnat(&both, false)
    );
}

#[test]
fn load_balancer_ips_source_ranges_external_ips_and_health_check() {
    let n = node("node-1");
    let svc = with_status(
        service(
            "default",
            "lb",
            json!({"type": "LoadBalancer", "clusterIPs": ["10.96.0.50"],
            "externalIPs": ["192.0.2.50"], "externalTrafficPolicy": "Local", "healthCheckNodePort": 32000,
            "loadBalancerSourceRanges": ["203.0.113.0/24"],
            "ports": [{"port": 443, "nodePort": 30443}]}),
        ),
        json!({"loadBalancer": {"ingress": [{"ip": "198.51.100.50"}, {"ip": "198.51.100.51", "ipMode": "Proxy"}]}}),
    );
    let sl = slice(
        "default",
        "lb",
        "a",
        "IPv4",
        json!([{"port": 443}]),
        vec![
            ready("10.244.0.8", "node-1"),
            ready("10.244.0.9", "node-1"),
            ready("10.244.1.8", "node-2"),
        ],
    );
    let c = build(&[svc], &[sl], &n);
    let local = ["10.244.0.8:443", "10.244.0.9:443"];
    assert_eq!(
        run(&c, &n, pkt("203.0.113.9", "198.51.100.50", Proto::Tcp, 443)),
        dnat(&local, false)
    );
    assert_eq!(
        run(&c, &n, pkt("203.0.114.9", "198.51.100.50", Proto::Tcp, 443)),
        Verdict::Drop
    );
    // ipMode Proxy: the load balancer proxies, the node does not take the address.
    assert_eq!(
        run(&c, &n, pkt("203.0.113.9", "198.51.100.51", Proto::Tcp, 443)),
        Verdict::Pass
    );
    // Source ranges guard the load-balancer IP only.
    assert_eq!(
        run(&c, &n, pkt("203.0.114.9", "192.0.2.50", Proto::Tcp, 443)),
        dnat(&local, false)
    );
    let hc = &c.health[&32000];
    assert_eq!((hc.service.as_str(), hc.local_endpoints), ("default/lb", 2));
}

#[test]
fn internal_traffic_policy_local() {
    let n = node("node-1");
    let svc = service(
        "default",
        "itp",
        json!({"clusterIPs": ["10.96.0.60"], "internalTrafficPolicy": "Local",
        "ports": [{"port": 80}]}),
    );
    let sl = slice(
        "default",
        "itp",
        "a",
        "IPv4",
        json!([{"port": 80}]),
        vec![ready("10.244.0.5", "node-1"), ready("10.244.1.5", "node-2")],
    );
    let c = build(std::slice::from_ref(&svc), std::slice::from_ref(&sl), &n);
    assert_eq!(
        run(&c, &n, pkt("10.244.0.9", "10.96.0.60", Proto::Tcp, 80)),
        dnat(&["10.244.0.5:80"], false)
    );
    // A node without local endpoints drops (the Service has endpoints, just not here).
    let c = build(&[svc], &[sl], &node("node-3"));
    assert_eq!(
        run(
            &c,
            &node("node-3"),
            pkt("10.244.2.9", "10.96.0.60", Proto::Tcp, 80)
        ),
        Verdict::Drop
    );
}

#[test]
fn terminating_endpoints_are_the_fallback_only() {
    let n = node("node-1");
    let svc = service(
        "default",
        "t",
        json!({"clusterIPs": ["10.96.0.70"], "ports": [{"port": 80}]}),
    );
    let mixed = slice(
        "default",
        "t",
        "a",
        "IPv4",
        json!([{"port": 80}]),
        vec![
            ready("10.244.0.5", "node-1"),
            ep("10.244.1.5", "node-2", false, true, true),
            ep("10.244.2.5", "node-3", false, false, true),
        ],
    );
    let c = build(std::slice::from_ref(&svc), &[mixed], &n);
    assert_eq!(
        run(&c, &n, pkt("10.244.0.9", "10.96.0.70", Proto::Tcp, 80)),
        dnat(&["10.244.0.5:80"], false)
    );
    let draining = slice(
        "default",
        "t",
        "a",
        "IPv4",
        json!([{"port": 80}]),
        vec![
            ep("10.244.1.5", "node-2", false, true, true),
            ep("10.244.2.5", "node-3", false, false, true),
        ],
    );
    let c = build(&[svc], &[draining], &n);
    // Serving and terminating: still used; not serving: never.
    assert_eq!(
        run(&c, &n, pkt("10.244.0.9", "10.96.0.70", Proto::Tcp, 80)),
        dnat(&["10.244.1.5:80"], false)
    );
}

#[test]
fn topology_hints_with_fallback() {
    let n = node("node-1"); // zone-a
    let svc = service(
        "default",
        "topo",
        json!({"clusterIPs": ["10.96.0.80"], "trafficDistribution": "PreferClose",
        "ports": [{"port": 80}]}),
    );
    let hinted = |addr: &str, zone: &str| {
        let mut e = ready(addr, "node-x");
        e["hints"] = json!({"forZones": [{"name": zone}]});
        e
    };
    let sl = slice(
        "default",
        "topo",
        "a",
        "IPv4",
        json!([{"port": 80}]),
        vec![
            hinted("10.244.0.5", "zone-a"),
            hinted("10.244.1.5", "zone-b"),
            hinted("10.244.2.5", "zone-a"),
        ],
    );
    let c = build(std::slice::from_ref(&svc), &[sl], &n);
    assert_eq!(
        run(&c, &n, pkt("10.244.0.9", "10.96.0.80", Proto::Tcp, 80)),
        dnat(&["10.244.0.5:80", "10.244.2.5:80"], false)
    );
    // One endpoint without hints: hints are not trusted, all endpoints used.
    let sl = slice(
        "default",
        "topo",
        "a",
        "IPv4",
        json!([{"port": 80}]),
        vec![
            hinted("10.244.0.5", "zone-a"),
            ready("10.244.1.5", "node-y"),
        ],
    );
    let c = build(std::slice::from_ref(&svc), &[sl], &n);
    assert_eq!(
        run(&c, &n, pkt("10.244.0.9", "10.96.0.80", Proto::Tcp, 80)),
        dnat(&["10.244.0.5:80", "10.244.1.5:80"], false)
    );
    // No endpoint for this zone: all.
    let sl = slice(
        "default",
        "topo",
        "a",
        "IPv4",
        json!([{"port": 80}]),
        vec![
            hinted("10.244.1.5", "zone-b"),
            hinted("10.244.2.5", "zone-c"),
        ],
    );
    let c = build(&[svc], &[sl], &n);
    assert_eq!(
        run(&c, &n, pkt("10.244.0.9", "10.96.0.80", Proto::Tcp, 80)),
        dnat(&["10.244.1.5:80", "10.244.2.5:80"], false)
    );
}

#[test]
fn session_affinity_chain_remembers_the_client() {
    let n = node("node-1");
    let svc = service(
        "default",
        "aff",
        json!({"clusterIPs": ["10.96.0.90"], "sessionAffinity": "ClientIP",
        "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 600}}, "ports": [{"port": 80}]}),
    );
    let sl = slice(
        "default",
        "aff",
        "a",
        "IPv4",
        json!([{"port": 80}]),
        vec![ready("10.244.0.5", "node-1"), ready("10.244.1.5", "node-2")],
    );
    let c = build(&[svc], &[sl], &n);
    assert_eq!(
        run(&c, &n, pkt("10.244.0.9", "10.96.0.90", Proto::Tcp, 80)),
        dnat(&["10.244.0.5:80", "10.244.1.5:80"], false)
    );
    let (name, chain) = c
        .state
        .chains
        .iter()
        .find(|(k, _)| k.starts_with("aff4-"))
        .expect("affinity chain");
    let rules = chain.rules();
    // One lookup per endpoint, then the random picks that remember (600 s).
    assert_eq!(rules.len(), 1 + 2 + 2, "{name}: {rules:#?}");
    assert!(
        rules[1].contains("@affinity4") && rules[1].contains("dnat ip to 10.244.0.5:80"),
        "{rules:#?}"
    );
    assert!(
        rules
            .iter()
            .all(|r| !r.contains("update") || r.contains("timeout 600s")),
        "{rules:#?}"
    );
    // Affinity chains name their endpoints; no slots written.
    assert_eq!(c.state.sets.keys().filter(|id| id.is_slots()).count(), 0);
}

#[test]
fn hairpin_is_masqueraded() {
    let n = node("node-1");
    let (svc, sl) = web();
    let c = build(&[svc], &[sl], &n);
    let v = run(&c, &n, pkt("10.244.0.5", "10.96.0.20", Proto::Tcp, 80));
    let Verdict::Dnat(to) = v else {
        panic!("{v:?}")
    };
    assert!(
        to[&"10.244.0.5:8080".parse().unwrap()],
        "itself: masqueraded"
    );
    assert!(!to[&"10.244.1.5:8080".parse().unwrap()]);
}

#[test]
fn dual_stack_services_use_their_own_family() {
    let n = node("node-1");
    let svc = service(
        "default",
        "ds",
        json!({"type": "NodePort", "clusterIPs": ["10.96.0.100", "fd96::64"],
        "ipFamilies": ["IPv4", "IPv6"], "ports": [{"port": 80, "nodePort": 30100}]}),
    );
    let v4 = slice(
        "default",
        "ds",
        "a",
        "IPv4",
        json!([{"port": 80}]),
        vec![ready("10.244.0.5", "node-1")],
    );
    let v6 = slice(
        "default",
        "ds",
        "b",
        "IPv6",
        json!([{"port": 80}]),
        vec![ready("fd44::5", "node-1")],
    );
    let c = build(&[svc], &[v4, v6], &n);
    assert_eq!(
        run(&c, &n, pkt("10.244.0.9", "10.96.0.100", Proto::Tcp, 80)),
        dnat(&["10.244.0.5:80"], false)
    );
    assert_eq!(
        run(&c, &n, pkt("fd44::9", "fd96::64", Proto::Tcp, 80)),
        dnat(&["[fd44::5]:80"], false)
    );
    assert_eq!(
        run(&c, &n, pkt("2001:db8::1", "fd18::1", Proto::Tcp, 30100)),
        dnat(&["[fd44::5]:80"], true)
    );
    // Unallocated address in the IPv6 service CIDR.
    assert_eq!(
        run(&c, &n, pkt("fd44::9", "fd96::65", Proto::Tcp, 80)),
        Verdict::Drop
    );
}

#[test]
fn endpoints_merged_across_slices_and_conflicts_reported() {
    let n = node("node-1");
    let (svc, sl) = web();
    // The same endpoint in a second slice, not ready there (a move in progress): counted once, ready.
    let dup = slice(
        "default",
        "web",
        "b",
        "IPv4",
        json!([{"name": "http", "port": 8080, "protocol": "TCP"}]),
        vec![
            ep("10.244.0.5", "node-1", false, false, false),
            ready("10.244.3.5", "node-4"),
        ],
    );
    let other = service(
        "other",
        "web2",
        json!({"clusterIPs": ["10.96.0.20"], "ports": [{"name": "http", "port": 80}]}),
    );
    let c = build(&[svc, other], &[sl, dup], &n);
    assert_eq!(
        run(&c, &n, pkt("10.244.0.9", "10.96.0.20", Proto::Tcp, 80)),
        dnat(
            &[
                "10.244.0.5:8080",
                "10.244.1.5:8080",
                "10.244.2.5:8080",
                "10.244.3.5:8080"
            ],
            false
        )
    );
    assert_eq!(c.problems.len(), 1, "{:?}", c.problems);
    assert!(
        c.problems[0].to_string().contains("other/web2"),
        "{}",
        c.problems[0]
    );
}

#[test]
fn incremental_plans_are_small() {
    let n = node("node-1");
    let mut svcs = Vec::new();
    let mut slices = Vec::new();
    for i in 0..200u32 {
        let name = format!("s{i}");
        svcs.push(service(
            "bulk",
            &name,
            json!({"clusterIPs": [format!("10.97.{}.{}", i / 250, i % 250 + 1)],
            "ports": [{"port": 80}]}),
        ));
        let eps = (0..10)
            .map(|j| ready(&format!("10.244.{}.{}", j, i % 250 + 1), "node-2"))
            .collect();
        slices.push(slice(
            "bulk",
            &name,
            "a",
            "IPv4",
            json!([{"port": 80}]),
            eps,
        ));
    }
    let before = build(&svcs, &slices, &n);
    assert_eq!(Plan::diff(&before.state, &before.state).ops(), 0, "no-op");
    // One endpoint replaced by another: one slot rewritten (delete + add).
    let mut changed = slices.clone();
    changed[7].endpoints.as_mut().unwrap()[3].addresses = vec!["10.244.99.1".into()];
    let after = build_after(&svcs, &changed, &n, Some(&before.state));
    let plan = Plan::diff(&before.state, &after.state);
    assert_eq!(plan.ops(), 2, "{plan:#?}");
    // From scratch the slots would be ordered by address: more to rewrite.
    assert!(Plan::diff(&before.state, &build(&svcs, &changed, &n).state).ops() > 2);
    // One endpoint fewer: the frontend moves to int4-9 and its map endpoints4-9, both new.
    changed[7].endpoints.as_mut().unwrap().remove(0);
    let after = build_after(&svcs, &changed, &n, Some(&before.state));
    let plan = Plan::diff(&before.state, &after.state);
    // Map, chain int4-9 with its 2 rules; the frontend's verdict (2); 10 slots out, 9 in.
    assert_eq!(plan.ops(), 1 + 3 + 2 + 10 + 9, "{plan:#?}");
    assert_eq!(plan.add_chains.len(), 1);
    let n9 = build(&svcs, &changed, &n);
    assert_eq!(
        trace(
            &after.state,
            &n,
            pkt("10.244.0.9", "10.97.0.8", Proto::Tcp, 80)
        ),
        trace(
            &n9.state,
            &n,
            pkt("10.244.0.9", "10.97.0.8", Proto::Tcp, 80)
        ),
    );
    // A new Service: its frontend, its ClusterIP, its ten slots.
    let mut more = svcs.clone();
    more.push(service(
        "bulk",
        "new",
        json!({"clusterIPs": ["10.98.0.1"], "ports": [{"port": 80}]}),
    ));
    let mut more_slices = slices.clone();
    more_slices.push(slice(
        "bulk",
        "new",
        "a",
        "IPv4",
        json!([{"port": 80}]),
        (0..10)
            .map(|j| ready(&format!("10.244.{j}.200"), "node-2"))
            .collect(),
    ));
    let plan = Plan::diff(&before.state, &build(&more, &more_slices, &n).state);
    assert_eq!(plan.ops(), 12, "{plan:#?}");
}

#[test]
fn stale_udp_flows_when_an_endpoint_goes() {
    let n = node("node-1");
    let svc = service(
        "kube-system",
        "dns",
        json!({"clusterIPs": ["10.96.0.10"],
        "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]}),
    );
    let sl = |eps| {
        slice(
            "kube-system",
            "dns",
            "a",
            "IPv4",
            json!([{"name": "dns", "port": 53, "protocol": "UDP"}]),
            eps,
        )
    };
    let before = build(
        std::slice::from_ref(&svc),
        &[sl(vec![
            ready("10.244.0.5", "node-1"),
            ready("10.244.1.5", "node-2"),
        ])],
        &n,
    );
    let after = build(&[svc], &[sl(vec![ready("10.244.1.5", "node-2")])], &n);
    let stale = before.stale_udp(&after);
    assert_eq!(stale.len(), 1);
    assert_eq!(stale[0].0.addr.to_string(), "10.96.0.10");
    assert_eq!(stale[0].1.to_string(), "10.244.0.5:53");
    assert!(after.stale_udp(&after).is_empty());
}

#[test]
fn chains_are_added_after_the_chains_they_go_to() {
    let n = node("node-1");
    let svc = service(
        "default",
        "np",
        json!({"type": "NodePort", "clusterIPs": ["10.96.0.40"],
        "externalTrafficPolicy": "Local", "ports": [{"port": 80, "nodePort": 30080}]}),
    );
    let sl = slice(
        "default",
        "np",
        "a",
        "IPv4",
        json!([{"port": 80}]),
        vec![
            ready("10.244.0.5", "node-1"),
            ready("10.244.1.5", "node-2"),
            ready("10.244.2.5", "node-3"),
        ],
    );
    let c = build(&[svc], &[sl], &n);
    let plan = Plan::full(&c.state);
    let order: Vec<&str> = plan.add_chains.iter().map(|(n, _)| n.as_str()).collect();
    let pos = |name: &str| order.iter().position(|n| *n == name).unwrap();
    assert!(pos("pods4-3") < pos("local4-1-3"), "{order:?}");
    let back = Plan::diff(&c.state, &podnet_proxy::State::default());
    let del = &back.delete_chains;
    let dpos = |name: &str| del.iter().position(|n| n == name).unwrap();
    assert!(dpos("local4-1-3") < dpos("pods4-3"), "{del:?}");
}
