//! Stale Service flows in real namespaces (needs root).
//!
//! client ── node ── server: the node DNATs UDP to a ClusterIP (one for IPv4, one for IPv6)
//! to one of two backend addresses on the server, and a second ClusterIP to the first
//! backend. Changing the DNAT leaves the client's existing flow on the old backend until
//! its conntrack entry is deleted.
#![allow(clippy::unwrap_used)]

use std::io::{ErrorKind, Write};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use podnet_conntrack::{delete, delete_flows, list, Entry, Flow};
use podnet_netdev::testing::TestNs;

const UDP: u8 = libc::IPPROTO_UDP as u8;

/// The addresses of one family.
struct Plan {
    client: &'static str,
    /// The ClusterIP whose backend changes.
    vip: &'static str,
    /// A ClusterIP that always goes to the first backend.
    other_vip: &'static str,
    backends: [&'static str; 2],
}

const V4: Plan = Plan {
    client: "10.0.0.2:0",
    vip: "10.96.0.10:53",
    other_vip: "10.96.0.20:53",
    backends: ["10.1.0.1:5353", "10.1.0.2:5353"],
};

const V6: Plan = Plan {
    client: "[fd00::2]:0",
    vip: "[fd00:96::a]:53",
    other_vip: "[fd00:96::14]:53",
    backends: ["[fd00:1::1]:5353", "[fd00:1::2]:5353"],
};

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn run(cmd: &str, args: &[&str], stdin: Option<&str>) {
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `ip -n <ns> ...`: never touches the root namespace.
fn ip(ns: &TestNs, args: &str) {
    let mut all = vec!["-n", ns.name()];
    all.extend(args.split_whitespace());
    run("ip", &all, None);
}

/// Three namespaces wired client ── node ── server, dual stack.
struct Lab {
    client: TestNs,
    node: TestNs,
    server: TestNs,
    /// The conntrack zone the node puts every packet in (`None`: the default zone).
    zone: Option<u16>,
}

impl Lab {
    fn new() -> Lab {
        Lab::in_zone(None)
    }

    fn in_zone(zone: Option<u16>) -> Lab {
        let lab = Lab {
            client: TestNs::new("ctc").unwrap(),
            node: TestNs::new("ctn").unwrap(),
            server: TestNs::new("cts").unwrap(),
            zone,
        };
        let (c, n, s) = (&lab.client, &lab.node, &lab.server);
        ip(
            c,
            &format!("link add c0 type veth peer name n0 netns {}", n.name()),
        );
        ip(
            s,
            &format!("link add s0 type veth peer name n1 netns {}", n.name()),
        );
        for (ns, dev, addrs) in [
            (c, "c0", &["10.0.0.2/24", "fd00::2/64"][..]),
            (n, "n0", &["10.0.0.1/24", "fd00::1/64"]),
            (n, "n1", &["10.1.0.254/24", "fd00:1::fe/64"]),
            (
                s,
                "s0",
                &["10.1.0.1/24", "10.1.0.2/24", "fd00:1::1/64", "fd00:1::2/64"],
            ),
        ] {
            for a in addrs {
                ip(ns, &format!("addr add {a} dev {dev} nodad"));
            }
            ip(ns, &format!("link set {dev} up"));
        }
        for (ns, v4, v6) in [(c, "10.0.0.1", "fd00::1"), (s, "10.1.0.254", "fd00:1::fe")] {
            ip(ns, &format!("route add default via {v4}"));
            ip(ns, &format!("-6 route add default via {v6}"));
        }
        let sysctl = ["net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"];
        for kv in sysctl {
            run(
                "ip",
                &["netns", "exec", n.name(), "sysctl", "-qw", kv],
                None,
            );
        }
        lab.dnat_to(0);
        lab
    }

    /// (Re)writes the node's DNAT: `vip` to backend `b`, `other_vip` to backend 0.
    fn dnat_to(&self, b: usize) {
        let rules: String = [V4, V6]
            .iter()
            .map(|p| {
                let fam = if addr(p.vip).is_ipv4() { "ip" } else { "ip6" };
                let rule = |vip: &str, to: &str| {
                    let vip = addr(vip);
                    format!(
                        "{fam} daddr {} udp dport {} dnat {fam} to {to}\n",
                        vip.ip(),
                        vip.port()
                    )
                };
                rule(p.vip, p.backends[b]) + &rule(p.other_vip, p.backends[0])
            })
            .collect();
        let raw = match self.zone {
            Some(z) => format!(
                " chain raw {{\n  type filter hook prerouting priority raw; policy accept;\n  \
                 ct zone set {z}\n }}\n"
            ),
            None => String::new(),
        };
        let script = format!(
            "table inet podnet_ct_test\ndelete table inet podnet_ct_test\n\
             table inet podnet_ct_test {{\n{raw} chain pre {{\n  \
             type nat hook prerouting priority dstnat; policy accept;\n{rules} }}\n}}\n"
        );
        run(
            "ip",
            &["netns", "exec", self.node.name(), "nft", "-f", "-"],
            Some(&script),
        );
    }

    fn client_socket(&self, plan: &Plan) -> UdpSocket {
        let sock = self.client.ns().run(|| UdpSocket::bind(plan.client));
        let sock = sock.unwrap().unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        sock
    }

    fn backends(&self, plan: &Plan) -> [UdpSocket; 2] {
        plan.backends.map(|b| {
            let sock = self
                .server
                .ns()
                .run(|| UdpSocket::bind(b))
                .unwrap()
                .unwrap();
            sock.set_nonblocking(true).unwrap();
            sock
        })
    }

    fn node_entries(&self) -> Vec<Entry> {
        self.node.ns().run(list).unwrap().unwrap()
    }

    fn delete(&self, flows: &[Flow]) -> usize {
        self.node.ns().run(|| delete_flows(flows)).unwrap().unwrap()
    }
}

/// Sends one datagram from `client` to `vip`; the backend that gets it answers. Returns the
/// index of that backend, after checking the answer came back from the ClusterIP.
fn exchange(client: &UdpSocket, vip: SocketAddr, backends: &[UdpSocket; 2]) -> usize {
    client.send_to(b"ping", vip).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = [0; 16];
    loop {
        for (i, b) in backends.iter().enumerate() {
            match b.recv_from(&mut buf) {
                Ok((_, from)) => {
                    assert_eq!(from.ip(), client.local_addr().unwrap().ip(), "no SNAT");
                    b.send_to(b"pong", from).unwrap();
                    let (n, src) = client.recv_from(&mut buf).unwrap();
                    assert_eq!((&buf[..n], src), (&b"pong"[..], vip), "un-DNATed answer");
                    return i;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => panic!("backend {i}: {e}"),
            }
        }
        assert!(Instant::now() < deadline, "no backend got the datagram");
        sleep(Duration::from_millis(10));
    }
}

fn flow(vip: &str, backend: &str) -> Flow {
    Flow {
        proto: UDP,
        orig_dst: addr(vip),
        reply_src: addr(backend),
    }
}

fn to(entries: &[Entry], vip: &str) -> Vec<IpAddr> {
    let vip = addr(vip);
    entries
        .iter()
        .filter(|e| e.proto == UDP && e.orig.dst == vip)
        .map(|e| e.reply.src.ip())
        .collect()
}

fn stale_flow_moves_after_delete(plan: &Plan) {
    let lab = Lab::new();
    let backends = lab.backends(plan);
    let (vip, other_vip) = (addr(plan.vip), addr(plan.other_vip));
    let client = lab.client_socket(plan);
    let bystander = lab.client_socket(plan);
    assert_eq!(exchange(&client, vip, &backends), 0);
    assert_eq!(exchange(&bystander, other_vip, &backends), 0);

    let entries = lab.node_entries();
    let dumped = entries.iter().find(|e| e.orig.dst == vip).unwrap();
    assert_eq!(dumped.proto, UDP);
    assert_eq!(dumped.orig.src.port(), client.local_addr().unwrap().port());
    assert_eq!(dumped.reply.src, addr(plan.backends[0]));
    assert_eq!(dumped.reply.dst, dumped.orig.src);
    assert_eq!(dumped.zone, None);

    // The endpoint goes away: new flows go to backend 1, the client's flow stays stuck.
    lab.dnat_to(1);
    assert_eq!(exchange(&client, vip, &backends), 0, "stale entry");
    assert_eq!(exchange(&client, vip, &backends), 0, "still stale");

    assert_eq!(lab.delete(&[flow(plan.vip, plan.backends[0])]), 1);
    assert_eq!(
        exchange(&client, vip, &backends),
        1,
        "new entry, new endpoint"
    );

    let entries = lab.node_entries();
    let backend = |i: usize| addr(plan.backends[i]).ip();
    assert_eq!(to(&entries, plan.vip), [backend(1)]);
    assert_eq!(to(&entries, plan.other_vip), [backend(0)], "bystander kept");
    assert_eq!(exchange(&bystander, other_vip, &backends), 0);

    assert_eq!(
        lab.delete(&[flow(plan.vip, plan.backends[0])]),
        0,
        "already gone"
    );
    assert_eq!(lab.node_entries(), entries);

    // The first dump's entry has the original tuple of the live one (and often its id: the
    // kernel reuses the freed memory) but its reply tuple names the old endpoint: kept.
    let replaced = lab.node.ns().run(|| delete(dumped)).unwrap().unwrap();
    assert!(
        !replaced,
        "deleted the live entry through the stale one: {dumped:?}"
    );
    assert_eq!(lab.node_entries(), entries);

    let current = entries.iter().find(|e| e.orig.dst == vip).unwrap();
    assert!(lab.node.ns().run(|| delete(current)).unwrap().unwrap());
    assert!(!lab.node.ns().run(|| delete(current)).unwrap().unwrap());
    assert!(to(&lab.node_entries(), plan.vip).is_empty());
}

#[test]
fn stale_ipv4_udp_flow_moves_to_the_new_endpoint_after_delete() {
    stale_flow_moves_after_delete(&V4);
}

#[test]
fn stale_ipv6_udp_flow_moves_to_the_new_endpoint_after_delete() {
    stale_flow_moves_after_delete(&V6);
}

#[test]
fn one_call_deletes_flows_of_both_families_and_nothing_else() {
    let lab = Lab::new();
    let (b4, b6) = (lab.backends(&V4), lab.backends(&V6));
    let clients: Vec<UdpSocket> = [&V4, &V4, &V6, &V6]
        .iter()
        .map(|p| lab.client_socket(p))
        .collect();
    assert_eq!(exchange(&clients[0], addr(V4.vip), &b4), 0);
    assert_eq!(exchange(&clients[1], addr(V4.other_vip), &b4), 0);
    assert_eq!(exchange(&clients[2], addr(V6.vip), &b6), 0);
    assert_eq!(exchange(&clients[3], addr(V6.other_vip), &b6), 0);
    let before = lab.node_entries();
    assert_eq!(before.len(), 4, "{before:#?}");

    let unrelated = [
        flow(V4.vip, V4.backends[1]),
        flow(V6.vip, V6.backends[1]),
        Flow {
            proto: libc::IPPROTO_TCP as u8,
            ..flow(V4.vip, V4.backends[0])
        },
    ];
    assert_eq!(lab.delete(&unrelated), 0);
    assert_eq!(lab.delete(&[]), 0);
    assert_eq!(lab.node_entries(), before);

    let stale = [flow(V4.vip, V4.backends[0]), flow(V6.vip, V6.backends[0])];
    assert_eq!(lab.delete(&stale), 2);
    let after = lab.node_entries();
    assert!(to(&after, V4.vip).is_empty());
    assert!(to(&after, V6.vip).is_empty());
    assert_eq!(to(&after, V4.other_vip).len(), 1);
    assert_eq!(to(&after, V6.other_vip).len(), 1);
}

#[test]
fn entries_of_a_zone_are_deleted_in_their_zone() {
    let lab = Lab::in_zone(Some(7));
    let backends = lab.backends(&V4);
    let client = lab.client_socket(&V4);
    assert_eq!(exchange(&client, addr(V4.vip), &backends), 0);
    let entries = lab.node_entries();
    assert_eq!(entries.len(), 1, "{entries:#?}");
    assert_eq!(entries[0].zone, Some(7));

    lab.dnat_to(1);
    assert_eq!(lab.delete(&[flow(V4.vip, V4.backends[0])]), 1);
    assert_eq!(exchange(&client, addr(V4.vip), &backends), 1);
}

#[test]
fn a_namespace_without_conntrack_users_has_nothing_to_delete() {
    let ns = TestNs::new("cte").unwrap();
    assert_eq!(ns.ns().run(list).unwrap().unwrap(), []);
    let f = flow(V4.vip, V4.backends[0]);
    assert_eq!(ns.ns().run(|| delete_flows(&[f])).unwrap().unwrap(), 0);
}
