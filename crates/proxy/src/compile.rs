//! Service ports and node facts → the desired [`State`] (a pure function), plus what the agent
//! serves besides nftables (health-check node ports) and what UDP conntrack entries may go stale.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use sha2::{Digest, Sha256};

use crate::select::{select, NodeFacts, PortKey, Problem, Proto, ServicePort};
use crate::state::{Chain, Elements, Frontend, Key, Masq, Pick, SetId, SetKind, State, Value};

/// A health-check node port to answer (LoadBalancer Services with externalTrafficPolicy Local).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// The node port.
    pub port: u16,
    /// `namespace/name`.
    pub service: String,
    /// Ready endpoints of the Service on this node.
    pub local_endpoints: usize,
}

/// What the proxy should program on this node.
#[derive(Debug, Clone, Default)]
pub struct Compiled {
    /// The nftables state.
    pub state: State,
    /// Health-check node ports by port.
    pub health: BTreeMap<u16, HealthCheck>,
    /// For every UDP frontend, every endpoint traffic to it may be DNATed to.
    pub udp: BTreeMap<Frontend, BTreeSet<SocketAddr>>,
    /// What was skipped, and why.
    pub problems: Vec<Problem>,
}

impl Compiled {
    /// UDP flows that pointed at an endpoint `self` no longer sends the frontend's traffic to:
    /// (frontend, endpoint) pairs whose conntrack entries must go.
    pub fn stale_udp(&self, new: &Compiled) -> Vec<(Frontend, SocketAddr)> {
        let mut out = Vec::new();
        for (fe, old) in &self.udp {
            let now = new.udp.get(fe);
            for b in old {
                if !now.is_some_and(|n| n.contains(b)) {
                    out.push((*fe, *b));
                }
            }
        }
        out
    }
}

/// The affinity key of endpoint `b` of `key` (stable: a hash of both).
fn affinity_key(key: &PortKey, b: &SocketAddr) -> u32 {
    let d = Sha256::digest(format!("{key}|{b}").as_bytes());
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// Compiles `ports` for `node`. A frontend claimed by two Services goes to the first in
/// (namespace, name, port) order and the second is reported. Endpoints keep the slots they had
/// in `previous` (what was last written), so one endpoint change rewrites one slot.
pub fn compile(ports: &[ServicePort], node: &NodeFacts, previous: Option<&State>) -> Compiled {
    let mut out = Compiled::default();
    let empty = State::default();
    let previous = previous.unwrap_or(&empty);
    let mut sorted: Vec<&ServicePort> = ports.iter().collect();
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    for sp in sorted {
        for v6 in [false, true] {
            port_family(&mut out, sp, v6, node, previous);
        }
        if let Some(port) = sp.health_check_node_port {
            let service = format!("{}/{}", sp.key.namespace, sp.key.name);
            let local: BTreeSet<IpAddr> = sp
                .endpoints
                .iter()
                .filter(|e| e.ready && e.node.as_deref() == Some(node.name.as_str()))
                .map(|e| e.addr.ip())
                .collect();
            match out.health.get(&port) {
                Some(hc) if hc.service != service => out.problems.push(Problem {
                    service: service.clone(),
                    message: format!(
                        "health-check node port {port} already used by {}",
                        hc.service
                    ),
                }),
                _ => {
                    out.health.insert(
                        port,
                        HealthCheck {
                            port,
                            service,
                            local_endpoints: local.len(),
                        },
                    );
                }
            }
        }
        for e in &sp.endpoints {
            if e.node.as_deref() == Some(node.name.as_str()) {
                let ip = e.addr.ip();
                out.state.insert(
                    SetId::of(SetKind::Hairpin, ip),
                    Key::Pair(ip, ip),
                    Value::None,
                );
            }
        }
    }
    out
}

fn port_family(out: &mut Compiled, sp: &ServicePort, v6: bool, node: &NodeFacts, previous: &State) {
    let sel = select(sp, v6, node);
    let family = |ip: &IpAddr| ip.is_ipv6() == v6;
    let proto = sp.key.proto;
    let service = format!("{}/{}", sp.key.namespace, sp.key.name);
    let pick = |list: &[SocketAddr], map: SetKind| -> Pick {
        match sp.affinity {
            Some(timeout) => Pick::Affinity {
                proto,
                timeout,
                backends: list
                    .iter()
                    .map(|b| (affinity_key(&sp.key, b), *b))
                    .collect(),
            },
            None => Pick::Map {
                map,
                n: u32::try_from(list.len()).unwrap_or(u32::MAX),
            },
        }
    };
    let fe_at = |addr: IpAddr, port: u16| Frontend { addr, proto, port };

    // ClusterIPs: internal traffic policy.
    for ip in sp.cluster_ips.iter().filter(|ip| family(ip)) {
        let fe = fe_at(*ip, sp.port);
        out.state.insert(
            SetId::of(SetKind::ServiceIps, *ip),
            Key::Addr(*ip),
            Value::None,
        );
        if !claim(out, fe, &service) {
            continue;
        }
        let list = sel.internal(sp);
        if list.is_empty() {
            no_endpoints(out, fe, !sel.cluster.is_empty());
            continue;
        }
        let chain = Chain {
            v6,
            masq: Masq::OffCluster,
            shortcut: None,
            pick: pick(list, SetKind::Endpoints),
        };
        dispatch(
            out,
            previous,
            fe,
            chain,
            &[(SetKind::Endpoints, list)],
            proto,
        );
    }

    // External IPs, load-balancer IPs, node ports: external traffic policy.
    let mut externals: Vec<(Frontend, bool)> = Vec::new();
    for ip in sp.external_ips.iter().filter(|ip| family(ip)) {
        externals.push((fe_at(*ip, sp.port), false));
    }
    for ip in sp.lb_ips.iter().filter(|ip| family(ip)) {
        externals.push((fe_at(*ip, sp.port), true));
    }
    if let Some(np) = sp.node_port {
        for ip in node.nodeport_addresses.iter().filter(|ip| family(ip)) {
            externals.push((fe_at(*ip, np), false));
        }
    }
    for (fe, is_lb) in externals {
        if !claim(out, fe, &service) {
            continue;
        }
        if is_lb && !sp.source_ranges.is_empty() {
            let id = SetId::of(SetKind::Firewall, fe.addr);
            out.state.insert(id, Key::Frontend(fe), Value::None);
            for net in sp.source_ranges.iter().filter(|n| family(&n.addr())) {
                out.state.insert(
                    SetId::of(SetKind::FirewallAllow, fe.addr),
                    Key::Source(fe, *net),
                    Value::None,
                );
            }
        }
        if sel.cluster.is_empty() {
            no_endpoints(out, fe, false);
            continue;
        }
        if !sp.external_local {
            let chain = Chain {
                v6,
                masq: Masq::Always,
                shortcut: None,
                pick: pick(&sel.cluster, SetKind::Endpoints),
            };
            dispatch(
                out,
                previous,
                fe,
                chain,
                &[(SetKind::Endpoints, &sel.cluster)],
                proto,
            );
            continue;
        }
        let pods = Chain {
            v6,
            masq: Masq::Never,
            shortcut: None,
            pick: pick(&sel.cluster, SetKind::ClusterEndpoints),
        };
        let shortcut = out.state.chain(pods);
        let chain = Chain {
            v6,
            masq: Masq::Never,
            shortcut: Some(shortcut.to_string()),
            pick: if sel.local.is_empty() {
                Pick::Drop
            } else {
                pick(&sel.local, SetKind::Endpoints)
            },
        };
        dispatch(
            out,
            previous,
            fe,
            chain,
            &[
                (SetKind::Endpoints, &sel.local),
                (SetKind::ClusterEndpoints, &sel.cluster),
            ],
            proto,
        );
    }
}

/// Records that `service` owns `fe`; `false` (and a problem) if another Service got it first.
fn claim(out: &mut Compiled, fe: Frontend, service: &str) -> bool {
    let id = SetId::of(SetKind::Frontends, fe.addr);
    let owner_key = Key::Frontend(fe);
    let taken = out.state.contains(id, &owner_key)
        || out
            .state
            .contains(SetId::of(SetKind::NoEndpoints, fe.addr), &owner_key);
    if taken {
        out.problems.push(Problem {
            service: service.to_string(),
            message: format!("{fe} is already a frontend of another Service; skipped"),
        });
    }
    !taken
}

/// A frontend without endpoints: rejected, or dropped when only the traffic policy leaves it
/// without (internalTrafficPolicy Local and no endpoint here).
fn no_endpoints(out: &mut Compiled, fe: Frontend, policy_only: bool) {
    if policy_only {
        out.state.insert(
            SetId::of(SetKind::Frontends, fe.addr),
            Key::Frontend(fe),
            Value::Drop,
        );
    } else {
        out.state.insert(
            SetId::of(SetKind::NoEndpoints, fe.addr),
            Key::Frontend(fe),
            Value::None,
        );
    }
}

/// Sends `fe` to `chain`, writing the slots its map picks read.
fn dispatch(
    out: &mut Compiled,
    previous: &State,
    fe: Frontend,
    chain: Chain,
    lists: &[(SetKind, &[SocketAddr])],
    proto: Proto,
) {
    // Affinity chains name their endpoints in their rules; map picks read slots.
    let uses_maps = !matches!(chain.pick, Pick::Affinity { .. })
        && !matches!(&chain.shortcut, Some(s) if s.starts_with("aff"));
    let slot_map = chain.slot_map();
    let name = out.state.chain(chain);
    out.state.insert(
        SetId::of(SetKind::Frontends, fe.addr),
        Key::Frontend(fe),
        Value::Goto(name),
    );
    for (kind, list) in lists {
        let id = match kind {
            SetKind::ClusterEndpoints => Some(SetId {
                n: u32::try_from(list.len()).unwrap_or(u32::MAX),
                ..SetId::plain(SetKind::ClusterEndpoints, fe.addr.is_ipv6())
            }),
            _ => slot_map,
        };
        if let (true, false, Some(id)) = (uses_maps, list.is_empty(), id) {
            let before = previous
                .sets
                .iter()
                .filter(|(pid, _)| pid.kind == id.kind && pid.v6 == id.v6)
                .map(|(_, m)| m);
            for (slot, b) in slots(before, fe, list) {
                out.state.insert(id, Key::Slot(fe, slot), Value::Backend(b));
            }
        }
        if proto == Proto::Udp {
            out.udp.entry(fe).or_default().extend(list.iter().copied());
        }
    }
}

/// Slots `0..list.len()` for the endpoints in `list`: an endpoint keeps the slot it had in
/// `previous` when that slot still exists; the others fill the free slots in order.
fn slots<'a>(
    previous: impl Iterator<Item = &'a Elements>,
    fe: Frontend,
    list: &[SocketAddr],
) -> Vec<(u32, SocketAddr)> {
    let n = u32::try_from(list.len()).unwrap_or(u32::MAX);
    let mut taken: BTreeMap<u32, SocketAddr> = BTreeMap::new();
    for prev in previous {
        // A frontend's slots are 0, 1, 2, … in one map.
        for i in 0.. {
            let Some(Value::Backend(b)) = prev.get(&Key::Slot(fe, i)) else {
                break;
            };
            if i < n && list.contains(b) && !taken.values().any(|t| t == b) {
                taken.insert(i, *b);
            }
        }
    }
    let placed: BTreeSet<SocketAddr> = taken.values().copied().collect();
    let free: Vec<u32> = (0..n).filter(|i| !taken.contains_key(i)).collect();
    let mut free = free.into_iter();
    for b in list.iter().filter(|b| !placed.contains(b)) {
        if let Some(i) = free.next() {
            taken.insert(i, *b);
        }
    }
    taken.into_iter().collect()
}
