//! The generated table in a real kernel, with real packets: a client namespace, a "node"
//! namespace running podnet's table, and a server namespace with two pod addresses.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use podnet_netdev::testing::{Routed, TestNs};
use podnet_proxy::select::NodeFacts;
use std::sync::Arc;

use podnet_proxy::{compile, service_ports, Applier, Compiled, Compiler};
use serde_json::json;

/// client 10.244.0.9 — node (10.244.0.1 | 10.244.1.1, 172.18.0.1) — server 10.244.1.5, .6
fn net() -> Routed {
    Routed::new("px", &["172.18.0.1/32"]).unwrap()
}

/// Listeners on both server addresses at `port`, answering their own address.
fn serve(server: &TestNs, port: u16) {
    for addr in ["10.244.1.5", "10.244.1.6"] {
        let listener = server
            .ns()
            .run(|| TcpListener::bind((addr, port)))
            .unwrap()
            .unwrap();
        std::thread::spawn(move || {
            for mut conn in listener.incoming().flatten() {
                let _ = conn.write_all(addr.as_bytes());
            }
        });
    }
}

/// Connects from the client; the answering server's address, or the error kind.
fn connect(client: &TestNs, to: &str) -> Result<String, std::io::ErrorKind> {
    let to: SocketAddr = to.parse().unwrap();
    client
        .ns()
        .run(|| {
            let mut s = TcpStream::connect_timeout(&to, Duration::from_millis(500))
                .map_err(|e| e.kind())?;
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut answer = String::new();
            s.read_to_string(&mut answer).map_err(|e| e.kind())?;
            Ok(answer)
        })
        .unwrap()
}

fn facts() -> NodeFacts {
    NodeFacts {
        name: "node-1".into(),
        zone: None,
        nodeport_addresses: vec!["172.18.0.1".parse().unwrap()],
        cluster_cidrs: vec!["10.244.0.0/16".parse().unwrap()],
        service_cidrs: vec!["10.96.0.0/12".parse().unwrap()],
    }
}

fn objects(endpoints: &[&str]) -> (Vec<Service>, Vec<EndpointSlice>) {
    let svcs = vec![
        service(
            "default",
            "web",
            json!({"type": "NodePort", "clusterIPs": ["10.96.0.20"],
            "ports": [{"port": 80, "targetPort": 8080, "nodePort": 30080}]}),
        ),
        service(
            "default",
            "empty",
            json!({"clusterIPs": ["10.96.0.30"], "ports": [{"port": 80}]}),
        ),
    ];
    let eps = endpoints.iter().map(|a| ready(a, "node-2")).collect();
    let slices = vec![slice(
        "default",
        "web",
        "a",
        "IPv4",
        json!([{"port": 8080}]),
        eps,
    )];
    (svcs, slices)
}

fn build(
    objs: &(Vec<Service>, Vec<EndpointSlice>),
    previous: Option<&podnet_proxy::State>,
) -> Compiled {
    let mut problems = Vec::new();
    let ports = service_ports(&objs.0, &objs.1, &mut problems);
    assert!(problems.is_empty(), "{problems:?}");
    compile(&ports, &facts(), previous)
}

#[test]
fn services_on_the_data_path() {
    let n = net();
    serve(&n.server, 8080);
    let mut applier = Applier::new("podnet-proxy");
    let objs = objects(&["10.244.1.5", "10.244.1.6"]);
    let c = build(&objs, None);
    let stats = n
        .node
        .ns()
        .run(|| applier.sync(&facts(), &c.state))
        .unwrap()
        .unwrap();
    assert!(stats.full && stats.ops > 0);

    // ClusterIP: spread over both endpoints.
    let seen: BTreeSet<String> = (0..30)
        .map(|_| connect(&n.client, "10.96.0.20:80").unwrap())
        .collect();
    assert_eq!(seen, ["10.244.1.5", "10.244.1.6"].map(String::from).into());
    // NodePort on the node's address.
    assert!(connect(&n.client, "172.18.0.1:30080")
        .unwrap()
        .starts_with("10.244.1."));
    // No endpoints, and an unused port of a ClusterIP: refused at once.
    for to in ["10.96.0.30:80", "10.96.0.20:81"] {
        let start = Instant::now();
        assert_eq!(
            connect(&n.client, to),
            Err(std::io::ErrorKind::ConnectionRefused),
            "{to}"
        );
        assert!(
            start.elapsed() < Duration::from_millis(400),
            "{to}: {:?}",
            start.elapsed()
        );
    }
    // An unallocated service IP: dropped (the client times out).
    assert_eq!(
        connect(&n.client, "10.96.0.99:80"),
        Err(std::io::ErrorKind::TimedOut)
    );

    // No-op resync: nothing written.
    let c2 = build(&objs, applier.written());
    let stats = n
        .node
        .ns()
        .run(|| applier.sync(&facts(), &c2.state))
        .unwrap()
        .unwrap();
    assert_eq!((stats.ops, stats.full), (0, false));

    // One endpoint goes: both frontends (ClusterIP, NodePort) move to the one-endpoint chains
    // and their maps (2 maps and 2 chains with 2 rules in, 2 verdicts rewritten, 4 slots out
    // and 2 in, 2 chains and 2 maps out: 22 operations, the visible part in one transaction);
    // new connections all reach the remaining endpoint.
    let objs = objects(&["10.244.1.6"]);
    let c3 = build(&objs, applier.written());
    let stats = n
        .node
        .ns()
        .run(|| applier.sync(&facts(), &c3.state))
        .unwrap()
        .unwrap();
    assert!(!stats.full && stats.ops <= 22, "{stats:?}");
    for _ in 0..10 {
        assert_eq!(connect(&n.client, "10.96.0.20:80").unwrap(), "10.244.1.6");
    }
    // Scale to zero: refused at once.
    let c4 = build(&objects(&[]), applier.written());
    n.node
        .ns()
        .run(|| applier.sync(&facts(), &c4.state))
        .unwrap()
        .unwrap();
    assert_eq!(
        connect(&n.client, "10.96.0.20:80"),
        Err(std::io::ErrorKind::ConnectionRefused)
    );

    // A new applier (agent restart) adopts the table: refills its sets in one transaction.
    let mut fresh = Applier::new("podnet-proxy");
    let c5 = build(&objects(&["10.244.1.5"]), None);
    let stats = n
        .node
        .ns()
        .run(|| fresh.sync(&facts(), &c5.state))
        .unwrap()
        .unwrap();
    assert!(stats.full && !stats.created, "{stats:?}");
    assert_eq!(connect(&n.client, "10.96.0.20:80").unwrap(), "10.244.1.5");
    // Restart while the kernel holds other chains: those not wanted any more are removed.
    let mut again = Applier::new("podnet-proxy");
    let c6 = build(&objects(&["10.244.1.5", "10.244.1.6"]), None);
    let stats = n
        .node
        .ns()
        .run(|| again.sync(&facts(), &c6.state))
        .unwrap()
        .unwrap();
    assert!(stats.full && !stats.created, "{stats:?}");
    let listing = nft_listing(&n.node);
    // Sized slot maps carry their capacity (2^12) in their names and their chains'.
    assert!(
        listing.contains("chain int4-2-c12") && !listing.contains("int4-1-"),
        "{listing}"
    );
    assert!(listing.contains("map int4-2-c12-slots"), "{listing}");
    let seen: BTreeSet<String> = (0..30)
        .map(|_| connect(&n.client, "10.96.0.20:80").unwrap())
        .collect();
    assert_eq!(seen.len(), 2);
    n.node.ns().run(|| again.remove()).unwrap().unwrap();
    let _ = (IpAddr::from([0, 0, 0, 0]),);
}

fn nft_listing(ns: &TestNs) -> String {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns.name(),
            "nft",
            "-t",
            "list",
            "table",
            "inet",
            "podnet-proxy",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `count` ClusterIP Services with two endpoints each: the first on the real servers, the
/// others on made-up addresses.
fn many(count: u32) -> (Vec<Arc<Service>>, Vec<Arc<EndpointSlice>>) {
    let mut svcs = Vec::new();
    let mut slices = Vec::new();
    for i in 0..count {
        let name = format!("s{i}");
        let vip = std::net::Ipv4Addr::from(u32::from(std::net::Ipv4Addr::new(10, 96, 16, 0)) + i);
        svcs.push(Arc::new(service(
            "bulk",
            &name,
            json!({"clusterIPs": [vip.to_string()], "ports": [{"port": 80, "targetPort": 8080}]}),
        )));
        let eps = if i == 0 {
            vec![ready("10.244.1.5", "node-2"), ready("10.244.1.6", "node-2")]
        } else {
            let base = u32::from(std::net::Ipv4Addr::new(10, 128, 0, 0)) + 2 * i;
            (0..2)
                .map(|j| ready(&std::net::Ipv4Addr::from(base + j).to_string(), "node-2"))
                .collect()
        };
        slices.push(Arc::new(slice(
            "bulk",
            &name,
            "a",
            "IPv4",
            json!([{"port": 8080}]),
            eps,
        )));
    }
    (svcs, slices)
}

#[test]
fn a_slot_map_outgrowing_its_size_moves_to_a_bigger_one() {
    let n = net();
    serve(&n.server, 8080);
    let mut applier = Applier::new("podnet-proxy");
    let mut compiler = Compiler::new();
    let node = facts();
    let (svcs, slices) = many(2000);
    let up = compiler.update(&svcs, &slices, &node);
    let apply = |applier: &mut Applier, compiler: &Compiler, up: &podnet_proxy::Update| {
        n.node
            .ns()
            .run(|| applier.apply(&node, compiler.state(), &up.plan))
            .unwrap()
            .unwrap()
    };
    let stats = apply(&mut applier, &compiler, &up);
    assert!(stats.full && stats.created, "{stats:?}");
    // 4,000 slots: a map of 2^13; 2,000 frontends and ClusterIPs: sets of 2^12.
    let listing = nft_listing(&n.node);
    assert!(listing.contains("map int4-2-c13-slots"), "{listing}");
    assert!(listing.contains("size 8192"), "{listing}");
    assert!(listing.contains("map frontends4-c12 "), "{listing}");
    assert!(listing.contains("set service-ips4-c12 "), "{listing}");

    // 2,100 more Services: 8,200 slots do not fit; the sync moves them to 2^14.
    let (svcs, slices) = many(4100);
    let up = compiler.update(&svcs, &slices, &node);
    assert!(
        !up.full && up.plan.add.len() >= 3 * 2100,
        "{}",
        up.plan.add.len()
    );
    let stats = apply(&mut applier, &compiler, &up);
    assert!(stats.full && !stats.created, "{stats:?}");
    let listing = nft_listing(&n.node);
    assert!(
        listing.contains("chain int4-2-c14") && !listing.contains("int4-2-c13"),
        "{listing}"
    );
    // 4,100 frontends and ClusterIPs: the skeleton's sets moved too, its rules with them.
    assert!(
        listing.contains("map frontends4-c13 ") && !listing.contains("frontends4-c12"),
        "{listing}"
    );
    assert!(
        listing.contains("vmap @frontends4-c13")
            && listing.contains("@service-ips4-c13 goto refuse"),
        "{listing}"
    );
    assert_eq!(
        connect(&n.client, "10.96.16.0:81"),
        Err(std::io::ErrorKind::ConnectionRefused)
    );
    let seen: BTreeSet<String> = (0..30)
        .map(|_| connect(&n.client, "10.96.16.0:80").unwrap())
        .collect();
    assert_eq!(seen, ["10.244.1.5", "10.244.1.6"].map(String::from).into());

    // Within the room, changes are incremental again.
    let (svcs, slices) = many(4000);
    let up = compiler.update(&svcs, &slices, &node);
    let stats = apply(&mut applier, &compiler, &up);
    assert!(!stats.full, "{stats:?}");
    assert_eq!(stats.ops, up.plan.ops());
    assert_eq!(connect(&n.client, "10.96.16.0:80").map(|_| ()), Ok(()));
    n.node.ns().run(|| applier.remove()).unwrap().unwrap();
}

/// A LoadBalancer Service whose ingress IP is 192.0.2.10, open to `ranges`.
fn balanced(ranges: &[&str]) -> (Vec<Service>, Vec<EndpointSlice>) {
    let svc = with_status(
        service(
            "default",
            "lb",
            json!({"type": "LoadBalancer", "clusterIPs": ["10.96.0.40"],
                "loadBalancerSourceRanges": ranges,
                "ports": [{"port": 80, "targetPort": 8080, "nodePort": 30090}]}),
        ),
        json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}),
    );
    let eps = vec![ready("10.244.1.5", "node-2"), ready("10.244.1.6", "node-2")];
    let slices = vec![slice(
        "default",
        "lb",
        "a",
        "IPv4",
        json!([{"port": 8080}]),
        eps,
    )];
    (vec![svc], slices)
}

#[test]
fn load_balancer_ips_keep_to_their_source_ranges() {
    let n = net();
    serve(&n.server, 8080);
    let mut applier = Applier::new("podnet-proxy");
    let mut sync = |objs: &(Vec<Service>, Vec<EndpointSlice>)| {
        let c = build(objs, None);
        n.node
            .ns()
            .run(|| applier.sync(&facts(), &c.state))
            .unwrap()
            .unwrap()
    };
    // The client (10.244.0.9) is inside the range: balanced over both endpoints.
    sync(&balanced(&["10.244.0.0/24"]));
    let seen: BTreeSet<String> = (0..30)
        .map(|_| connect(&n.client, "192.0.2.10:80").unwrap())
        .collect();
    assert_eq!(seen, ["10.244.1.5", "10.244.1.6"].map(String::from).into());
    // Outside the ranges: dropped (a timeout, not a refusal).
    let stats = sync(&balanced(&["10.9.0.0/16", "192.168.0.0/24"]));
    assert!(!stats.full, "{stats:?}");
    assert_eq!(
        connect(&n.client, "192.0.2.10:80"),
        Err(std::io::ErrorKind::TimedOut)
    );
    // The ClusterIP and the node port are not behind the ranges.
    assert!(connect(&n.client, "10.96.0.40:80").is_ok());
    assert!(connect(&n.client, "172.18.0.1:30090").is_ok());
    // No ranges: open to all again.
    sync(&balanced(&[]));
    assert!(connect(&n.client, "192.0.2.10:80").is_ok());
    n.node.ns().run(|| applier.remove()).unwrap().unwrap();
}
