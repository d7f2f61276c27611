//! `podnet cni-demo`: the plugin's own demo. A node namespace, N pod namespaces wired by the
//! real `podnet-cni` binary (dual-stack), pods pinging each other, CHECK, DEL, and a look at
//! what is left (nothing). Everything lives in namespaces the demo creates and removes.

use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use podnet_netdev::testing::TestNs;
use serde_json::{json, Value};

use crate::cni_exec::{invoke, sibling, Call};

/// Demo options.
#[derive(Debug, Clone)]
pub struct Options {
    /// `bridge` or `ptp`.
    pub mode: String,
    /// Number of pods.
    pub pods: usize,
}

/// A network config for a node: dual-stack pod subnets, state under `data_dir`.
pub fn node_config(name: &str, mode: &str, data_dir: &str) -> Value {
    json!({
        "cniVersion": "1.1.0", "name": name, "type": "podnet-cni",
        "mode": mode, "bridge": "podnet0", "mtu": 1500, "hairpinMode": true,
        "ipam": {
            "type": "podnet-ipam",
            "ranges": [[{"subnet": "10.244.1.0/24"}], [{"subnet": "fd00:10:244:1::/64"}]],
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}],
            "dataDir": data_dir
        }
    })
}

/// Runs the demo and prints a report.
pub fn run(opts: &Options) -> Result<()> {
    let plugin = sibling("podnet-cni")?;
    let node = TestNs::new("demo-node")?;
    let data = tempdir()?;
    let conf = node_config("demo", &opts.mode, &data);
    let stdin = serde_json::to_vec(&conf)?;
    println!(
        "node namespace {} ({} mode), plugin {}",
        node.name(),
        opts.mode,
        plugin.display()
    );
    let mut pods = Vec::new();
    for i in 0..opts.pods {
        let ns = TestNs::new("demo-pod")?;
        let cid = format!("demo-pod-{i}");
        let t = Instant::now();
        let reply = invoke(
            &plugin,
            node.ns(),
            &Call::attachment("ADD", &cid, &ns.path()),
            &stdin,
        )?;
        if !reply.ok() {
            bail!("ADD {cid} failed: {}", reply.stdout);
        }
        let ips: Vec<String> = reply.json["ips"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|ip| ip["address"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        println!(
            "ADD {cid}: {} in {:.1} ms",
            ips.join(", "),
            t.elapsed().as_secs_f64() * 1e3
        );
        pods.push((cid, ns, ips, reply.json));
    }
    println!("\nconnectivity (ping, both families, right after ADD):");
    let mut failures = 0;
    for (from, ns, _, _) in &pods {
        for (to, _, ips, _) in &pods {
            if from == to {
                continue;
            }
            for ip in ips {
                let addr = ip.split('/').next().unwrap_or_default();
                let ok = ping(ns.name(), addr)?;
                failures += usize::from(!ok);
                println!(
                    "  {from} -> {to} {addr:<22} {}",
                    if ok { "ok" } else { "FAILED" }
                );
            }
        }
    }
    println!();
    for (cid, ns, _, result) in &pods {
        let mut check_conf = conf.clone();
        check_conf["prevResult"] = result.clone();
        let r = invoke(
            &plugin,
            node.ns(),
            &Call::attachment("CHECK", cid, &ns.path()),
            &serde_json::to_vec(&check_conf)?,
        )?;
        println!(
            "CHECK {cid}: {}",
            if r.ok() { "ok".to_string() } else { r.stdout }
        );
    }
    for (cid, ns, _, _) in &pods {
        let r = invoke(
            &plugin,
            node.ns(),
            &Call::attachment("DEL", cid, &ns.path()),
            &stdin,
        )?;
        println!(
            "DEL {cid}: {}",
            if r.ok() { "ok".to_string() } else { r.stdout }
        );
    }
    let left = Command::new("ip")
        .args(["-n", node.name(), "-o", "link", "show", "type", "veth"])
        .output()?;
    let veths = String::from_utf8_lossy(&left.stdout).lines().count();
    let reservations = std::fs::read_dir(format!("{data}/demo"))
        .map(|d| d.count())
        .unwrap_or(0);
    println!("\nafter DEL: {veths} veths on the node, {reservations} entries in the IPAM directory (lock, attachments dir, round-robin cursors)");
    let _ = std::fs::remove_dir_all(&data);
    if failures > 0 {
        bail!("{failures} pings failed");
    }
    Ok(())
}

fn ping(ns: &str, addr: &str) -> Result<bool> {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "ping", "-c1", "-W2", addr])
        .output()
        .context("running ping")?;
    Ok(out.status.success())
}

fn tempdir() -> Result<String> {
    let dir = std::env::temp_dir().join(format!("podnet-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir.display().to_string())
}
