//! `cni-bench`: times the `podnet-cni` plugin (ADD, CHECK, DEL per pod: wall time and the
//! child's CPU time), the reference Go `bridge` + `host-local` plugins doing the same work, and
//! the kernel's own veth delete as a floor for DEL.
//!
//! Everything happens in network namespaces the program creates (and removes again, also on
//! error or Ctrl-C); the root namespace is never touched and no packets are sent.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use clap::Parser;
use nix::sys::resource::{getrusage, UsageWho};
use nix::sys::time::{TimeVal, TimeValLike};
use podnet::cni_exec::{invoke, sibling, Call, Reply};
use podnet::demo::node_config;
use podnet::interrupt::{check_stop, watch_signals};
use podnet::stats::{median, percentile, sorted};
use podnet_netdev::testing::TestNs;
use podnet_netdev::{Netlink, VethSpec};
use serde_json::{json, Map, Value};

/// Where the reference plugins usually live.
const DEFAULT_REFERENCE: &str = "/usr/lib/cni";

/// Benchmark of the podnet CNI plugin against the reference plugins.
#[derive(Debug, Parser)]
#[command(name = "cni-bench")]
struct Args {
    /// Number of pods (pod namespaces) per run.
    #[arg(long, default_value_t = 50)]
    pods: usize,
    /// podnet wiring mode.
    #[arg(long, default_value = "bridge", value_parser = ["bridge", "ptp"])]
    mode: String,
    /// Directory with the reference `bridge` and `host-local` plugins
    /// (default: /usr/lib/cni when /usr/lib/cni/bridge exists).
    #[arg(long)]
    reference: Option<PathBuf>,
    /// Also run podnet like-for-like with the reference: cniVersion 1.0.0, IPv4 only, bridge mode.
    #[arg(long)]
    like_for_like: bool,
    /// Print the figures as one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// One plugin setup to benchmark.
struct Setup {
    /// Short label, e.g. `podnet`.
    label: &'static str,
    /// Prefix of its series' JSON keys, e.g. `podnet`.
    key: &'static str,
    plugin: PathBuf,
    conf: Value,
    /// `CNI_PATH`.
    cni_path: Option<String>,
}

/// Timings of one kind of operation.
#[derive(Debug)]
struct Series {
    key: String,
    label: String,
    wall_ms: Vec<f64>,
    cpu_ms: Vec<f64>,
}

/// The summary of one series.
#[derive(Debug, Clone, Copy)]
struct Stats {
    n: usize,
    median_wall: f64,
    p90_wall: f64,
    median_cpu: f64,
}

/// Removes the temporary IPAM directory on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(args.pods > 0, "--pods must be at least 1");
    let stop = watch_signals("cni-bench")?;
    let reference = reference_dir(args.reference.as_deref())?;
    let series = run_all(&args, reference.as_deref(), &stop)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&to_json(&args, &reference, &series))?
        );
    } else {
        print_table(&args, &reference, &series);
    }
    Ok(())
}

/// The reference plugin directory, or `None` (with a note) when there is none.
fn reference_dir(given: Option<&Path>) -> Result<Option<PathBuf>> {
    if let Some(dir) = given {
        for plugin in ["bridge", "host-local"] {
            ensure!(
                dir.join(plugin).is_file(),
                "no reference `{plugin}` plugin in {}",
                dir.display()
            );
        }
        return Ok(Some(dir.to_path_buf()));
    }
    let dir = PathBuf::from(DEFAULT_REFERENCE);
    if dir.join("bridge").is_file() && dir.join("host-local").is_file() {
        return Ok(Some(dir));
    }
    eprintln!("note: no reference plugins in {DEFAULT_REFERENCE} (and no --reference): skipping the reference run");
    Ok(None)
}

/// All runs, in order: podnet, podnet like-for-like, reference, kernel floor.
fn run_all(args: &Args, reference: Option<&Path>, stop: &AtomicBool) -> Result<Vec<Series>> {
    let tmp = temp_dir()?;
    let mut out = Vec::new();
    let podnet = podnet_setup(&args.mode, &tmp.0)?;
    out.extend(bench_plugin(&podnet, args.pods, stop)?);
    if args.like_for_like {
        let same = like_for_like_setup(&tmp.0)?;
        out.extend(bench_plugin(&same, args.pods, stop)?);
    }
    if let Some(dir) = reference {
        let setup = reference_setup(dir, &tmp.0)?;
        out.extend(bench_plugin(&setup, args.pods, stop)?);
    }
    out.push(kernel_floor(args.pods, stop)?);
    Ok(out)
}

fn temp_dir() -> Result<TempDir> {
    let dir = std::env::temp_dir().join(format!("podnet-cni-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(TempDir(dir))
}

fn data_dir(tmp: &Path, run: &str) -> Result<String> {
    let dir = tmp.join(run);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir.display().to_string())
}

/// podnet as the demo runs it: cniVersion 1.1.0, dual-stack.
fn podnet_setup(mode: &str, tmp: &Path) -> Result<Setup> {
    Ok(Setup {
        label: "podnet",
        key: "podnet",
        plugin: sibling("podnet-cni")?,
        conf: node_config("podbench", mode, &data_dir(tmp, "podnet")?),
        cni_path: None,
    })
}

/// podnet configured like the reference run: cniVersion 1.0.0, IPv4 only, bridge mode.
fn like_for_like_setup(tmp: &Path) -> Result<Setup> {
    let mut conf = node_config("podbench10", "bridge", &data_dir(tmp, "podnet10")?);
    conf["cniVersion"] = json!("1.0.0");
    conf["ipam"]["ranges"] = json!([[{"subnet": "10.244.1.0/24"}]]);
    conf["ipam"]["routes"] = json!([{"dst": "0.0.0.0/0"}]);
    Ok(Setup {
        label: "podnet-1.0",
        key: "podnet_10",
        plugin: sibling("podnet-cni")?,
        conf,
        cni_path: None,
    })
}

/// The reference Go `bridge` plugin with `host-local` IPAM.
fn reference_setup(dir: &Path, tmp: &Path) -> Result<Setup> {
    let conf = json!({
        "cniVersion": "1.0.0", "name": "refbench", "type": "bridge",
        "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
        "ipam": {
            "type": "host-local",
            "ranges": [[{"subnet": "10.245.1.0/24"}]],
            "routes": [{"dst": "0.0.0.0/0"}],
            "dataDir": data_dir(tmp, "reference")?
        }
    });
    Ok(Setup {
        label: "reference",
        key: "reference",
        plugin: dir.join("bridge"),
        conf,
        cni_path: Some(dir.display().to_string()),
    })
}

/// ADD every pod, then CHECK every pod, then DEL every pod, in a fresh node namespace.
fn bench_plugin(setup: &Setup, pods: usize, stop: &AtomicBool) -> Result<[Series; 3]> {
    let node = TestNs::new("bench-node")?;
    let pod_ns = (0..pods)
        .map(|_| TestNs::new("bench-pod"))
        .collect::<Result<Vec<_>, _>>()?;
    let bench = Bench { setup, node: &node };
    let results = bench.add_all(&pod_ns, stop)?;
    let check = bench.check_all(&pod_ns, &results, stop)?;
    let del = bench.del_all(&pod_ns, stop)?;
    Ok([results.1, check, del])
}

/// One plugin setup in one node namespace.
struct Bench<'a> {
    setup: &'a Setup,
    node: &'a TestNs,
}

/// The ADD results (`prevResult` for CHECK) and the ADD timings.
type AddResults = (Vec<Value>, Series);

impl Bench<'_> {
    fn series(&self, op: &str) -> Series {
        Series {
            key: format!("{}_{}", self.setup.key, op.to_lowercase()),
            label: format!("{} {op}", self.setup.label),
            wall_ms: Vec::new(),
            cpu_ms: Vec::new(),
        }
    }

    fn add_all(&self, pods: &[TestNs], stop: &AtomicBool) -> Result<AddResults> {
        let stdin = serde_json::to_vec(&self.setup.conf)?;
        let mut series = self.series("ADD");
        let mut results = Vec::with_capacity(pods.len());
        for (i, pod) in pods.iter().enumerate() {
            check_stop(stop)?;
            let reply = self.call("ADD", i, pod, &stdin, &mut series)?;
            let ips = reply.json["ips"].as_array().map_or(0, Vec::len);
            ensure!(
                ips > 0,
                "{} ADD pod {i}: no IPs in result: {}",
                self.setup.label,
                reply.stdout
            );
            results.push(reply.json);
        }
        Ok((results, series))
    }

    fn check_all(&self, pods: &[TestNs], adds: &AddResults, stop: &AtomicBool) -> Result<Series> {
        let mut series = self.series("CHECK");
        for (i, (pod, prev)) in pods.iter().zip(&adds.0).enumerate() {
            check_stop(stop)?;
            let mut conf = self.setup.conf.clone();
            conf["prevResult"] = prev.clone();
            self.call("CHECK", i, pod, &serde_json::to_vec(&conf)?, &mut series)?;
        }
        Ok(series)
    }

    fn del_all(&self, pods: &[TestNs], stop: &AtomicBool) -> Result<Series> {
        let stdin = serde_json::to_vec(&self.setup.conf)?;
        let mut series = self.series("DEL");
        for (i, pod) in pods.iter().enumerate() {
            check_stop(stop)?;
            self.call("DEL", i, pod, &stdin, &mut series)?;
        }
        Ok(series)
    }

    /// One timed plugin call; fails unless the plugin exited 0.
    fn call(
        &self,
        cmd: &str,
        i: usize,
        pod: &TestNs,
        stdin: &[u8],
        into: &mut Series,
    ) -> Result<Reply> {
        let mut call =
            Call::attachment(cmd, &format!("bench-{}-{i}", self.setup.label), &pod.path());
        call.path = self.setup.cni_path.clone();
        let cpu0 = children_cpu_ms()?;
        let t0 = Instant::now();
        let reply = invoke(&self.setup.plugin, self.node.ns(), &call, stdin)
            .with_context(|| format!("{} {cmd} pod {i}", self.setup.label))?;
        into.wall_ms.push(t0.elapsed().as_secs_f64() * 1e3);
        into.cpu_ms.push(children_cpu_ms()? - cpu0);
        if !reply.ok() {
            bail!(
                "{} {cmd} pod {i} failed (exit {}):\nstdout: {}\nstderr: {}",
                self.setup.label,
                reply.code,
                reply.stdout.trim(),
                reply.stderr.trim()
            );
        }
        Ok(reply)
    }
}

fn ms(tv: TimeVal) -> f64 {
    tv.num_microseconds() as f64 / 1e3
}

/// User + system time of all waited-for children so far, in ms.
fn children_cpu_ms() -> Result<f64> {
    let u = getrusage(UsageWho::RUSAGE_CHILDREN).context("getrusage(RUSAGE_CHILDREN)")?;
    Ok(ms(u.user_time()) + ms(u.system_time()))
}

/// User + system time of this thread so far, in ms (the kernel floor runs in-process).
fn thread_cpu_ms() -> Result<f64> {
    let u = getrusage(UsageWho::RUSAGE_THREAD).context("getrusage(RUSAGE_THREAD)")?;
    Ok(ms(u.user_time()) + ms(u.system_time()))
}

/// The kernel's own veth delete: N veth pairs (both ends up) from a scratch node namespace
/// into a scratch pod namespace, each deleted by name with one netlink request.
fn kernel_floor(pods: usize, stop: &AtomicBool) -> Result<Series> {
    let node = TestNs::new("bench-knode")?;
    let pod = TestNs::new("bench-kpod")?;
    let mut nl = Netlink::in_ns(node.ns())?;
    create_veths(&mut nl, &pod, pods)?;
    let mut series = Series {
        key: "kernel_veth_del".to_string(),
        label: "kernel veth delete".to_string(),
        wall_ms: Vec::new(),
        cpu_ms: Vec::new(),
    };
    for i in 0..pods {
        check_stop(stop)?;
        let cpu0 = thread_cpu_ms()?;
        let t0 = Instant::now();
        let found = nl.delete_link_by_name(&format!("kb{i}"))?;
        series.wall_ms.push(t0.elapsed().as_secs_f64() * 1e3);
        series.cpu_ms.push(thread_cpu_ms()? - cpu0);
        ensure!(found, "veth kb{i} vanished before its delete");
    }
    Ok(series)
}

fn create_veths(nl: &mut Netlink, pod: &TestNs, count: usize) -> Result<()> {
    let mut pod_nl = Netlink::in_ns(pod.ns())?;
    for i in 0..count {
        let (name, peer_name) = (format!("kb{i}"), format!("kp{i}"));
        nl.create_veth(&VethSpec {
            name: &name,
            peer_name: &peer_name,
            peer_ns: pod.ns(),
            mtu: None,
            peer_mac: None,
            master: None,
            up: true,
        })?;
        let peer = pod_nl.require_link(&peer_name)?;
        pod_nl.set_up(peer.index, false)?;
    }
    Ok(())
}

impl Series {
    fn stats(&self) -> Stats {
        let wall = sorted(&self.wall_ms);
        Stats {
            n: wall.len(),
            median_wall: median(&wall),
            p90_wall: percentile(&wall, 90.0),
            median_cpu: median(&sorted(&self.cpu_ms)),
        }
    }
}

/// `(op, reference/podnet wall, reference/podnet cpu)` for every op both runs have.
fn ratios(series: &[Series], base: &str) -> Vec<(&'static str, f64, f64)> {
    let find = |key: String| series.iter().find(|s| s.key == key).map(Series::stats);
    ["add", "check", "del"]
        .into_iter()
        .filter_map(|op| {
            let r = find(format!("reference_{op}"))?;
            let p = find(format!("{base}_{op}"))?;
            Some((
                op,
                r.median_wall / p.median_wall,
                r.median_cpu / p.median_cpu,
            ))
        })
        .collect()
}

fn header(args: &Args, reference: &Option<PathBuf>) -> String {
    let reference = reference
        .as_ref()
        .map_or("none".to_string(), |d| d.display().to_string());
    format!(
        "cni-bench: {} pods, podnet mode {} (cniVersion 1.1.0, dual-stack), reference plugins: {reference}",
        args.pods, args.mode
    )
}

fn print_table(args: &Args, reference: &Option<PathBuf>, series: &[Series]) {
    println!("{}\n", header(args, reference));
    println!(
        "{:<22} {:>5} {:>14} {:>11} {:>15}",
        "operation", "n", "median wall ms", "p90 wall ms", "median CPU ms"
    );
    for s in series {
        let st = s.stats();
        println!(
            "{:<22} {:>5} {:>14.3} {:>11.3} {:>15.3}",
            s.label, st.n, st.median_wall, st.p90_wall, st.median_cpu
        );
    }
    for (base, label) in [("podnet", "podnet"), ("podnet_10", "podnet-1.0")] {
        let rows = ratios(series, base);
        if rows.is_empty() {
            continue;
        }
        println!("\nratios reference / {label} (medians):");
        println!("{:<22} {:>8} {:>8}", "operation", "wall", "CPU");
        for (op, wall, cpu) in rows {
            println!("{:<22} {:>8.2} {:>8.2}", op.to_uppercase(), wall, cpu);
        }
    }
    println!("\n(CPU = user+system of the plugin process and its children; kernel row: this thread's CPU in the delete syscall)");
}

/// A finite number as JSON, `null` otherwise (NaN/inf from empty series or zero CPU).
fn num(x: f64) -> Value {
    if x.is_finite() {
        json!((x * 1e4).round() / 1e4)
    } else {
        Value::Null
    }
}

fn to_json(args: &Args, reference: &Option<PathBuf>, series: &[Series]) -> Value {
    let mut rows = Map::new();
    for s in series {
        let st = s.stats();
        rows.insert(
            s.key.clone(),
            json!({"n": st.n, "median_wall_ms": num(st.median_wall),
                   "p90_wall_ms": num(st.p90_wall), "median_cpu_ms": num(st.median_cpu)}),
        );
    }
    let mut all_ratios = Map::new();
    for base in ["podnet", "podnet_10"] {
        let mut r = Map::new();
        for (op, wall, cpu) in ratios(series, base) {
            r.insert(op.to_string(), json!({"wall": num(wall), "cpu": num(cpu)}));
        }
        if !r.is_empty() {
            all_ratios.insert(format!("reference_over_{base}"), Value::Object(r));
        }
    }
    json!({
        "pods": args.pods, "mode": args.mode,
        "reference": reference.as_ref().map(|d| d.display().to_string()),
        "series": rows, "ratios": all_ratios
    })
}
