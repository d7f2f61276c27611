//! Fixtures for the plugin's end-to-end tests: a node namespace, pod namespaces, the real
//! `podnet-cni` binary invoked as a runtime would, and state read back with `ip -j`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use podnet::cni_exec::{invoke, Call, Reply};
use podnet_netdev::testing::TestNs;
use serde_json::Value;

pub const PLUGIN: &str = env!("CARGO_BIN_EXE_podnet-cni");
pub const IPAM_PLUGIN: &str = env!("CARGO_BIN_EXE_podnet-ipam");
pub const REFERENCE: &str = "/usr/lib/cni";

pub struct Node {
    pub ns: TestNs,
    pub data: tempfile::TempDir,
    pub conf: Value,
    pub name: String,
}

impl Node {
    pub fn new(name: &str, mode: &str) -> Node {
        let data = tempfile::tempdir().unwrap();
        let conf = podnet::demo::node_config(name, mode, data.path().to_str().unwrap());
        Node {
            ns: TestNs::new("t").unwrap(),
            data,
            conf,
            name: name.to_string(),
        }
    }

    /// Runs the plugin with `conf` as stdin.
    pub fn call_with(&self, call: &Call, conf: &Value) -> Reply {
        self.call_raw(call, &serde_json::to_vec(conf).unwrap())
    }

    pub fn call_raw(&self, call: &Call, stdin: &[u8]) -> Reply {
        invoke(Path::new(PLUGIN), self.ns.ns(), call, stdin).unwrap()
    }

    pub fn call(&self, cmd: &str, cid: &str, pod: &Path) -> Reply {
        self.call_with(&Call::attachment(cmd, cid, pod), &self.conf)
    }

    /// ADD into a fresh pod namespace; panics on failure.
    pub fn add(&self, cid: &str) -> (TestNs, Value) {
        let pod = TestNs::new("p").unwrap();
        let r = self.call("ADD", cid, &pod.path());
        assert!(r.ok(), "ADD {cid}: {} {}", r.stdout, r.stderr);
        (pod, r.json)
    }

    pub fn check(&self, cid: &str, pod: &Path, result: &Value) -> Reply {
        let mut conf = self.conf.clone();
        conf["prevResult"] = result.clone();
        self.call_with(&Call::attachment("CHECK", cid, pod), &conf)
    }

    /// Names of the veths on the node.
    pub fn veths(&self) -> Vec<String> {
        ip_json(self.ns.name(), &["link", "show", "type", "veth"])
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["ifname"].as_str().unwrap().to_string())
            .collect()
    }

    /// Reserved addresses in the IPAM store of this network.
    pub fn reservations(&self) -> Vec<IpAddr> {
        let dir = self.data.path().join(&self.name);
        let Ok(rd) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect()
    }

    pub fn records(&self) -> usize {
        let dir = self.data.path().join(&self.name).join("attachments");
        std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
    }
}

pub fn ip_json(ns: &str, args: &[&str]) -> Value {
    let out = Command::new("ip")
        .args(["-j", "-d", "-n", ns])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Array(vec![]))
}

/// Runs `ip -n NS ARGS…` and asserts it succeeded.
pub fn ip(ns: &str, args: &[&str]) {
    let out = Command::new("ip")
        .args(["-n", ns])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ip -n {ns} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn ping(ns: &str, addr: &str) -> bool {
    Command::new("ip")
        .args(["netns", "exec", ns, "ping", "-c1", "-W2", addr])
        .output()
        .unwrap()
        .status
        .success()
}

/// The addresses (without prefix) of a result.
pub fn result_ips(result: &Value) -> Vec<String> {
    result["ips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|ip| {
            ip["address"]
                .as_str()
                .unwrap()
                .split('/')
                .next()
                .unwrap()
                .to_string()
        })
        .collect()
}

pub fn has_reference() -> bool {
    PathBuf::from(REFERENCE).join("bridge").is_file()
}

/// The error object of a failed call, checked for shape: exactly one JSON object with a code.
pub fn error_code(r: &Reply) -> u64 {
    assert!(!r.ok(), "expected failure, got {}", r.stdout);
    assert_eq!(
        r.stdout.trim().lines().count(),
        1,
        "one JSON object: {:?}",
        r.stdout
    );
    assert!(r.json["msg"].is_string(), "{}", r.stdout);
    r.json["code"].as_u64().unwrap()
}

/// An underlay: a bridge in its own namespace, and `n` node namespaces plugged into it, node
/// `i` (1-based) with `eth0` at 192.168.77.i/24 and `lo` up. Everything is removed on drop.
pub struct Underlay {
    pub nodes: Vec<TestNs>,
    /// Dropped last (fields drop in order): holds the bridge.
    pub ns: TestNs,
}

impl Underlay {
    pub fn new(n: usize) -> Underlay {
        let ns = TestNs::new("ul").unwrap();
        ip(ns.name(), &["link", "add", "ul0", "type", "bridge"]);
        ip(ns.name(), &["link", "set", "ul0", "up"]);
        let mut u = Underlay {
            nodes: Vec::new(),
            ns,
        };
        for i in 1..=n {
            let node = TestNs::new("nd").unwrap();
            u.plug(&node, i);
            u.nodes.push(node);
        }
        u
    }

    /// Plugs `host` into the underlay as `eth0` with address 192.168.77.`octet`/24.
    pub fn plug(&self, host: &TestNs, octet: usize) {
        let port = format!("ul-h{octet}");
        let peer = ["link", "add", &port, "type", "veth", "peer", "name", "eth0"];
        let mut args: Vec<&str> = peer.to_vec();
        args.extend(["netns", host.name()]);
        ip(self.ns.name(), &args);
        ip(
            self.ns.name(),
            &["link", "set", &port, "master", "ul0", "up"],
        );
        let addr = format!("192.168.77.{octet}/24");
        ip(host.name(), &["addr", "add", &addr, "dev", "eth0"]);
        ip(host.name(), &["link", "set", "eth0", "up"]);
        ip(host.name(), &["link", "set", "lo", "up"]);
    }

    /// Node `i`'s (1-based) underlay address.
    pub fn address(i: usize) -> String {
        format!("192.168.77.{i}")
    }
}
