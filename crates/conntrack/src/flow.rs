//! Which entries a [`Flow`] selects: the pure part of [`crate::delete_flows`].

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};

use crate::Entry;

/// Connections to a Service frontend that conntrack bound to one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Flow {
    /// The layer 4 protocol number, e.g. `libc::IPPROTO_UDP as u8`.
    pub proto: u8,
    /// The original-direction destination: the Service's address and port.
    pub orig_dst: SocketAddr,
    /// The reply-direction source: the endpoint the flow was DNATed to, and its port.
    pub reply_src: SocketAddr,
}

impl Flow {
    /// True when `entry` is one of this flow's connections. Addresses and ports compare
    /// exactly; IPv6 flow info and scope id play no part.
    pub fn matches(&self, entry: &Entry) -> bool {
        self.key() == key_of(entry)
    }

    fn key(&self) -> Key {
        key(self.proto, self.orig_dst, self.reply_src)
    }
}

type Key = (u8, IpAddr, u16, IpAddr, u16);

fn key(proto: u8, orig_dst: SocketAddr, reply_src: SocketAddr) -> Key {
    let (d, s) = (orig_dst, reply_src);
    (proto, d.ip(), d.port(), s.ip(), s.port())
}

fn key_of(entry: &Entry) -> Key {
    key(entry.proto, entry.orig.dst, entry.reply.src)
}

/// Every flow of a batch, for one pass over the conntrack table.
#[derive(Debug)]
pub(crate) struct Matcher(HashSet<Key>);

impl Matcher {
    pub(crate) fn new(flows: &[Flow]) -> Matcher {
        Matcher(flows.iter().map(Flow::key).collect())
    }

    /// True when `entry` belongs to any of the flows.
    pub(crate) fn matches(&self, entry: &Entry) -> bool {
        self.0.contains(&key_of(entry))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::entry::tests::attrs;

    fn entry(proto: u8, orig: (&str, &str), reply: (&str, &str)) -> Entry {
        Entry::parse(attrs(proto, orig, reply)).unwrap()
    }

    fn flow(proto: u8, orig_dst: &str, reply_src: &str) -> Flow {
        Flow {
            proto,
            orig_dst: orig_dst.parse().unwrap(),
            reply_src: reply_src.parse().unwrap(),
        }
    }

    #[test]
    fn matches_frontend_and_backend_exactly() {
        let dns = entry(
            17,
            ("10.0.0.5:40000", "10.96.0.10:53"),
            ("10.1.0.1:5353", "10.0.0.5:40000"),
        );
        let f = flow(17, "10.96.0.10:53", "10.1.0.1:5353");
        assert!(f.matches(&dns));
        for other in [
            flow(6, "10.96.0.10:53", "10.1.0.1:5353"),
            flow(17, "10.96.0.10:54", "10.1.0.1:5353"),
            flow(17, "10.96.0.11:53", "10.1.0.1:5353"),
            flow(17, "10.96.0.10:53", "10.1.0.2:5353"),
            flow(17, "10.96.0.10:53", "10.1.0.1:53"),
        ] {
            assert!(!other.matches(&dns), "{other:?}");
        }
    }

    #[test]
    fn ipv6_ignores_scope_and_flow_info() {
        let e = entry(
            17,
            ("[fd00::5]:40000", "[fd00:96::a]:53"),
            ("[fd00:1::1]:5353", "[fd00::5]:40000"),
        );
        let mut f = flow(17, "[fd00:96::a]:53", "[fd00:1::1]:5353");
        if let SocketAddr::V6(ref mut a) = f.orig_dst {
            a.set_flowinfo(9);
        }
        assert!(f.matches(&e));
        assert!(Matcher::new(&[f]).matches(&e));
    }

    #[test]
    fn matcher_selects_every_listed_flow_in_one_pass() {
        let entries = [
            entry(
                17,
                ("10.0.0.5:1000", "10.96.0.10:53"),
                ("10.1.0.1:5353", "10.0.0.5:1000"),
            ),
            entry(
                17,
                ("10.0.0.6:1000", "10.96.0.10:53"),
                ("10.1.0.1:5353", "10.0.0.6:1000"),
            ),
            entry(
                17,
                ("10.0.0.5:1001", "10.96.0.10:53"),
                ("10.1.0.2:5353", "10.0.0.5:1001"),
            ),
            entry(
                6,
                ("10.0.0.5:1002", "10.96.0.20:80"),
                ("10.1.0.3:8080", "10.0.0.5:1002"),
            ),
            entry(
                17,
                ("10.0.0.5:1003", "10.96.0.30:53"),
                ("10.1.0.4:53", "10.0.0.5:1003"),
            ),
        ];
        let m = Matcher::new(&[
            flow(17, "10.96.0.10:53", "10.1.0.1:5353"),
            flow(6, "10.96.0.20:80", "10.1.0.3:8080"),
        ]);
        let hit: Vec<bool> = entries.iter().map(|e| m.matches(e)).collect();
        assert_eq!(hit, [true, true, false, true, false]);
        assert!(!Matcher::new(&[]).matches(&entries[0]));
    }
}
