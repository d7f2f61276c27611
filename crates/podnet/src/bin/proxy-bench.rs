//! Service proxy benchmark, in network namespaces made for it (nothing in the root namespace):
//!
//! 1. full sync of N Services × E endpoints (compile + apply into an empty table; median of
//!    `--repeat` runs), and the process's memory with the objects and the state held (and
//!    with the objects alone);
//! 2. an agent restart at that size: new compiler and applier adopting the table in place
//!    (flushed and refilled in one transaction);
//! 3. one endpoint change at that size (compile against the last state + apply), median of
//!    several changes;
//! 4. first-packet latency: new TCP connections from a client namespace through a ClusterIP
//!    to a server namespace, with 1 Service programmed and with N, median of many connects
//!    (and the same straight to the pod address, the floor).
//!
//! `cargo build --release --bins && target/release/proxy-bench --services 1000,10000,30000`

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use podnet::stats::{median, own_memory_kib, percentile, sorted};
use podnet_netdev::testing::Routed;
use podnet_proxy::{Applier, Compiler, NodeFacts};
use serde_json::json;

#[derive(Parser)]
#[command(about = "podnet service proxy benchmark")]
struct Args {
    /// Service counts to measure.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,30000")]
    services: Vec<usize>,
    /// Endpoints per Service.
    #[arg(long, default_value_t = 10)]
    endpoints: usize,
    /// Endpoint changes timed per size.
    #[arg(long, default_value_t = 20)]
    changes: usize,
    /// New connections timed per latency measurement.
    #[arg(long, default_value_t = 2000)]
    connects: usize,
    /// Full syncs timed per size (each into an empty table; the figures are medians).
    #[arg(long, default_value_t = 3)]
    repeat: usize,
}

fn service(i: usize) -> Service {
    let ip =
        std::net::Ipv4Addr::from(u32::from(std::net::Ipv4Addr::new(10, 96, 0, 0)) + i as u32 + 1);
    serde_json::from_value(json!({
        "metadata": {"namespace": "bench", "name": format!("s{i}")},
        "spec": {"clusterIP": ip.to_string(), "clusterIPs": [ip.to_string()],
                 "ports": [{"port": 80, "targetPort": 8080}]}
    }))
    .expect("static service")
}

/// Service 0's endpoints are the two real servers; the others' are made up (`salt` moves
/// the first one elsewhere).
fn slice(i: usize, endpoints: usize, salt: u32) -> EndpointSlice {
    let eps: Vec<serde_json::Value> = if i == 0 {
        vec![
            json!({"addresses": ["10.244.1.5"], "nodeName": "node-2"}),
            json!({"addresses": ["10.244.1.6"], "nodeName": "node-2"}),
        ]
    } else {
        (0..endpoints)
            .map(|j| {
                let n = u32::from(std::net::Ipv4Addr::new(10, 128, 0, 0))
                    + (i * endpoints + j) as u32
                    + if j == 0 { salt } else { 0 };
                json!({"addresses": [std::net::Ipv4Addr::from(n).to_string()], "nodeName": "node-2",
                       "conditions": {"ready": true}})
            })
            .collect()
    };
    serde_json::from_value(json!({
        "metadata": {"namespace": "bench", "name": format!("s{i}-abc"),
                     "labels": {"kubernetes.io/service-name": format!("s{i}")}},
        "addressType": "IPv4",
        "ports": [{"port": 8080, "protocol": "TCP"}],
        "endpoints": eps,
    }))
    .expect("static slice")
}

fn facts() -> NodeFacts {
    NodeFacts {
        name: "node-1".into(),
        zone: None,
        nodeport_addresses: vec!["172.18.0.1".parse().expect("static")],
        cluster_cidrs: vec!["10.244.0.0/16".parse().expect("static")],
        service_cidrs: vec!["10.96.0.0/12".parse().expect("static")],
    }
}

/// client 10.244.0.9 — node (router, podnet's table) — server 10.244.1.5 and .6 on :8080.
fn net() -> Result<Routed> {
    let net = Routed::new("pb", &[])?;
    let server = &net.server;
    for addr in ["10.244.1.5", "10.244.1.6"] {
        let listener = server.ns().run(|| TcpListener::bind((addr, 8080)))??;
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                drop(conn);
            }
        });
    }
    Ok(net)
}

/// Median and p90 of `n` connect times (µs) to `to` from the client namespace.
fn connect_latency(net: &Routed, to: SocketAddr, n: usize) -> Result<(f64, f64)> {
    let times = net.client.ns().run(|| -> Result<Vec<f64>> {
        let mut times = Vec::with_capacity(n);
        for _ in 0..n + n / 10 {
            let t = Instant::now();
            let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(1))
                .with_context(|| format!("connect {to}"))?;
            times.push(t.elapsed().as_secs_f64() * 1e6);
            let _ = s.read(&mut [0u8; 1]);
        }
        // The first tenth warms caches up.
        Ok(times.split_off(n / 10))
    })??;
    let s = sorted(&times);
    Ok((median(&s), percentile(&s, 90.0)))
}

struct Row {
    services: usize,
    compile_ms: f64,
    apply_ms: f64,
    ops: usize,
    rss_mib: f64,
    objects_mib: f64,
    restart_ms: f64,
    change_ms: f64,
    change_apply_ms: f64,
    change_ops: f64,
    latency_us: (f64, f64),
}

fn run_size(net: &Routed, args: &Args, n: usize) -> Result<Row> {
    let svcs: Vec<Arc<Service>> = (0..n).map(|i| Arc::new(service(i))).collect();
    let mut slices: Vec<Arc<EndpointSlice>> = (0..n)
        .map(|i| Arc::new(slice(i, args.endpoints, 0)))
        .collect();
    let node = facts();
    let rss = || {
        own_memory_kib()
            .map(|(rss, _)| rss as f64 / 1024.0)
            .unwrap_or(f64::NAN)
    };
    // What the objects alone take (the agent holds them in its view anyway).
    let objects_mib = rss();
    let (mut compiles, mut applies) = (Vec::new(), Vec::new());
    let mut rss_mib = f64::NAN;
    let mut synced = None;
    for round in 0..args.repeat.max(1) {
        // The last round's table and compiler stay for the changes.
        drop(synced.take());
        net.node
            .ns()
            .run(|| Applier::new(podnet_proxy::TABLE).remove())??;
        let mut applier = Applier::new(podnet_proxy::TABLE);
        let mut compiler = Compiler::new();
        let t = Instant::now();
        let up = compiler.update(&svcs, &slices, &node);
        compiles.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        let stats = net
            .node
            .ns()
            .run(|| applier.apply(&node, compiler.state(), &up.plan))??;
        applies.push(t.elapsed().as_secs_f64() * 1e3);
        eprintln!(
            "  full sync {}: compile {:.1} ms, apply {:.1} ms",
            round + 1,
            compiles[round],
            applies[round]
        );
        drop(up);
        if round == 0 {
            rss_mib = rss();
        }
        synced = Some((applier, compiler, stats));
    }
    let Some((mut applier, mut compiler, stats)) = synced else {
        anyhow::bail!("no full sync ran");
    };
    let (compile_ms, apply_ms) = (median(&sorted(&compiles)), median(&sorted(&applies)));
    // One endpoint of one Service replaced, each time another Service: what the agent does
    // (recompile what changed, apply its plan).
    let (mut total, mut apply, mut ops) = (Vec::new(), Vec::new(), Vec::new());
    for k in 0..if n > 1 { args.changes } else { 0 } {
        let i = 1 + (k * 7919) % (n - 1).max(1);
        slices[i] = Arc::new(slice(i, args.endpoints, 1_000_000 + k as u32));
        let t = Instant::now();
        let up = compiler.update(&svcs, &slices, &node);
        let t_apply = Instant::now();
        let s = net
            .node
            .ns()
            .run(|| applier.apply(&node, compiler.state(), &up.plan))??;
        apply.push(t_apply.elapsed().as_secs_f64() * 1e3);
        total.push(t.elapsed().as_secs_f64() * 1e3);
        ops.push(s.ops as f64);
    }
    // An agent restart: new compiler and applier, the table in place (flushed and refilled
    // in one transaction).
    drop((applier, compiler));
    let t = Instant::now();
    let mut compiler = Compiler::new();
    let up = compiler.update(&svcs, &slices, &node);
    let restarted = net
        .node
        .ns()
        .run(|| Applier::new(podnet_proxy::TABLE).apply(&node, compiler.state(), &up.plan))??;
    let restart_ms = t.elapsed().as_secs_f64() * 1e3;
    if !restarted.full || restarted.created {
        anyhow::bail!("the restart did not adopt the table: {restarted:?}");
    }
    let latency_us = connect_latency(net, "10.96.0.1:80".parse()?, args.connects)?;
    Ok(Row {
        services: n,
        compile_ms,
        apply_ms,
        ops: stats.ops,
        rss_mib,
        objects_mib,
        restart_ms,
        change_ms: median(&sorted(&total)),
        change_apply_ms: median(&sorted(&apply)),
        change_ops: median(&sorted(&ops)),
        latency_us,
    })
}

fn main() -> Result<()> {
    let args = Args::parse();
    let net = net()?;
    let direct = connect_latency(&net, "10.244.1.5:8080".parse()?, args.connects)?;
    let mut rows = Vec::new();
    for n in std::iter::once(1).chain(args.services.iter().copied()) {
        eprintln!("measuring {n} services ...");
        rows.push(run_size(&net, &args, n)?);
        net.node
            .ns()
            .run(|| Applier::new(podnet_proxy::TABLE).remove())??;
    }
    let _ = &net.server;
    println!(
        "podnet service proxy: {} endpoints per Service; times are medians",
        args.endpoints
    );
    println!(
        "{:>8} {:>11} {:>10} {:>10} {:>9} {:>9} {:>9} {:>11} {:>10} {:>11} {:>10} {:>20}",
        "services",
        "compile ms",
        "apply ms",
        "full ms",
        "ops",
        "RSS MiB",
        "(objects)",
        "restart ms",
        "change ms",
        "(apply ms)",
        "change ops",
        "1st packet µs p50/p90"
    );
    for r in &rows {
        println!(
            "{:>8} {:>11.1} {:>10.1} {:>10.1} {:>9} {:>9.1} {:>9.1} {:>11.1} {:>10.2} {:>11.2} {:>10.0} {:>13.1} / {:.1}",
            r.services,
            r.compile_ms,
            r.apply_ms,
            r.compile_ms + r.apply_ms,
            r.ops,
            r.rss_mib,
            r.objects_mib,
            r.restart_ms,
            r.change_ms,
            r.change_apply_ms,
            r.change_ops,
            r.latency_us.0,
            r.latency_us.1
        );
    }
    let one = rows.first().map(|r| r.latency_us.0).unwrap_or(f64::NAN);
    for r in rows.iter().skip(1) {
        println!(
            "first-packet latency ratio {} services / 1 service: {:.3}",
            r.services,
            r.latency_us.0 / one
        );
    }
    println!(
        "straight to the pod (no Service): {:.1} / {:.1} µs",
        direct.0, direct.1
    );
    Ok(())
}
