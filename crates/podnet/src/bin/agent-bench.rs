//! `agent-bench`: times the podnet node agent (manifests source) from a Node appearing in
//! (or leaving) the view to its pod CIDR's route being in (or gone from) the kernel, with 10,
//! 100 and 1,000 nodes in the view, in host-gw and VXLAN mode; also the initial full sync,
//! the agent's own reconcile time (its `podnet_sync_duration_seconds`) and its memory.
//!
//! Each (mode, N) runs a fresh agent in a fresh node namespace whose underlay is a veth pair
//! into a second scratch namespace; both are removed again (the agent killed first), also on
//! error, panic or Ctrl-C. The root namespace is never touched and no packets are sent.
//!
//! Route changes are timed with an rtnetlink multicast subscription (`RTNLGRP_IPV4_ROUTE`)
//! in the node namespace, so the clock stops when the kernel announces the route; a full
//! route dump every 20 ms is only a fallback (counted in the output when it was needed).

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use clap::Parser;
use ipnet::{IpNet, Ipv4Net};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket};
use podnet::cni_exec::sibling;
use podnet::interrupt::{check_stop, watch_signals};
use podnet::stats::{median, percentile, sorted};
use podnet_netdev::testing::TestNs;
use podnet_netdev::{NetNs, Netlink, VethSpec, PODNET_ROUTE_PROTO};

/// Where the agent serves /metrics and /readyz (inside the node namespace).
const METRICS: &str = "127.0.0.1:9464";
/// The own node's underlay address and prefix (the other nodes are in the same /16).
const UNDERLAY: &str = "192.168.0.1/16";
/// `RTNLGRP_IPV4_ROUTE`.
const RTNLGRP_IPV4_ROUTE: u32 = 7;
/// `RTM_NEWROUTE`, `RTM_DELROUTE`.
const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
/// `RTA_DST`.
const RTA_DST: u16 = 1;
/// `AF_INET`.
const AF_INET: u8 = 2;
/// `ENOBUFS`: the multicast queue overflowed.
const ENOBUFS: i32 = 105;
/// How long one route change (or the initial sync) may take before the run fails.
const TIMEOUT: Duration = Duration::from_secs(30);
/// How long the agent's CPU use is watched while nothing changes.
const IDLE: Duration = Duration::from_secs(2);

/// Benchmark of the podnet node agent: Node → route latency, initial sync, memory.
#[derive(Debug, Parser)]
#[command(name = "agent-bench")]
struct Args {
    /// Node counts in the view (the agent's own node included), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "10,100,1000")]
    nodes: Vec<usize>,
    /// Routing modes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "host-gw,vxlan",
          value_parser = ["host-gw", "vxlan"])]
    routing: Vec<String>,
    /// Node additions (and removals) timed per (mode, N).
    #[arg(long, default_value_t = 30)]
    samples: usize,
    /// Run the agent with --no-masquerade (no nft table).
    #[arg(long)]
    no_masquerade: bool,
    /// Print every sample.
    #[arg(long)]
    verbose: bool,
    /// Copy the agents' logs into this directory.
    #[arg(long)]
    keep_logs: Option<PathBuf>,
}

/// The figures of one (mode, N).
#[derive(Debug)]
struct Row {
    mode: String,
    nodes: usize,
    /// Start → first podnet route in the kernel (ms).
    first_ms: f64,
    /// Start → all N-1 routes in the kernel (ms).
    init_ms: f64,
    /// Start → /readyz answers 200 (ms).
    ready_ms: f64,
    add_ms: Vec<f64>,
    remove_ms: Vec<f64>,
    /// The agent's reconciles over the whole run: seconds summed, count.
    rec_sum: f64,
    rec_count: f64,
    /// Mean reconcile time of the reconciles the timed changes caused (ms).
    rec_event_ms: f64,
    /// Kernel (and nft/file) writes per timed addition, mean.
    writes_per_add: f64,
    rss_kib: u64,
    hwm_kib: u64,
    /// CPU the agent used while nothing changed, in % of one CPU.
    idle_cpu_pct: f64,
    /// Changes seen by the dump fallback rather than the multicast subscription.
    fallbacks: usize,
}

/// Removes the scratch directory on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(args.samples > 0, "--samples must be at least 1");
    ensure!(
        args.nodes.iter().all(|&n| (2..=30_000).contains(&n)),
        "--nodes: every count must be in 2..=30000"
    );
    let stop = watch_signals("agent-bench")?;
    let podnet = sibling("podnet")?;
    let tmp =
        TempDir(std::env::temp_dir().join(format!("podnet-agent-bench-{}", std::process::id())));
    fs::create_dir_all(&tmp.0).with_context(|| format!("creating {}", tmp.0.display()))?;
    if let Some(dir) = &args.keep_logs {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let started = Instant::now();
    let mut rows = Vec::new();
    for mode in &args.routing {
        for &n in &args.nodes {
            check_stop(&stop)?;
            eprintln!("agent-bench: {mode}, {n} nodes…");
            rows.push(run_one(&args, &podnet, &tmp.0, mode, n, &stop)?);
        }
    }
    print_table(&args, &rows, started.elapsed());
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The cluster: Node manifests.

fn pod_cidr(i: usize) -> IpNet {
    IpNet::V4(Ipv4Net::new_assert(
        Ipv4Addr::new(10, (i / 256) as u8, (i % 256) as u8, 0),
        24,
    ))
}

fn node_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(192, 168, (i / 250) as u8, (i % 250 + 1) as u8)
}

fn node_doc(i: usize) -> String {
    let cidr = pod_cidr(i);
    format!(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: node-{i}\nspec:\n  podCIDR: {cidr}\n  podCIDRs: [{cidr}]\nstatus:\n  addresses:\n  - type: InternalIP\n    address: {}\n  - type: Hostname\n    address: node-{i}\n",
        node_ip(i)
    )
}

/// Writes `dir/.name.tmp`; returns its path (rename it to publish).
fn write_hidden(dir: &Path, name: &str, text: &str) -> Result<PathBuf> {
    let tmp = dir.join(format!(".{name}.tmp"));
    fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    Ok(tmp)
}

// ---------------------------------------------------------------------------------------
// The node namespace and the agent.

/// eth0 (192.168.0.1/16) in `node`, its veth peer up in `peer`.
fn underlay(node: &TestNs, peer: &TestNs) -> Result<()> {
    let mut nl = Netlink::in_ns(node.ns())?;
    nl.create_veth(&VethSpec {
        name: "eth0",
        peer_name: "uplink0",
        peer_ns: peer.ns(),
        mtu: None,
        peer_mac: None,
        master: None,
        up: true,
    })?;
    let mut pnl = Netlink::in_ns(peer.ns())?;
    let up = pnl.require_link("uplink0")?;
    pnl.set_up(up.index, false)?;
    let eth = nl.require_link("eth0")?;
    nl.add_address(eth.index, &UNDERLAY.parse()?)?;
    Ok(())
}

/// The running agent; killed (and waited for) on drop.
struct Agent {
    child: Child,
    log: PathBuf,
}

impl Agent {
    fn start(
        podnet: &Path,
        node: &TestNs,
        manifests: &Path,
        mode: &str,
        dir: &Path,
        no_masquerade: bool,
    ) -> Result<Agent> {
        let log = dir.join("agent.log");
        let log_file =
            fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let cni_conf = dir.join("10-podnet.conflist");
        let mut cmd = Command::new("ip");
        // `ip netns exec` enters the namespace and execs: the child's pid is the agent's.
        cmd.args(["netns", "exec", node.name()])
            .arg(podnet)
            .args(["agent", "--node", "node-0", "--manifests"])
            .arg(manifests)
            .args(["--routing", mode, "--metrics-addr", METRICS, "--cni-conf"])
            .arg(&cni_conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file);
        if no_masquerade {
            cmd.arg("--no-masquerade");
        }
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        let child = cmd
            .spawn()
            .context("starting ip netns exec … podnet agent")?;
        Ok(Agent { child, log })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails (with the end of its log) when the agent has exited.
    fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("the agent exited ({status}):\n{}", self.log_tail());
        }
        Ok(())
    }

    fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// `(VmRSS, VmHWM)` in KiB, after checking that the pid is the agent binary itself.
    fn memory(&self, podnet: &Path) -> Result<(u64, u64)> {
        let exe = fs::read_link(format!("/proc/{}/exe", self.pid()))?;
        ensure!(
            exe == fs::canonicalize(podnet)?,
            "pid {} is {}, not the agent",
            self.pid(),
            exe.display()
        );
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        let field = |name: &str| -> Result<u64> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .with_context(|| format!("no {name} in /proc/{}/status", self.pid()))
        };
        Ok((field("VmRSS:")?, field("VmHWM:")?))
    }
}

impl Agent {
    /// CPU time of all the agent's threads so far (ns), from their schedstat.
    fn cpu_ns(&self) -> Result<u64> {
        let mut total = 0;
        for task in fs::read_dir(format!("/proc/{}/task", self.pid()))? {
            let path = task?.path().join("schedstat");
            // A thread may end between the listing and the read.
            let Ok(text) = fs::read_to_string(&path) else {
                continue;
            };
            total += text
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .with_context(|| format!("unreadable {}", path.display()))?;
        }
        Ok(total)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET path` on the agent's metrics address inside `ns`: `(status, body)`.
fn http_get(ns: &NetNs, path: &str) -> Result<(u16, String)> {
    let addr: SocketAddr = METRICS.parse()?;
    // Connect from a helper thread that enters the namespace; the socket stays in it.
    let mut stream = std::thread::scope(|s| {
        s.spawn(|| ns.run(|| TcpStream::connect_timeout(&addr, Duration::from_secs(2))))
            .join()
            .map_err(|_| anyhow!("connect thread panicked"))
    })???;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n").as_bytes(),
    )?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw)?;
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .with_context(|| format!("GET {path}: malformed reply {raw:?}"))?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("GET {path}: no status in {head:?}"))?;
    Ok((code, body.to_string()))
}

/// The agent's metrics, by name (labels kept in the name).
fn metrics(ns: &NetNs) -> Result<HashMap<String, f64>> {
    let (code, body) = http_get(ns, "/metrics")?;
    ensure!(code == 200, "/metrics answered {code}");
    Ok(body
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect())
}

fn metric(m: &HashMap<String, f64>, name: &str) -> Result<f64> {
    m.get(name)
        .copied()
        .with_context(|| format!("no {name} in /metrics"))
}

/// Polls /metrics until `podnet_syncs_total` exceeds `before`: the reconcile the change
/// caused (routes, masquerade table, CNI config) is over.
fn wait_synced(ns: &NetNs, before: f64, agent: &mut Agent) -> Result<HashMap<String, f64>> {
    let t0 = Instant::now();
    loop {
        let m = metrics(ns)?;
        if metric(&m, "podnet_syncs_total")? > before {
            return Ok(m);
        }
        agent.check_alive()?;
        ensure!(t0.elapsed() < TIMEOUT, "no reconcile within {TIMEOUT:?}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

// ---------------------------------------------------------------------------------------
// The kernel side: route dumps and route notifications.

/// podnet's gateway routes in the main table.
fn podnet_routes(nl: &mut Netlink) -> Result<HashSet<IpNet>> {
    Ok(nl
        .routes()?
        .into_iter()
        .filter(|r| r.protocol == PODNET_ROUTE_PROTO && r.gw.is_some() && r.table == Some(254))
        .map(|r| r.dst)
        .collect())
}

/// An rtnetlink socket in the node namespace subscribed to IPv4 route changes.
struct RouteEvents {
    sock: Socket,
    buf: Vec<u8>,
}

/// One route notification: added (or deleted), destination, protocol.
struct RouteEvent {
    added: bool,
    dst: IpNet,
    protocol: u8,
}

impl RouteEvents {
    fn open(ns: &NetNs) -> Result<RouteEvents> {
        let sock = ns.run(|| -> std::io::Result<Socket> {
            let mut s = Socket::new(NETLINK_ROUTE)?;
            s.bind_auto()?;
            s.add_membership(RTNLGRP_IPV4_ROUTE)?;
            s.set_non_blocking(true)?;
            Ok(s)
        })??;
        Ok(RouteEvents {
            sock,
            buf: Vec::with_capacity(1 << 16),
        })
    }

    /// Reads whatever is queued; `Ok(None)` when nothing is.
    fn read(&mut self) -> Result<Option<Vec<RouteEvent>>> {
        loop {
            self.buf.clear();
            match self.sock.recv(&mut self.buf, 0) {
                Ok(_) => return Ok(Some(parse_route_events(&self.buf))),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(None),
                // Overflow: some notifications were lost; the dump fallback covers them.
                Err(e) if e.raw_os_error() == Some(ENOBUFS) => continue,
                Err(e) => return Err(e).context("reading route notifications"),
            }
        }
    }

    fn drain(&mut self) -> Result<()> {
        while self.read()?.is_some() {}
        Ok(())
    }

    /// Waits until podnet's route to `dst` was added (`added`) or deleted; returns the time
    /// since `t0` in ms and whether the dump fallback saw it first.
    fn wait(
        &mut self,
        nl: &mut Netlink,
        dst: IpNet,
        added: bool,
        t0: Instant,
        agent: &mut Agent,
    ) -> Result<(f64, bool)> {
        let mut last_dump = Instant::now();
        loop {
            while let Some(events) = self.read()? {
                let at = t0.elapsed();
                if events
                    .iter()
                    .any(|e| e.added == added && e.dst == dst && e.protocol == PODNET_ROUTE_PROTO)
                {
                    return Ok((at.as_secs_f64() * 1e3, false));
                }
            }
            if last_dump.elapsed() > Duration::from_millis(20) {
                let at = t0.elapsed();
                if podnet_routes(nl)?.contains(&dst) == added {
                    return Ok((at.as_secs_f64() * 1e3, true));
                }
                agent.check_alive()?;
                last_dump = Instant::now();
            }
            ensure!(
                t0.elapsed() < TIMEOUT,
                "route {dst} not {} within {TIMEOUT:?}",
                if added { "added" } else { "deleted" }
            );
            std::thread::sleep(Duration::from_micros(100));
        }
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// The IPv4 route notifications in one datagram (nlmsghdr 16 bytes, rtmsg 12, rtattrs).
fn parse_route_events(b: &[u8]) -> Vec<RouteEvent> {
    let mut out = Vec::new();
    let mut off = 0;
    while let (Some(len), Some(ty)) = (u32_at(b, off), u16_at(b, off + 4)) {
        let len = len as usize;
        if len < 16 || off + len > b.len() {
            break;
        }
        let msg = &b[off..off + len];
        if let (true, Some(rt)) = (ty == RTM_NEWROUTE || ty == RTM_DELROUTE, msg.get(16..28)) {
            let (family, dst_len, protocol) = (rt[0], rt[1], rt[5]);
            let mut dst = None;
            let mut a = 28;
            while let (Some(alen), Some(aty)) = (u16_at(msg, a), u16_at(msg, a + 2)) {
                let alen = alen as usize;
                if alen < 4 || a + alen > msg.len() {
                    break;
                }
                if aty == RTA_DST && alen == 8 && family == AF_INET {
                    let o = &msg[a + 4..a + 8];
                    dst = Ipv4Net::new(Ipv4Addr::new(o[0], o[1], o[2], o[3]), dst_len).ok();
                }
                a += align4(alen);
            }
            if let Some(dst) = dst {
                out.push(RouteEvent {
                    added: ty == RTM_NEWROUTE,
                    dst: IpNet::V4(dst),
                    protocol,
                });
            }
        }
        off += align4(len);
    }
    out
}

// ---------------------------------------------------------------------------------------
// One (mode, N).

fn run_one(
    args: &Args,
    podnet: &Path,
    tmp: &Path,
    mode: &str,
    n: usize,
    stop: &AtomicBool,
) -> Result<Row> {
    // Declared before the agent, so dropped after it.
    let node = TestNs::new("abnode")?;
    let peer = TestNs::new("abpeer")?;
    underlay(&node, &peer)?;
    let dir = tmp.join(format!("{mode}-{n}"));
    let manifests = dir.join("manifests");
    fs::create_dir_all(&manifests).with_context(|| format!("creating {}", manifests.display()))?;
    let all: String = (0..n).map(|i| node_doc(i) + "---\n").collect();
    fs::rename(
        write_hidden(&manifests, "nodes.yaml", &all)?,
        manifests.join("nodes.yaml"),
    )?;
    let mut nl = Netlink::in_ns(node.ns())?;
    let expected: Vec<IpNet> = (1..n).map(pod_cidr).collect();

    let t0 = Instant::now();
    let mut agent = Agent::start(podnet, &node, &manifests, mode, &dir, args.no_masquerade)?;
    let result = bench_agent(
        args, podnet, &node, &mut nl, &mut agent, &manifests, &expected, t0, stop,
    );
    if let Some(keep) = &args.keep_logs {
        let to = keep.join(format!("agent-{mode}-{n}.log"));
        if let Err(e) = fs::copy(&agent.log, &to) {
            eprintln!(
                "agent-bench: cannot copy the agent log to {}: {e}",
                to.display()
            );
        }
    }
    let mut row = result?;
    row.mode = mode.to_string();
    row.nodes = n;
    Ok(row)
}

#[allow(clippy::too_many_arguments)]
fn bench_agent(
    args: &Args,
    podnet: &Path,
    node: &TestNs,
    nl: &mut Netlink,
    agent: &mut Agent,
    manifests: &Path,
    expected: &[IpNet],
    t0: Instant,
    stop: &AtomicBool,
) -> Result<Row> {
    let ns = node.ns();
    let ms = |t: Instant| t.elapsed().as_secs_f64() * 1e3;
    // Initial sync: the first and the last route, and readiness.
    let (mut first, mut init, mut ready) = (None, None, None);
    while init.is_none() || ready.is_none() {
        check_stop(stop)?;
        agent.check_alive()?;
        if init.is_none() {
            let have = podnet_routes(nl)?;
            if first.is_none() && !have.is_empty() {
                first = Some(ms(t0));
            }
            if expected.iter().all(|c| have.contains(c)) {
                init = Some(ms(t0));
            }
        }
        if ready.is_none() && matches!(http_get(ns, "/readyz"), Ok((200, _))) {
            ready = Some(ms(t0));
        }
        ensure!(
            t0.elapsed() < TIMEOUT,
            "initial sync not done within {TIMEOUT:?}:\n{}",
            agent.log_tail()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let m = metrics(ns)?;
    let programmed = metric(&m, "podnet_routes_programmed")?;
    if programmed as usize != expected.len() {
        eprintln!(
            "agent-bench: podnet_routes_programmed is {programmed}, expected {}",
            expected.len()
        );
    }
    // Let the start-up settle (the first reconcile may still be writing the nft table), then
    // see what the agent costs while nothing changes.
    std::thread::sleep(Duration::from_millis(200));
    let (cpu0, idle0) = (agent.cpu_ns()?, Instant::now());
    std::thread::sleep(IDLE);
    let idle_cpu_pct = (agent.cpu_ns()? - cpu0) as f64 / idle0.elapsed().as_nanos() as f64 * 100.0;

    let mut events = RouteEvents::open(ns)?;
    let n = expected.len() + 1;
    let (mut add_ms, mut remove_ms) = (Vec::new(), Vec::new());
    let (mut rec_sum, mut rec_count, mut writes, mut fallbacks) = (0.0, 0.0, 0.0, 0);
    for k in 0..args.samples {
        check_stop(stop)?;
        let i = n + k;
        let name = format!("extra-{k}.yaml");
        let path = manifests.join(&name);
        let hidden = write_hidden(manifests, &name, &node_doc(i))?;
        // The hidden file's own inotify events cause a (no-op) rescan; let it pass.
        std::thread::sleep(Duration::from_millis(30));

        let before = metrics(ns)?;
        events.drain()?;
        let t = Instant::now();
        fs::rename(&hidden, &path)?;
        let (add, fb) = events.wait(nl, pod_cidr(i), true, t, agent)?;
        let after = wait_synced(ns, metric(&before, "podnet_syncs_total")?, agent)?;
        fallbacks += usize::from(fb);
        add_ms.push(add);
        let d = |name: &str| -> Result<f64> { Ok(metric(&after, name)? - metric(&before, name)?) };
        let add_rec = d("podnet_sync_duration_seconds_sum")? * 1e3;
        let add_count = d("podnet_sync_duration_seconds_count")?;
        writes += d("podnet_kernel_writes_total")?;
        rec_sum += add_rec;
        rec_count += add_count;
        std::thread::sleep(Duration::from_millis(10));

        let before = metrics(ns)?;
        events.drain()?;
        let t = Instant::now();
        fs::remove_file(&path)?;
        let (remove, fb) = events.wait(nl, pod_cidr(i), false, t, agent)?;
        let after = wait_synced(ns, metric(&before, "podnet_syncs_total")?, agent)?;
        fallbacks += usize::from(fb);
        remove_ms.push(remove);
        let d = |name: &str| -> Result<f64> { Ok(metric(&after, name)? - metric(&before, name)?) };
        rec_sum += d("podnet_sync_duration_seconds_sum")? * 1e3;
        rec_count += d("podnet_sync_duration_seconds_count")?;
        if args.verbose {
            eprintln!(
                "  sample {k:>3}: add {add:8.3} ms (reconcile {:.3} ms in {add_count} syncs), remove {remove:8.3} ms",
                add_rec / add_count.max(1.0),
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let m = metrics(ns)?;
    let (rss_kib, hwm_kib) = agent.memory(podnet)?;
    let ready_ms = ready.unwrap_or(f64::NAN);
    Ok(Row {
        mode: String::new(),
        nodes: 0,
        first_ms: first.unwrap_or(f64::NAN),
        init_ms: init.unwrap_or(f64::NAN),
        ready_ms,
        add_ms,
        remove_ms,
        rec_sum: metric(&m, "podnet_sync_duration_seconds_sum")?,
        rec_count: metric(&m, "podnet_sync_duration_seconds_count")?,
        rec_event_ms: rec_sum / rec_count.max(1.0),
        writes_per_add: writes / args.samples as f64,
        rss_kib,
        hwm_kib,
        idle_cpu_pct,
        fallbacks,
    })
}

// ---------------------------------------------------------------------------------------
// Output.

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn print_table(args: &Args, rows: &[Row], took: Duration) {
    println!(
        "agent-bench: podnet agent, manifests source, masquerade {}, {} add+remove samples per row, {:.1} s\n",
        if args.no_masquerade { "off" } else { "on" },
        args.samples,
        took.as_secs_f64()
    );
    println!(
        "{:<8} {:>5} | {:>8} {:>8} {:>8} | {:>7} {:>7} | {:>7} {:>7} | {:>8} {:>8} {:>6} | {:>6} {:>6} {:>6}",
        "mode", "nodes", "first", "all", "ready", "add", "add", "remove", "remove",
        "rec mean", "rec chg", "writes", "RSS", "HWM", "idle"
    );
    println!(
        "{:<8} {:>5} | {:>8} {:>8} {:>8} | {:>7} {:>7} | {:>7} {:>7} | {:>8} {:>8} {:>6} | {:>6} {:>6} {:>6}",
        "", "", "ms", "ms", "ms", "med ms", "p90 ms", "med ms", "p90 ms", "ms", "ms", "/add",
        "MiB", "MiB", "CPU %"
    );
    for r in rows {
        let (add, rm) = (sorted(&r.add_ms), sorted(&r.remove_ms));
        println!(
            "{:<8} {:>5} | {:>8.1} {:>8.1} {:>8.1} | {:>7.2} {:>7.2} | {:>7.2} {:>7.2} | {:>8.2} {:>8.2} {:>6.1} | {:>6.1} {:>6.1} {:>6.1}",
            r.mode,
            r.nodes,
            r.first_ms,
            r.init_ms,
            r.ready_ms,
            median(&add),
            percentile(&add, 90.0),
            median(&rm),
            percentile(&rm, 90.0),
            r.rec_sum / r.rec_count.max(1.0) * 1e3,
            r.rec_event_ms,
            r.writes_per_add,
            mib(r.rss_kib),
            mib(r.hwm_kib),
            r.idle_cpu_pct,
        );
    }
    println!(
        "\nfirst/all: agent start (ip netns exec) → first / all N-1 routes in the kernel; ready: → /readyz 200 (polled every ~2 ms)"
    );
    println!("add/remove: rename of a one-Node file into the directory (or its unlink) → RTM_NEWROUTE/RTM_DELROUTE for its pod CIDR");
    println!("rec mean: podnet_sync_duration_seconds sum/count over the run; rec chg: the same for the reconciles the timed changes caused");
    println!("writes/add: podnet_kernel_writes_total per addition; RSS/HWM: VmRSS/VmHWM of the agent after the samples");
    println!("idle CPU: the agent's CPU time (all threads) over {IDLE:?} after the initial sync with nothing changing, % of one CPU");
    let fallbacks: usize = rows.iter().map(|r| r.fallbacks).sum();
    if fallbacks > 0 {
        println!("note: {fallbacks} change(s) were seen by the 20 ms dump fallback, before its notification was read (timed at the dump's start: up to one dump, ~1 ms, early)");
    }
}
