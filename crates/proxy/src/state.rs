//! The proxy's nftables state as data: podnet's table is a fixed skeleton (hooks, sets, checks;
//! see [`skeleton`]) plus set elements and a few shared dispatch chains. Everything a Service
//! adds is a set element; the chains depend only on endpoint counts (`int4-3`: "ClusterIP, pick
//! one of 3"), except for session affinity, whose chains are named by a hash of their rules.
//! So the per-packet cost is one verdict-map lookup and one map lookup however many Services
//! there are, and a change is a handful of element operations.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use rustc_hash::FxHashMap;
use sha2::{Digest, Sha256};

use crate::select::{NodeFacts, Proto};

/// podnet's table (family `inet`).
pub const TABLE: &str = "podnet-proxy";
/// The packet mark bit asking for masquerade in postrouting (kube-proxy's bit).
pub const MASQ_MARK: u32 = 0x4000;
/// Elements the affinity sets may hold.
pub const AFFINITY_SET_SIZE: u32 = 1 << 20;

/// Where traffic is addressed: a Service's address, protocol and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Frontend {
    /// ClusterIP, external IP, load-balancer IP or node address.
    pub addr: IpAddr,
    /// Transport protocol.
    pub proto: Proto,
    /// Port (the node port for node addresses).
    pub port: u16,
}

impl fmt::Display for Frontend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} . {} . {}", self.addr, self.proto, self.port)
    }
}

/// The sets podnet fills (each exists once per family).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SetKind {
    /// Frontend → verdict (goto a dispatch chain, or drop).
    Frontends,
    /// (Frontend, slot) → backend: the endpoints a frontend's dispatch picks from.
    Endpoints,
    /// (Frontend, slot) → backend: cluster-wide endpoints of externalTrafficPolicy Local
    /// frontends, for traffic from pods and from the node itself.
    ClusterEndpoints,
    /// Frontends of Services without endpoints: rejected.
    NoEndpoints,
    /// Allocated ClusterIPs.
    ServiceIps,
    /// Load-balancer frontends with source ranges.
    Firewall,
    /// (Frontend, source CIDR) allowed through [`SetKind::Firewall`] (an interval set).
    FirewallAllow,
    /// (endpoint, endpoint): a pod reaching itself through a Service (masqueraded).
    Hairpin,
}

impl SetKind {
    /// Every kind, in creation order.
    pub const ALL: [SetKind; 8] = [
        SetKind::Frontends,
        SetKind::Endpoints,
        SetKind::ClusterEndpoints,
        SetKind::NoEndpoints,
        SetKind::ServiceIps,
        SetKind::Firewall,
        SetKind::FirewallAllow,
        SetKind::Hairpin,
    ];
    fn base(self) -> &'static str {
        match self {
            SetKind::Frontends => "frontends",
            SetKind::Endpoints => "endpoints",
            SetKind::ClusterEndpoints => "cluster-endpoints",
            SetKind::NoEndpoints => "no-endpoints",
            SetKind::ServiceIps => "service-ips",
            SetKind::Firewall => "firewall",
            SetKind::FirewallAllow => "firewall-allow",
            SetKind::Hairpin => "hairpin",
        }
    }
}

/// One set of one family. Slot maps exist once per endpoint count `n` (`endpoints4-3`): a
/// frontend with three endpoints has its slots in the map its dispatch chain (`int4-3`) reads.
/// Each slot map has exactly one reader, the dispatch chain it is named after
/// (`int4-3-slots`): nft 1.0.6 cannot add a rule reading an existing `typeof … th dport` map
/// ("conflicting protocols"), so a map is always made in the transaction of its chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SetId {
    /// Which set.
    pub kind: SetKind,
    /// IPv6 (else IPv4).
    pub v6: bool,
    /// Endpoint count of a slot map (0 for the other sets).
    pub n: u32,
    /// For the slot map of an externalTrafficPolicy Local chain: the cluster endpoint count
    /// of its short-cut (0 otherwise).
    pub m: u32,
    /// The reading chain's masquerade marking (slot maps; `Never` otherwise).
    pub masq: Masq,
}

impl SetId {
    /// The set of `kind` for the family of `addr`.
    pub fn of(kind: SetKind, addr: IpAddr) -> SetId {
        SetId::plain(kind, addr.is_ipv6())
    }
    /// The set of `kind` in a family.
    pub fn plain(kind: SetKind, v6: bool) -> SetId {
        SetId {
            kind,
            v6,
            n: 0,
            m: 0,
            masq: Masq::Never,
        }
    }
    /// The name of the chain reading this slot map.
    pub fn reader(&self) -> String {
        let f = fam(self.v6);
        let n = self.n;
        match (self.kind, self.masq) {
            (SetKind::ClusterEndpoints, _) => format!("pods{f}-{n}"),
            (_, Masq::OffCluster) => format!("int{f}-{n}"),
            (_, Masq::Always) => format!("ext{f}-{n}"),
            (_, Masq::Never) => format!("local{f}-{n}-{}", self.m),
        }
    }
    /// Whether this is a slot map.
    pub fn is_slots(&self) -> bool {
        matches!(self.kind, SetKind::Endpoints | SetKind::ClusterEndpoints)
    }
    /// Its name in the table (`frontends4`, `int4-3-slots`).
    pub fn name(&self) -> String {
        if self.is_slots() {
            format!("{}-slots", self.reader())
        } else {
            format!("{}{}", self.kind.base(), fam(self.v6))
        }
    }
    /// The declaration of a slot map under `name`, holding at most `size` elements when
    /// given (the kernel then keeps it in a hash table of fixed size, filled several times
    /// faster than the growing one of an unsized map).
    pub fn declaration_as(&self, table: &str, name: &str, size: Option<u32>) -> String {
        let ip = ipkw(self.v6);
        let size = size.map(|n| format!(" size {n};")).unwrap_or_default();
        format!(
            "add map inet {table} {name} {{ typeof {ip} daddr . meta l4proto . th dport . numgen random mod 1 : {ip} daddr . th dport;{size} }}"
        )
    }
}

/// A set element's key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    /// An address.
    Addr(IpAddr),
    /// A frontend.
    Frontend(Frontend),
    /// A frontend's n-th endpoint.
    Slot(Frontend, u32),
    /// A frontend and a source range.
    Source(Frontend, IpNet),
    /// Source and destination address.
    Pair(IpAddr, IpAddr),
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Addr(a) => write!(f, "{a}"),
            Key::Frontend(fe) => write!(f, "{fe}"),
            Key::Slot(fe, i) => write!(f, "{fe} . {i}"),
            Key::Source(fe, net) => write!(f, "{fe} . {net}"),
            Key::Pair(a, b) => write!(f, "{a} . {b}"),
        }
    }
}

/// A set element's data (maps only).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Value {
    /// A plain set's element.
    None,
    /// Continue in a dispatch chain (names are shared by every frontend going there).
    Goto(Arc<str>),
    /// Drop.
    Drop,
    /// DNAT to this endpoint.
    Backend(SocketAddr),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::None => Ok(()),
            Value::Goto(c) => write!(f, " : goto {c}"),
            Value::Drop => write!(f, " : drop"),
            Value::Backend(b) => write!(f, " : {} . {}", b.ip(), b.port()),
        }
    }
}

/// Which packets a dispatch chain marks for masquerade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Masq {
    /// None (source kept).
    Never,
    /// Those from outside the cluster's pod CIDRs.
    OffCluster,
    /// All.
    Always,
}

/// How a dispatch chain picks the endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pick {
    /// Uniformly among slots `0..n` of the frontend in `map`.
    Map {
        /// [`SetKind::Endpoints`] or [`SetKind::ClusterEndpoints`].
        map: SetKind,
        /// How many slots.
        n: u32,
    },
    /// Session affinity: the endpoint the client used last (within `timeout` seconds), else
    /// one at random, remembered in the affinity set under the endpoint's `u32` key.
    Affinity {
        /// The Service port's protocol.
        proto: Proto,
        /// Seconds.
        timeout: u32,
        /// Endpoints with their affinity keys.
        backends: Vec<(u32, SocketAddr)>,
    },
    /// Drop (externalTrafficPolicy Local without local endpoints).
    Drop,
}

/// A dispatch chain: marks, optional short-cut, pick.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Chain {
    /// Family.
    pub v6: bool,
    /// Masquerade marking.
    pub masq: Masq,
    /// For externalTrafficPolicy Local: traffic from pods (as is) and from this node (marked)
    /// continues in this chain, which picks among all endpoints.
    pub shortcut: Option<String>,
    /// The pick.
    pub pick: Pick,
}

impl Chain {
    /// The slot map it reads.
    pub fn slot_map(&self) -> Option<SetId> {
        match self.pick {
            Pick::Map { map, n } => Some(SetId {
                kind: map,
                v6: self.v6,
                n,
                m: self.shortcut_count(),
                masq: self.masq,
            }),
            _ => None,
        }
    }

    /// The endpoint count of the short-cut chain (`pods4-5` → 5), 0 without one.
    fn shortcut_count(&self) -> u32 {
        self.shortcut
            .as_deref()
            .and_then(|s| s.rsplit('-').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    /// The chain's name: readable for the shared ones, a content hash for affinity.
    pub fn name(&self) -> String {
        let f = fam(self.v6);
        match (&self.pick, self.masq, &self.shortcut) {
            (Pick::Map { .. }, _, _) => self.slot_map().map(|m| m.reader()).unwrap_or_default(),
            (Pick::Drop, Masq::Never, Some(_)) => {
                format!("local{f}-0-{}", self.shortcut_count())
            }
            _ => {
                let digest = Sha256::digest(self.rules().join("\n").as_bytes());
                let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
                let role = if self.shortcut.is_some() {
                    "local"
                } else {
                    "aff"
                };
                format!("{role}{f}-{hex}")
            }
        }
    }

    /// Its rules, in nft syntax.
    pub fn rules(&self) -> Vec<String> {
        self.rules_reading(self.slot_map().map(|m| m.name()).as_deref())
    }

    /// Its rules, reading its slot map under the name `map` (the applier may keep a map
    /// under another name than [`SetId::name`]).
    pub fn rules_reading(&self, map: Option<&str>) -> Vec<String> {
        let (ip, f) = (ipkw(self.v6), fam(self.v6));
        let mut rules = Vec::new();
        if let Some(short) = &self.shortcut {
            rules.push(format!("{ip} saddr @cluster-cidrs{f} goto {short}"));
            rules.push(format!(
                "fib saddr type local meta mark set meta mark | {MASQ_MARK:#x} goto {short}"
            ));
        }
        match self.masq {
            Masq::Never => {}
            Masq::OffCluster => rules.push(format!(
                "{ip} saddr != @cluster-cidrs{f} meta mark set meta mark | {MASQ_MARK:#x}"
            )),
            Masq::Always => rules.push(format!("meta mark set meta mark | {MASQ_MARK:#x}")),
        }
        match &self.pick {
            Pick::Drop => rules.push("drop".into()),
            Pick::Map { n, .. } => {
                let set = map.unwrap_or_default();
                rules.push(format!(
                    "meta l4proto {{ tcp, udp, sctp }} dnat {ip} to {ip} daddr . meta l4proto . th dport . numgen random mod {n} map @{set}"
                ));
            }
            Pick::Affinity {
                proto,
                timeout,
                backends,
            } => {
                let remember = |key: u32| {
                    format!("update @affinity{f} {{ {ip} saddr . numgen random mod 1 offset {key} timeout {timeout}s }}")
                };
                for (key, b) in backends {
                    rules.push(format!(
                        "meta l4proto {proto} {ip} saddr . numgen random mod 1 offset {key} @affinity{f} {} dnat {ip} to {}",
                        remember(*key),
                        backend_text(b)
                    ));
                }
                let n = backends.len();
                for (i, (key, b)) in backends.iter().enumerate() {
                    let left = n - i;
                    let draw = if left > 1 {
                        format!("numgen random mod {left} 0 ")
                    } else {
                        String::new()
                    };
                    rules.push(format!(
                        "meta l4proto {proto} {draw}{} dnat {ip} to {}",
                        remember(*key),
                        backend_text(b)
                    ));
                }
            }
        }
        rules
    }
}

fn backend_text(b: &SocketAddr) -> String {
    match b {
        SocketAddr::V4(v4) => format!("{}:{}", v4.ip(), v4.port()),
        SocketAddr::V6(v6) => format!("[{}]:{}", v6.ip(), v6.port()),
    }
}

fn fam(v6: bool) -> &'static str {
    if v6 {
        "6"
    } else {
        "4"
    }
}

fn ipkw(v6: bool) -> &'static str {
    if v6 {
        "ip6"
    } else {
        "ip"
    }
}

/// The elements of one set.
pub type Elements = FxHashMap<Key, Value>;

/// Everything podnet writes besides the skeleton.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    /// Elements of each set (hashed: a full sync builds hundreds of thousands).
    pub sets: FxHashMap<SetId, Elements>,
    /// Dispatch chains by name.
    pub chains: BTreeMap<String, Chain>,
}

impl State {
    /// Adds an element; `false` (and nothing changed) if the key is already there.
    pub fn insert(&mut self, set: SetId, key: Key, value: Value) -> bool {
        match self.sets.entry(set).or_default().entry(key) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(value);
                true
            }
        }
    }

    /// Adds a chain (idempotent) and answers its name.
    pub fn chain(&mut self, chain: Chain) -> Arc<str> {
        let name = chain.name();
        self.chains.entry(name.clone()).or_insert(chain);
        name.into()
    }

    /// The element of `key` in `set`.
    pub fn get(&self, set: SetId, key: &Key) -> Option<&Value> {
        self.sets.get(&set).and_then(|s| s.get(key))
    }

    /// Whether `set` holds `key`.
    pub fn contains(&self, set: SetId, key: &Key) -> bool {
        self.get(set, key).is_some()
    }

    /// The slot maps the chains read.
    pub fn slot_maps(&self) -> BTreeSet<SetId> {
        self.chains.values().filter_map(Chain::slot_map).collect()
    }

    /// How many elements in all sets.
    pub fn elements(&self) -> usize {
        self.sets.values().map(|s| s.len()).sum()
    }
}

/// The difference between two states, in the order it is applied (one transaction).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// New slot maps (declared with the chains that read them).
    pub add_maps: Vec<SetId>,
    /// New chains (nothing refers to them yet).
    pub add_chains: Vec<(String, Chain)>,
    /// Elements to delete.
    pub delete: Vec<(SetId, Key)>,
    /// Elements to add.
    pub add: Vec<(SetId, Key, Value)>,
    /// Chains nothing refers to any more.
    pub delete_chains: Vec<String>,
    /// Slot maps no chain reads any more.
    pub delete_maps: Vec<SetId>,
}

impl Plan {
    /// From `old` to `new`: changed elements are deleted and re-added.
    pub fn diff(old: &State, new: &State) -> Plan {
        let mut plan = Plan::default();
        for (name, chain) in &new.chains {
            if !old.chains.contains_key(name) {
                plan.add_chains.push((name.clone(), chain.clone()));
            }
        }
        let empty = Elements::default();
        let ids: BTreeSet<SetId> = old.sets.keys().chain(new.sets.keys()).copied().collect();
        for id in ids {
            let o = old.sets.get(&id).unwrap_or(&empty);
            let n = new.sets.get(&id).unwrap_or(&empty);
            for (k, v) in o {
                if n.get(k) != Some(v) {
                    plan.delete.push((id, k.clone()));
                }
            }
            for (k, v) in n {
                if o.get(k) != Some(v) {
                    plan.add.push((id, k.clone(), v.clone()));
                }
            }
        }
        // A chain is added after the chain it goes to, and deleted before it.
        plan.add_chains.sort_by_key(|(_, c)| c.shortcut.is_some());
        let mut gone: Vec<(&String, &Chain)> = old
            .chains
            .iter()
            .filter(|(name, _)| !new.chains.contains_key(*name))
            .collect();
        gone.sort_by_key(|(_, c)| c.shortcut.is_none());
        plan.delete_chains = gone.into_iter().map(|(n, _)| n.clone()).collect();
        let (old_maps, new_maps) = (old.slot_maps(), new.slot_maps());
        plan.add_maps = new_maps.difference(&old_maps).copied().collect();
        plan.delete_maps = old_maps.difference(&new_maps).copied().collect();
        plan
    }

    /// What the kernel would hold after this plan, given it held `state`: the plan's effect
    /// on the data model (for checking incremental plans against whole compiles).
    pub fn apply_to(&self, state: &mut State) {
        for (name, chain) in &self.add_chains {
            state.chains.insert(name.clone(), chain.clone());
        }
        for (id, k) in &self.delete {
            if let Some(set) = state.sets.get_mut(id) {
                set.remove(k);
                if set.is_empty() {
                    state.sets.remove(id);
                }
            }
        }
        for (id, k, v) in &self.add {
            state
                .sets
                .entry(*id)
                .or_default()
                .insert(k.clone(), v.clone());
        }
        for name in &self.delete_chains {
            state.chains.remove(name);
        }
    }

    /// Everything in `state`, as a plan from nothing.
    pub fn full(state: &State) -> Plan {
        Plan::diff(&State::default(), state)
    }

    /// Operations: element adds and deletes, chains added (with their rules) and deleted.
    pub fn ops(&self) -> usize {
        self.delete.len()
            + self.add.len()
            + self.delete_chains.len()
            + self.add_maps.len()
            + self.delete_maps.len()
            + self
                .add_chains
                .iter()
                .map(|(_, c)| 1 + c.rules().len())
                .sum::<usize>()
    }

    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.ops() == 0
    }
}

/// The kernel name and declared size of one of podnet's element sets in a family
/// (`("frontends4", None)`: the set's own name, unsized).
pub type SetNames<'a> = &'a dyn Fn(SetKind, bool) -> (String, Option<u32>);

/// A set of the skeleton: `set` or `map`, its name, its declaration body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkeletonSet {
    /// `set` or `map`.
    pub word: &'static str,
    /// Its name in the kernel.
    pub name: String,
    /// `{ type …; }`.
    pub body: String,
}

/// A chain of the skeleton.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkeletonChain {
    /// Its name.
    pub name: &'static str,
    /// `type … hook … priority …; policy accept;` for base chains.
    pub hook: Option<String>,
    /// Its rules.
    pub rules: Vec<String>,
}

/// The fixed part of the table: sets, hooks, checks, masquerade. Depends only on the node's
/// cluster and service CIDRs (kept in sets) and on where the element sets are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skeleton {
    /// Sets and maps.
    pub sets: Vec<SkeletonSet>,
    /// Chains, each after the chains it goes to.
    pub chains: Vec<SkeletonChain>,
}

impl Skeleton {
    /// The skeleton for `node`, with the element sets where `names` says.
    pub fn new(node: &NodeFacts, names: SetNames<'_>) -> Skeleton {
        let mut sets = Vec::new();
        let mut set = |word: &'static str, name: String, body: String| {
            sets.push(SkeletonSet { word, name, body });
        };
        for v6 in [false, true] {
            let (ip, f) = (ipkw(v6), fam(v6));
            let addr = if v6 { "ipv6_addr" } else { "ipv4_addr" };
            let fe = format!("{addr} . inet_proto . inet_service");
            let cidrs = |list: &[IpNet]| -> String {
                // Interval sets refuse overlapping elements: merge first.
                let family: Vec<IpNet> = list
                    .iter()
                    .filter(|n| matches!(n, IpNet::V6(_)) == v6)
                    .map(IpNet::trunc)
                    .collect();
                let nets: Vec<String> = IpNet::aggregate(&family)
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                if nets.is_empty() {
                    String::new()
                } else {
                    format!(" elements = {{ {} }};", nets.join(", "))
                }
            };
            // No cluster CIDR known: every source counts as in-cluster (nothing masqueraded).
            let mut cluster = cidrs(&node.cluster_cidrs);
            if cluster.is_empty() {
                cluster = format!(
                    " elements = {{ {} }};",
                    if v6 { "::/0" } else { "0.0.0.0/0" }
                );
            }
            let mut element_set = |word: &'static str, kind: SetKind, ty: String| {
                let (name, size) = names(kind, v6);
                let size = size.map(|n| format!(" size {n};")).unwrap_or_default();
                set(word, name, format!("{{ type {ty};{size} }}"));
            };
            element_set("map", SetKind::Frontends, format!("{fe} : verdict"));
            element_set("set", SetKind::NoEndpoints, fe.clone());
            element_set("set", SetKind::ServiceIps, addr.to_string());
            element_set("set", SetKind::Firewall, fe.clone());
            element_set("set", SetKind::Hairpin, format!("{addr} . {addr}"));
            set(
                "set",
                SetId::plain(SetKind::FirewallAllow, v6).name(),
                format!("{{ type {fe} . {addr}; flags interval; }}"),
            );
            set(
                "set",
                format!("affinity{f}"),
                format!("{{ typeof {ip} saddr . numgen random mod 1; flags dynamic,timeout; timeout 3h; size {AFFINITY_SET_SIZE}; }}"),
            );
            set(
                "set",
                format!("service-cidrs{f}"),
                format!(
                    "{{ type {addr}; flags interval;{} }}",
                    cidrs(&node.service_cidrs)
                ),
            );
            set(
                "set",
                format!("cluster-cidrs{f}"),
                format!("{{ type {addr}; flags interval;{cluster} }}"),
            );
        }
        let at = |kind: SetKind, v6: bool| names(kind, v6).0;
        let mut chains = Vec::new();
        let mut chain = |name: &'static str, hook: Option<&str>, rules: Vec<String>| {
            chains.push(SkeletonChain {
                name,
                hook: hook.map(String::from),
                rules,
            });
        };
        chain(
            "refuse",
            None,
            vec![
                "meta l4proto tcp reject with tcp reset".into(),
                "reject".into(),
            ],
        );
        let mut check = Vec::new();
        for v6 in [false, true] {
            let (ip, f) = (ipkw(v6), fam(v6));
            let fe = format!("{ip} daddr . meta l4proto . th dport");
            check.push(format!(
                "{fe} @{} goto refuse",
                at(SetKind::NoEndpoints, v6)
            ));
            check.push(format!(
                "{fe} @{} {fe} . {ip} saddr != @firewall-allow{f} drop",
                at(SetKind::Firewall, v6)
            ));
            check.push(format!(
                "{ip} daddr @service-cidrs{f} {ip} daddr != @{} drop",
                at(SetKind::ServiceIps, v6)
            ));
        }
        chain("service-check", None, check);
        let mut services = Vec::new();
        for v6 in [false, true] {
            services.push(format!(
                "{} daddr . meta l4proto . th dport vmap @{}",
                ipkw(v6),
                at(SetKind::Frontends, v6)
            ));
        }
        // Not a frontend: a ClusterIP's unused port (the new connection is refused here, in
        // the NAT hook, which sees only new connections; no set of ClusterIP ports is needed).
        for v6 in [false, true] {
            services.push(format!(
                "{} daddr @{} goto refuse",
                ipkw(v6),
                at(SetKind::ServiceIps, v6)
            ));
        }
        chain("services", None, services);
        chain(
            "filter-prerouting",
            Some("type filter hook prerouting priority dstnat - 10; policy accept;"),
            vec!["ct state new jump service-check".into()],
        );
        chain(
            "filter-output",
            Some("type filter hook output priority -110; policy accept;"),
            vec!["ct state new jump service-check".into()],
        );
        chain(
            "nat-prerouting",
            Some("type nat hook prerouting priority dstnat; policy accept;"),
            vec!["jump services".into()],
        );
        chain(
            "nat-output",
            Some("type nat hook output priority -100; policy accept;"),
            vec!["jump services".into()],
        );
        let mut post = vec![format!(
            "meta mark & {MASQ_MARK:#x} == {MASQ_MARK:#x} meta mark set meta mark & {:#x} masquerade fully-random",
            !MASQ_MARK
        )];
        for v6 in [false, true] {
            let ip = ipkw(v6);
            post.push(format!(
                "ct status dnat {ip} saddr . {ip} daddr @{} masquerade fully-random",
                at(SetKind::Hairpin, v6)
            ));
        }
        chain(
            "nat-postrouting",
            Some("type nat hook postrouting priority srcnat; policy accept;"),
            post,
        );
        Skeleton { sets, chains }
    }

    /// The whole table, as an nft script.
    pub fn text(&self, table: &str) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "table inet {table} {{");
        for set in &self.sets {
            let _ = writeln!(s, "  {} {} {}", set.word, set.name, set.body);
        }
        for chain in &self.chains {
            let _ = writeln!(s, "  chain {} {{", chain.name);
            if let Some(hook) = &chain.hook {
                let _ = writeln!(s, "    {hook}");
            }
            for rule in &chain.rules {
                let _ = writeln!(s, "    {rule}");
            }
            s.push_str("  }\n");
        }
        s.push_str("}\n");
        s
    }

    /// Adds the set `name` (one of this skeleton's) to an existing table.
    pub fn add_set(&self, table: &str, name: &str) -> Option<String> {
        self.sets
            .iter()
            .find(|s| s.name == name)
            .map(|s| format!("add {} inet {table} {} {}\n", s.word, s.name, s.body))
    }

    /// Replaces the rules of every chain with this skeleton's (atomic within the script's
    /// transaction): how sets moved to new names come into use.
    pub fn rules_script(&self, table: &str) -> String {
        let mut s = String::new();
        for chain in &self.chains {
            let _ = writeln!(s, "flush chain inet {table} {}", chain.name);
            for rule in &chain.rules {
                let _ = writeln!(s, "add rule inet {table} {} {rule}", chain.name);
            }
        }
        s
    }
}

/// The skeleton with every set under its own name, unsized, as an nft script: what the
/// table's structure is (its hash marks an adopted table).
pub fn skeleton(table: &str, node: &NodeFacts) -> String {
    Skeleton::new(node, &|kind, v6| (SetId::plain(kind, v6).name(), None)).text(table)
}
