//! The real `podnet agent`, one per node namespace on a shared underlay, all reading one
//! manifests directory; pods wired by the real podnet-cni from the CNI config the agent
//! wrote. Pods on different nodes reach each other (host-gw and dual-stack VXLAN); a Node
//! removed from the manifests loses its routes; an agent restart changes nothing in the
//! kernel; a broken manifest keeps the last good state.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use podnet::cni_exec::{invoke, Call};
use podnet_netdev::testing::TestNs;
use serde_json::Value;

const PODNET: &str = env!("CARGO_BIN_EXE_podnet");
const METRICS: &str = "127.0.0.1:9464";

/// A running agent, killed on drop.
struct Agent {
    child: Child,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Cluster {
    pods: Vec<(TestNs, Vec<String>)>,
    agents: Vec<Option<Agent>>,
    underlay: Underlay,
    dir: tempfile::TempDir,
    mode: &'static str,
    dual: bool,
}

fn node_yaml(i: usize, dual: bool) -> String {
    let v6 = if dual {
        format!(", fd00:10:244:{i}::/64")
    } else {
        String::new()
    };
    format!(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: node-{i}\n  labels: {{kubernetes.io/hostname: node-{i}}}\nspec:\n  podCIDRs: [10.244.{i}.0/24{v6}]\nstatus:\n  addresses:\n  - {{type: Hostname, address: node-{i}}}\n  - {{type: InternalIP, address: {}}}\n",
        Underlay::address(i)
    )
}

/// Replaces a manifest file atomically, as `kubectl`-like tools and the sandbox do.
fn write_manifest(dir: &Path, name: &str, text: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `GET path` on the agent's metrics address inside `ns`: (status, body).
fn http_get(ns: &TestNs, path: &str) -> Option<(u16, String)> {
    let mut s = ns.ns().run(|| TcpStream::connect(METRICS)).unwrap().ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((code, body))
}

fn metric(ns: &TestNs, name: &str) -> f64 {
    let (_, body) = http_get(ns, "/metrics").expect("metrics");
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in {body}"))
}

impl Cluster {
    fn new(mode: &'static str, dual: bool) -> Cluster {
        let underlay = Underlay::new(3);
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("manifests")).unwrap();
        let nodes: Vec<String> = (1..=3).map(|i| node_yaml(i, dual)).collect();
        write_manifest(
            &dir.path().join("manifests"),
            "nodes.yaml",
            &nodes.join("---\n"),
        );
        let mut c = Cluster {
            pods: Vec::new(),
            agents: Vec::new(),
            underlay,
            dir,
            mode,
            dual,
        };
        for i in 1..=3 {
            let a = c.start_agent(i);
            c.agents.push(Some(a));
        }
        for i in 1..=3 {
            c.wait_ready(i);
        }
        c
    }

    fn manifests(&self) -> PathBuf {
        self.dir.path().join("manifests")
    }

    fn conflist(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("node-{i}/10-podnet.conflist"))
    }

    fn ns(&self, i: usize) -> &TestNs {
        &self.underlay.nodes[i - 1]
    }

    fn start_agent(&self, i: usize) -> Agent {
        let log = std::fs::File::create(self.dir.path().join(format!("agent-{i}.log"))).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", self.ns(i).name(), PODNET, "agent"])
            .args(["--node", &format!("node-{i}"), "--routing", self.mode])
            .arg("--manifests")
            .arg(self.manifests())
            .args(["--metrics-addr", METRICS, "--resync", "1s"])
            .arg("--cni-conf")
            .arg(self.conflist(i))
            .arg("--cni-data-dir")
            .arg(self.dir.path().join(format!("node-{i}/ipam")))
            .env("RUST_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Agent { child }
    }

    fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("agent-{i}.log"))).unwrap_or_default()
    }

    fn wait_ready(&self, i: usize) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while http_get(self.ns(i), "/readyz").map(|r| r.0) != Some(200) {
            assert!(
                Instant::now() < deadline,
                "node-{i} not ready:\n{}",
                self.log(i)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A pod on node `i`, wired by podnet-cni from the config the agent wrote.
    fn add_pod(&mut self, i: usize) {
        let list: Value =
            serde_json::from_slice(&std::fs::read(self.conflist(i)).unwrap()).unwrap();
        let mut conf = list["plugins"][0].clone();
        conf["name"] = list["name"].clone();
        conf["cniVersion"] = list["cniVersion"].clone();
        let pod = TestNs::new("p").unwrap();
        let r = invoke(
            Path::new(PLUGIN),
            self.ns(i).ns(),
            &Call::attachment("ADD", "c", &pod.path()),
            &serde_json::to_vec(&conf).unwrap(),
        )
        .unwrap();
        assert!(r.ok(), "{}", r.stdout);
        let ips = result_ips(&r.json);
        assert_eq!(ips.len(), if self.dual { 2 } else { 1 }, "{ips:?}");
        self.pods.push((pod, ips));
    }

    fn reaches(&self, from: usize, to: usize) -> bool {
        let (pod, _) = &self.pods[from - 1];
        self.pods[to - 1].1.iter().all(|a| ping(pod.name(), a))
    }

    /// What podnet owns on node `i`: its routes (protocol 122), permanent neighbours, the
    /// VXLAN device and its FDB, the nft ruleset, and the CNI config file's modification time.
    /// (Not the whole kernel state: IPv6 autoconfiguration keeps changing that on its own.)
    fn kernel_state(&self, i: usize) -> String {
        let ns = self.ns(i).name();
        let run = |cmd: &[&str]| {
            let out = Command::new(cmd[0]).args(&cmd[1..]).output().unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let mtime = std::fs::metadata(self.conflist(i))
            .unwrap()
            .modified()
            .unwrap();
        [
            run(&["ip", "-n", ns, "-4", "route", "show", "proto", "122"]),
            run(&["ip", "-n", ns, "-6", "route", "show", "proto", "122"]),
            run(&["ip", "-n", ns, "neigh", "show", "nud", "permanent"]),
            run(&["bridge", "-n", ns, "fdb", "show", "dev", "podnet.vxlan"]),
            run(&["ip", "-n", ns, "-d", "link", "show", "podnet.vxlan"]),
            run(&[
                "ip",
                "-n",
                ns,
                "addr",
                "show",
                "dev",
                "podnet.vxlan",
                "scope",
                "global",
            ]),
            run(&["ip", "netns", "exec", ns, "nft", "list", "ruleset"]),
            format!("{mtime:?}"),
        ]
        .join("\n")
    }

    fn has_route_to(&self, i: usize, cidr: &str) -> bool {
        let routes = ip_json(self.ns(i).name(), &["route", "show", cidr]);
        !routes.as_array().unwrap().is_empty()
    }
}

/// Listens on `addr`:7777 inside `server`, connects from `client` and returns the source
/// address the server saw.
fn source_seen_by(
    server: &podnet_netdev::NetNs,
    addr: &str,
    client: &podnet_netdev::NetNs,
) -> String {
    let listener = server
        .run(|| std::net::TcpListener::bind((addr, 7777)))
        .unwrap()
        .unwrap();
    let target: std::net::SocketAddr = format!("{addr}:7777").parse().unwrap();
    let _conn = client
        .run(|| TcpStream::connect_timeout(&target, Duration::from_secs(3)))
        .unwrap()
        .expect("connect");
    let (_, peer) = listener.accept().unwrap();
    peer.ip().to_string()
}

fn run_cluster(mode: &'static str, dual: bool) {
    let mut c = Cluster::new(mode, dual);
    let want_mtu = if mode == "vxlan" { 1450 } else { 1500 };
    for i in 1..=3 {
        let list: Value = serde_json::from_slice(&std::fs::read(c.conflist(i)).unwrap()).unwrap();
        assert_eq!(list["plugins"][0]["mtu"], want_mtu, "pod MTU of node-{i}");
        assert_eq!(
            list["plugins"][0]["ipam"]["ranges"][0][0]["subnet"],
            format!("10.244.{i}.0/24")
        );
        c.add_pod(i);
    }
    for (from, to) in [(1, 2), (1, 3), (2, 1), (2, 3), (3, 1), (3, 2)] {
        assert!(
            c.reaches(from, to),
            "{mode}: pod on node-{from} -> pod on node-{to}"
        );
    }
    // Traffic leaving the cluster is masqueraded to the node's address; pod→pod keeps the
    // pod's address. (A host outside the cluster on the underlay, and a pod on node-2, each
    // tell what source address they saw.)
    let outside = TestNs::new("out").unwrap();
    c.underlay.plug(&outside, 100);
    let pod1 = c.pods[0].0.ns();
    let seen_outside = source_seen_by(outside.ns(), "192.168.77.100", pod1);
    assert_eq!(
        seen_outside,
        Underlay::address(1),
        "masqueraded to node-1's address"
    );
    let pod2_ip = c.pods[1].1[0].clone();
    let seen_pod = source_seen_by(c.pods[1].0.ns(), &pod2_ip, pod1);
    assert_eq!(seen_pod, c.pods[0].1[0], "pod to pod: not masqueraded");

    // Restart node-1's agent: it syncs and writes nothing; the kernel is unchanged.
    let before = c.kernel_state(1);
    c.agents[0] = None;
    let a = c.start_agent(1);
    c.agents[0] = Some(a);
    c.wait_ready(1);
    assert_eq!(
        metric(c.ns(1), "podnet_kernel_writes_total"),
        0.0,
        "{}",
        c.log(1)
    );
    // A few periodic resyncs (1 s) write nothing either.
    wait_for("two resyncs", Duration::from_secs(5), || {
        metric(c.ns(1), "podnet_syncs_total") >= 3.0
    });
    assert_eq!(metric(c.ns(1), "podnet_kernel_writes_total"), 0.0);
    let after = c.kernel_state(1);
    let changed: Vec<_> = after
        .lines()
        .filter(|l| !before.lines().any(|b| b == *l))
        .collect();
    let lost: Vec<_> = before
        .lines()
        .filter(|l| !after.lines().any(|b| b == *l))
        .collect();
    assert!(
        changed.is_empty() && lost.is_empty(),
        "new: {changed:#?}\ngone: {lost:#?}"
    );
    assert_eq!(metric(c.ns(1), "podnet_peers"), 2.0);

    // A broken manifest: reported, and the last good state stays in force.
    write_manifest(
        &c.manifests(),
        "broken.yaml",
        "apiVersion: v1\nkind: Node\nmetadata: [\n",
    );
    wait_for("the error to be counted", Duration::from_secs(5), || {
        metric(c.ns(1), "podnet_source_errors_total") >= 1.0
    });
    assert!(c.log(1).contains("broken.yaml"), "{}", c.log(1));
    assert!(c.reaches(1, 3));
    std::fs::remove_file(c.manifests().join("broken.yaml")).unwrap();

    // node-3 leaves: the others drop what pointed at it, and only that.
    let two: Vec<String> = (1..=2).map(|i| node_yaml(i, dual)).collect();
    write_manifest(&c.manifests(), "nodes.yaml", &two.join("---\n"));
    for i in 1..=2 {
        wait_for("node-3's routes to go", Duration::from_secs(5), || {
            !c.has_route_to(i, "10.244.3.0/24") && metric(c.ns(i), "podnet_peers") == 1.0
        });
    }
    if dual {
        assert!(!c.has_route_to(1, "fd00:10:244:3::/64"));
    }
    assert!(!c.reaches(1, 3));
    assert!(c.reaches(1, 2) && c.reaches(2, 1));
    if mode == "vxlan" {
        let neigh = ip_json(c.ns(1).name(), &["neigh", "show", "dev", "podnet.vxlan"]);
        assert_eq!(
            neigh.as_array().unwrap().len(),
            if dual { 2 } else { 1 },
            "{neigh}"
        );
    }
    // node-3 returns: routes come back.
    let all: Vec<String> = (1..=3).map(|i| node_yaml(i, dual)).collect();
    write_manifest(&c.manifests(), "nodes.yaml", &all.join("---\n"));
    wait_for("node-3's route to return", Duration::from_secs(5), || {
        c.has_route_to(1, "10.244.3.0/24")
    });
    assert!(c.reaches(1, 3));
}

#[test]
fn agents_route_pods_host_gw() {
    run_cluster("host-gw", false);
}

#[test]
fn agents_route_dual_stack_pods_vxlan() {
    run_cluster("vxlan", true);
}

#[test]
fn agent_refuses_a_missing_manifests_directory() {
    let ns = TestNs::new("a").unwrap();
    let out = Command::new("ip")
        .args(["netns", "exec", ns.name(), PODNET, "agent", "--node", "n"])
        .args(["--manifests", "/nonexistent/podnet", "--no-cni-conf"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/podnet"), "{err}");
}
