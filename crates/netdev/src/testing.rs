//! Throwaway network namespaces for tests, benchmarks and the sandbox: named uniquely per
//! process and per call, removed on drop (also when a test panics).

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::{NetNs, NetdevError, Result};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A named network namespace under `/run/netns`, deleted on drop.
#[derive(Debug)]
pub struct TestNs {
    name: String,
    ns: NetNs,
}

impl TestNs {
    /// Creates `pn<tag>-<pid>-<n>` with its loopback up.
    pub fn new(tag: &str) -> Result<TestNs> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("pn{tag}-{}-{n}", std::process::id());
        run_ip(&["netns", "add", &name])?;
        let ns = NetNs::open(format!("/run/netns/{name}"))?;
        let guard = TestNs { name, ns };
        run_ip(&["-n", &guard.name, "link", "set", "lo", "up"])?;
        Ok(guard)
    }

    /// The namespace's name (for `ip -n`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its path under /run/netns.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.name))
    }

    /// The open namespace.
    pub fn ns(&self) -> &NetNs {
        &self.ns
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        let _ = run_ip(&["netns", "del", &self.name]);
    }
}

fn run_ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(NetdevError::Socket)?;
    if out.status.success() {
        return Ok(());
    }
    Err(NetdevError::Socket(std::io::Error::other(format!(
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    ))))
}

/// Three namespaces for data-path tests of a node: `client` (10.244.0.9/24, default route via
/// the node) — `node` (10.244.0.1 on `to-c`, 10.244.1.1 on `to-s`, forwarding on) — `server`
/// (10.244.1.5 and 10.244.1.6 on `eth0`, default route via the node). Extra node addresses
/// (e.g. `172.18.0.1/32`) go on `to-c`.
#[derive(Debug)]
pub struct Routed {
    /// The client.
    pub client: TestNs,
    /// The node in between.
    pub node: TestNs,
    /// The server with two addresses.
    pub server: TestNs,
}

impl Routed {
    /// Builds it; `tag` prefixes the namespace names.
    pub fn new(tag: &str, node_extra: &[&str]) -> Result<Routed> {
        let client = TestNs::new(&format!("{tag}c"))?;
        let node = TestNs::new(&format!("{tag}n"))?;
        let server = TestNs::new(&format!("{tag}s"))?;
        for (end, peer) in [(&client, "to-c"), (&server, "to-s")] {
            run_ip(&[
                "link",
                "add",
                "eth0",
                "netns",
                end.name(),
                "type",
                "veth",
                "peer",
                "name",
                peer,
                "netns",
                node.name(),
            ])?;
        }
        let ip = |ns: &TestNs, args: &str| -> Result<()> {
            let mut all = vec!["-n", ns.name()];
            all.extend(args.split_whitespace());
            run_ip(&all)
        };
        ip(&client, "addr add 10.244.0.9/24 dev eth0")?;
        ip(&client, "link set eth0 up")?;
        ip(&client, "route add default via 10.244.0.1")?;
        ip(&server, "addr add 10.244.1.5/24 dev eth0")?;
        ip(&server, "addr add 10.244.1.6/24 dev eth0")?;
        ip(&server, "link set eth0 up")?;
        ip(&server, "route add default via 10.244.1.1")?;
        ip(&node, "addr add 10.244.0.1/24 dev to-c")?;
        for extra in node_extra {
            ip(&node, &format!("addr add {extra} dev to-c"))?;
        }
        ip(&node, "link set to-c up")?;
        ip(&node, "addr add 10.244.1.1/24 dev to-s")?;
        ip(&node, "link set to-s up")?;
        node.ns()
            .run(|| std::fs::write("/proc/sys/net/ipv4/ip_forward", "1"))?
            .map_err(NetdevError::Socket)?;
        Ok(Routed {
            client,
            node,
            server,
        })
    }
}
