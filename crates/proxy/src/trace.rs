//! Follows a new connection's first packet through a [`State`] and the skeleton's rules, the
//! way kube-proxy's proxier tests trace packets through their generated ruleset: which checks
//! reject or drop it, which dispatch chain it reaches, every endpoint `numgen` may pick, and
//! whether postrouting masquerades it.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

use crate::select::{NodeFacts, Proto};
use crate::state::{Chain, Frontend, Key, Masq, Pick, SetId, SetKind, State, Value};

/// A connection's first packet.
#[derive(Debug, Clone, Copy)]
pub struct Packet {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Protocol.
    pub proto: Proto,
    /// Destination port.
    pub dport: u16,
    /// Sent by the node itself (output hook; `fib saddr type local`).
    pub from_node: bool,
}

/// What happens to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No Service rule touches it.
    Pass,
    /// Refused at once (TCP reset / ICMP unreachable).
    Reject,
    /// Dropped.
    Drop,
    /// DNATed to one of these endpoints; `true`: masqueraded on the way out.
    Dnat(BTreeMap<SocketAddr, bool>),
}

/// Something in the state that the rules would trip over.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("trace: {0}")]
pub struct TraceError(pub String);

fn in_nets(nets: &[IpNet], ip: IpAddr) -> bool {
    nets.iter().any(|n| n.contains(&ip))
}

/// Traces `p` through `state` (skeleton written for `node`).
pub fn trace(state: &State, node: &NodeFacts, p: Packet) -> Result<Verdict, TraceError> {
    let fe = Frontend {
        addr: p.dst,
        proto: p.proto,
        port: p.dport,
    };
    let set = |kind| SetId::of(kind, p.dst);
    let key = Key::Frontend(fe);
    // chain check (filter, before DNAT)
    if state.contains(set(SetKind::NoEndpoints), &key) {
        return Ok(Verdict::Reject);
    }
    if state.contains(set(SetKind::Firewall), &key) {
        let allowed = state
            .sets
            .get(&set(SetKind::FirewallAllow))
            .into_iter()
            .flat_map(|s| s.keys())
            .any(|k| matches!(k, Key::Source(f, net) if *f == fe && net.contains(&p.src)));
        if !allowed {
            return Ok(Verdict::Drop);
        }
    }
    let is_service_ip = state.contains(set(SetKind::ServiceIps), &Key::Addr(p.dst));
    // (In the NAT chain, after the frontends: a frontend without endpoints was refused
    // above.)
    if is_service_ip && !state.contains(set(SetKind::Frontends), &key) {
        return Ok(Verdict::Reject);
    }
    if in_nets(&node.service_cidrs, p.dst) && !is_service_ip {
        return Ok(Verdict::Drop);
    }
    // chain services (nat)
    let cluster_cidrs: Vec<IpNet> = if node
        .cluster_cidrs
        .iter()
        .any(|n| n.addr().is_ipv6() == p.src.is_ipv6())
    {
        node.cluster_cidrs.clone()
    } else {
        vec![if p.src.is_ipv6() {
            IpNet::V6(ipnet::Ipv6Net::default())
        } else {
            IpNet::V4(ipnet::Ipv4Net::default())
        }]
    };
    let from_pod = in_nets(&cluster_cidrs, p.src);
    let picked = match state.get(set(SetKind::Frontends), &key) {
        None => return Ok(Verdict::Pass),
        Some(Value::Drop) => return Ok(Verdict::Drop),
        Some(Value::Goto(name)) => run(state, name, fe, &p, from_pod, false, 0)?,
        Some(other) => {
            return Err(TraceError(format!(
                "frontend {fe} maps to {other:?}, not a verdict"
            )))
        }
    };
    let Some((backends, marked)) = picked else {
        return Ok(Verdict::Drop);
    };
    // chain nat-postrouting
    let mut out = BTreeMap::new();
    for b in backends {
        let hairpin = b.ip() == p.src
            && state.contains(SetId::of(SetKind::Hairpin, p.src), &Key::Pair(p.src, p.src));
        out.insert(b, marked || hairpin);
    }
    Ok(Verdict::Dnat(out))
}

/// Runs dispatch chain `name`: `None` for drop, else the endpoints it may pick and the mark.
fn run(
    state: &State,
    name: &str,
    fe: Frontend,
    p: &Packet,
    from_pod: bool,
    mut mark: bool,
    depth: u8,
) -> Result<Option<(Vec<SocketAddr>, bool)>, TraceError> {
    let chain: &Chain = state
        .chains
        .get(name)
        .ok_or_else(|| TraceError(format!("goto {name}: no such chain")))?;
    if depth > 2 {
        return Err(TraceError(format!("chain {name}: gotos loop")));
    }
    if chain.v6 != p.dst.is_ipv6() {
        return Err(TraceError(format!("chain {name} is for the other family")));
    }
    if let Some(short) = &chain.shortcut {
        if from_pod {
            return run(state, short, fe, p, from_pod, mark, depth + 1);
        }
        if p.from_node {
            return run(state, short, fe, p, from_pod, true, depth + 1);
        }
    }
    match chain.masq {
        Masq::Never => {}
        Masq::OffCluster => mark |= !from_pod,
        Masq::Always => mark = true,
    }
    match &chain.pick {
        Pick::Drop => Ok(None),
        Pick::Affinity {
            proto, backends, ..
        } => {
            if *proto != p.proto {
                return Ok(Some((Vec::new(), mark)));
            }
            Ok(Some((backends.iter().map(|(_, b)| *b).collect(), mark)))
        }
        Pick::Map { n, .. } => {
            let id = chain
                .slot_map()
                .ok_or_else(|| TraceError(format!("chain {name} reads no map")))?;
            let mut out = Vec::new();
            for i in 0..*n {
                match state.get(id, &Key::Slot(fe, i)) {
                    Some(Value::Backend(b)) => out.push(*b),
                    _ => {
                        return Err(TraceError(format!(
                            "{fe}: slot {i} of {n} missing in {}",
                            id.name()
                        )))
                    }
                }
            }
            Ok(Some((out, mark)))
        }
    }
}
