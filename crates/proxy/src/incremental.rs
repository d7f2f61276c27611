//! The compiler the agent runs: [`compile`] per Service, recompiling only the Services whose
//! object or EndpointSlices changed (the view hands out a new `Arc` for every update), merged
//! into the node's state with reference counts, and answering the [`Plan`] of the change
//! directly — so one endpoint change costs one Service's compile and a handful of operations,
//! not a pass over 30,000 Services. A frontend claimed by two Services, or new node facts,
//! fall back to the whole compile (which settles claims by name order).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use rustc_hash::FxHashMap;

use crate::compile::{compile, Compiled, HealthCheck};
use crate::select::{service_ports, slice_owner, NodeFacts, Problem};
use crate::state::{Chain, Frontend, Key, Plan, SetId, SetKind, State, Value};

/// `namespace/name` (neither can hold a `/`).
type SvcKey = String;
/// Slices by (namespace, Service name), borrowed from the input.
type ByService<'a> = FxHashMap<(&'a str, &'a str), Vec<Arc<EndpointSlice>>>;

/// The objects of an update.
type Inputs = (Vec<Arc<Service>>, Vec<Arc<EndpointSlice>>);

/// What one Service last compiled to, and from what.
struct Fragment {
    /// The update that last saw the Service.
    seen: u64,
    service: Arc<Service>,
    slices: Vec<Arc<EndpointSlice>>,
    /// Boxed: the per-update scan over all fragments stays in a small table.
    compiled: Box<Compiled>,
}

/// What one update changed.
#[derive(Debug, Default)]
pub struct Update {
    /// The operations from the previous state to the new one.
    pub plan: Plan,
    /// Services recompiled.
    pub recompiled: usize,
    /// The whole state was recompiled (first update, new node facts, conflicting claims).
    pub full: bool,
    /// (frontend, endpoint) pairs of UDP flows that no longer go there (conntrack cleanup).
    pub stale_udp: Vec<(Frontend, SocketAddr)>,
}

/// The incremental compiler.
#[derive(Default)]
pub struct Compiler {
    node: Option<NodeFacts>,
    fragments: FxHashMap<SvcKey, Fragment>,
    /// Elements more than one Service put in the state, with how many more (most elements
    /// have one owner and no entry here).
    shared: FxHashMap<(SetId, Key), u32>,
    /// Every chain with the number of Services using it.
    chains: HashMap<String, (Chain, u32)>,
    /// Every slot map with the number of chains reading it.
    maps: HashMap<SetId, u32>,
    state: State,
    conflicted: bool,
    generation: u64,
    /// The inputs of the last update: a change of a few objects is found by comparing
    /// pointers at the same positions, without a pass over every Service's slices.
    last: Option<Inputs>,
}

/// What an update touched, with what it was before.
#[derive(Default)]
struct Touched {
    elements: HashMap<(SetId, Key), Option<Value>>,
    chains: HashMap<String, Option<Chain>>,
    maps: HashMap<SetId, bool>,
}

impl Touched {
    /// Puts back in `state` what was touched, as it was before.
    fn undo(&self, state: &mut State) {
        for ((id, k), before) in &self.elements {
            match before {
                Some(v) => {
                    state
                        .sets
                        .entry(*id)
                        .or_default()
                        .insert(k.clone(), v.clone());
                }
                None => {
                    if let Some(set) = state.sets.get_mut(id) {
                        set.remove(k);
                        if set.is_empty() {
                            state.sets.remove(id);
                        }
                    }
                }
            }
        }
        for (name, before) in &self.chains {
            match before {
                Some(c) => {
                    state.chains.insert(name.clone(), c.clone());
                }
                None => {
                    state.chains.remove(name);
                }
            }
        }
    }
}

impl Compiler {
    /// A compiler with nothing compiled.
    pub fn new() -> Compiler {
        Compiler::default()
    }

    /// The node's whole desired state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Health-check node ports of all Services.
    pub fn health(&self) -> BTreeMap<u16, HealthCheck> {
        let mut out = BTreeMap::new();
        for f in self.fragments.values() {
            for (port, hc) in &f.compiled.health {
                out.entry(*port).or_insert_with(|| hc.clone());
            }
        }
        out
    }

    /// What was skipped, and why (sorted).
    pub fn problems(&self) -> Vec<Problem> {
        let mut all: Vec<Problem> = self
            .fragments
            .values()
            .flat_map(|f| f.compiled.problems.iter().cloned())
            .collect();
        all.sort_by(|a, b| (&a.service, &a.message).cmp(&(&b.service, &b.message)));
        all.dedup();
        all
    }

    /// Brings the state to `services` and `slices` on `node`.
    pub fn update(
        &mut self,
        services: &[Arc<Service>],
        slices: &[Arc<EndpointSlice>],
        node: &NodeFacts,
    ) -> Update {
        let up = match self.targeted(services, slices, node) {
            Some(up) => up,
            None => self.scan(services, slices, node),
        };
        self.last = Some((services.to_vec(), slices.to_vec()));
        up
    }

    /// The update when the inputs are the last ones with a few objects replaced in place
    /// (same positions, same Services): only the Services of those objects are looked at.
    /// `None` when that does not hold (objects added or removed, many changed, new node
    /// facts, a contest in force).
    fn targeted(
        &mut self,
        services: &[Arc<Service>],
        slices: &[Arc<EndpointSlice>],
        node: &NodeFacts,
    ) -> Option<Update> {
        let (last_services, last_slices) = self.last.as_ref()?;
        let same_node = self.node.as_ref().is_some_and(|n| same_facts(n, node));
        if !same_node
            || self.conflicted
            || last_services.len() != services.len()
            || last_slices.len() != slices.len()
        {
            return None;
        }
        let changed_services = replaced(last_services, services);
        let changed_slices = replaced(last_slices, slices);
        if changed_services.len() + changed_slices.len() > 16 + services.len() / 16 {
            return None;
        }
        // Each affected Service with its slices as they are now.
        let mut affected: BTreeMap<SvcKey, (Arc<Service>, Vec<Arc<EndpointSlice>>)> =
            BTreeMap::new();
        for i in changed_services {
            if names(&last_services[i]) != names(&services[i]) {
                return None;
            }
            let key = svc_key(&services[i]);
            let mine = self.fragments.get(&key)?.slices.clone();
            affected.insert(key, (services[i].clone(), mine));
        }
        for j in changed_slices {
            for (slice, add) in [(&last_slices[j], false), (&slices[j], true)] {
                let Some((ns, name)) = slice_owner(slice) else {
                    continue;
                };
                let key = format!("{ns}/{name}");
                // A slice of no Service (yet) matters only when its Service comes, which
                // changes the number of Services: a scan.
                let Some(f) = self.fragments.get(&key) else {
                    continue;
                };
                let entry = affected
                    .entry(key)
                    .or_insert_with(|| (f.service.clone(), f.slices.clone()));
                if add {
                    entry.1.push(slice.clone());
                } else {
                    entry.1.retain(|s| !Arc::ptr_eq(s, slice));
                }
            }
        }
        self.generation += 1;
        let mut update = Update::default();
        let mut touched = Touched::default();
        let mut conflict = false;
        for (key, (svc, mut mine)) in affected {
            mine.sort_by_key(|s| Arc::as_ptr(s) as usize);
            conflict |= self.recompile(key, &svc, mine, node, &mut update, &mut touched);
        }
        Some(self.finish(services, node, update, touched, conflict))
    }

    /// Recompiles one Service into the state; `true` if it put a key another Service holds
    /// with another value.
    fn recompile(
        &mut self,
        key: SvcKey,
        svc: &Arc<Service>,
        mine: Vec<Arc<EndpointSlice>>,
        node: &NodeFacts,
        update: &mut Update,
        touched: &mut Touched,
    ) -> bool {
        let old = self.fragments.remove(&key);
        let compiled = compile_one(svc, &mine, node, old.as_ref().map(|f| &f.compiled.state));
        if let Some(old) = &old {
            update.stale_udp.extend(old.compiled.stale_udp(&compiled));
            self.retract(&old.compiled, touched);
        }
        let conflict = !self.assert(&compiled, Some(touched));
        update.recompiled += 1;
        self.fragments.insert(
            key,
            Fragment {
                seen: self.generation,
                service: svc.clone(),
                slices: mine,
                compiled: Box::new(compiled),
            },
        );
        conflict
    }

    /// Every Service and its slices compared with what was last compiled.
    fn scan(
        &mut self,
        services: &[Arc<Service>],
        slices: &[Arc<EndpointSlice>],
        node: &NodeFacts,
    ) -> Update {
        self.generation += 1;
        let generation = self.generation;
        let mut by_service: ByService = FxHashMap::default();
        for s in slices {
            let Some(owner) = slice_owner(s) else {
                continue;
            };
            by_service.entry(owner).or_default().push(s.clone());
        }
        let same_node = self.node.as_ref().is_some_and(|n| same_facts(n, node));
        if !same_node || self.conflicted {
            return self.rebuild(services, by_service, node);
        }
        let mut update = Update::default();
        let mut touched = Touched::default();
        let mut conflict = false;
        let mut key = String::new();
        for svc in services {
            let (ns, name) = names(svc);
            let mut mine = by_service.remove(&(ns, name)).unwrap_or_default();
            mine.sort_by_key(|s| Arc::as_ptr(s) as usize);
            key.clear();
            key.push_str(ns);
            key.push('/');
            key.push_str(name);
            if let Some(f) = self.fragments.get_mut(key.as_str()) {
                f.seen = generation;
                let unchanged = Arc::ptr_eq(&f.service, svc)
                    && f.slices.len() == mine.len()
                    && f.slices.iter().zip(&mine).all(|(a, b)| Arc::ptr_eq(a, b));
                if unchanged {
                    continue;
                }
            }
            conflict |= self.recompile(key.clone(), svc, mine, node, &mut update, &mut touched);
        }
        let gone: Vec<SvcKey> = self
            .fragments
            .iter()
            .filter(|(_, f)| f.seen != generation)
            .map(|(k, _)| k.clone())
            .collect();
        for key in gone {
            if let Some(old) = self.fragments.remove(&key) {
                update
                    .stale_udp
                    .extend(old.compiled.stale_udp(&Compiled::default()));
                self.retract(&old.compiled, &mut touched);
            }
        }
        self.finish(services, node, update, touched, conflict)
    }

    /// The plan of an update, or the whole compile when it made Services contest a frontend.
    fn finish(
        &mut self,
        services: &[Arc<Service>],
        node: &NodeFacts,
        mut update: Update,
        touched: Touched,
        mut conflict: bool,
    ) -> Update {
        conflict |= touched
            .elements
            .keys()
            .any(|(id, k)| self.claims(id.v6, k) > 1);
        if conflict {
            // Two Services claim one frontend: let the whole compile settle it. The plan
            // goes from the state written before this update (what was touched, undone).
            let mut before = self.state.clone();
            touched.undo(&mut before);
            let mut regrouped: ByService = FxHashMap::default();
            for svc in services {
                if let Some(f) = self.fragments.get(&svc_key(svc)) {
                    regrouped.insert(names(svc), f.slices.clone());
                }
            }
            let mut up = self.rebuild(services, regrouped, node);
            up.plan = Plan::diff(&before, &self.state);
            up.stale_udp.extend(update.stale_udp);
            return up;
        }
        update.plan = self.plan(touched);
        update
    }

    /// Recompiles everything (slots kept from the current state), one fragment per Service.
    fn rebuild<'a>(
        &mut self,
        services: &'a [Arc<Service>],
        mut by_service: ByService<'a>,
        node: &NodeFacts,
    ) -> Update {
        let before = std::mem::take(&mut self.state);
        let old_fragments = std::mem::take(&mut self.fragments);
        let mut inputs = Vec::with_capacity(services.len());
        for svc in services {
            let mut mine = by_service.remove(&names(svc)).unwrap_or_default();
            mine.sort_by_key(|s| Arc::as_ptr(s) as usize);
            inputs.push((svc, mine));
        }
        // Per Service first; only when two of them contest a frontend does the whole compile
        // (which settles claims by name order) run as well.
        let mut compiled = compile_all(&inputs, node, &before);
        self.fill(&compiled);
        self.conflicted = self.contested();
        if self.conflicted {
            let all_slices: Vec<&EndpointSlice> = inputs
                .iter()
                .flat_map(|(_, m)| m.iter().map(|s| s.as_ref()))
                .collect();
            let mut problems = Vec::new();
            let ports = service_ports(
                services.iter().map(|s| s.as_ref()),
                all_slices,
                &mut problems,
            );
            let whole = compile(&ports, node, Some(&before));
            for ((svc, _), c) in inputs.iter().zip(compiled.iter_mut()) {
                // Keep only what the whole compile gave this Service.
                restrict(c, &whole.state);
                let service = svc_key(svc);
                c.problems.extend(
                    whole
                        .problems
                        .iter()
                        .filter(|p| p.service == service)
                        .cloned(),
                );
                c.problems.sort_by(|a, b| a.message.cmp(&b.message));
                c.problems.dedup();
            }
            self.fill(&compiled);
        }
        let mut stale = Vec::new();
        for ((svc, mine), c) in inputs.into_iter().zip(compiled) {
            let key = svc_key(svc);
            if let Some(old) = old_fragments.get(&key) {
                stale.extend(old.compiled.stale_udp(&c));
            }
            self.fragments.insert(
                key,
                Fragment {
                    seen: self.generation,
                    service: svc.clone(),
                    slices: mine,
                    compiled: Box::new(c),
                },
            );
        }
        for (key, old) in &old_fragments {
            if !self.fragments.contains_key(key) {
                stale.extend(old.compiled.stale_udp(&Compiled::default()));
            }
        }
        self.node = Some(node.clone());
        let plan = Plan::diff(&before, &self.state);
        Update {
            plan,
            recompiled: services.len(),
            full: true,
            stale_udp: stale,
        }
    }

    /// Sets the merged state to exactly `fragments`.
    fn fill(&mut self, fragments: &[Compiled]) {
        self.shared.clear();
        self.chains.clear();
        self.maps.clear();
        self.state = State::default();
        // Room for everything at once: no rehashing of the big sets while filling.
        let mut sizes: FxHashMap<SetId, usize> = FxHashMap::default();
        for c in fragments {
            for (id, e) in &c.state.sets {
                *sizes.entry(*id).or_default() += e.len();
            }
        }
        for (id, n) in sizes {
            self.state.sets.entry(id).or_default().reserve(n);
        }
        for c in fragments {
            self.assert(c, None);
        }
    }

    /// Whether two Services claim one frontend (a Service never claims one twice itself):
    /// a frontend put there twice, or both with and without endpoints.
    fn contested(&self) -> bool {
        let twice = self.shared.keys().any(|(id, k)| self.claims(id.v6, k) > 1);
        twice
            || [false, true].iter().any(|v6| {
                self.state
                    .sets
                    .get(&SetId::plain(SetKind::NoEndpoints, *v6))
                    .is_some_and(|none| none.keys().any(|k| self.claims(*v6, k) > 1))
            })
    }

    /// How many Services claim the frontend `k` (as dispatched or as without endpoints).
    fn claims(&self, v6: bool, k: &Key) -> u32 {
        if !matches!(k, Key::Frontend(_)) {
            return 0;
        }
        [SetKind::Frontends, SetKind::NoEndpoints]
            .iter()
            .map(|kind| SetId::plain(*kind, v6))
            .filter(|id| self.state.contains(*id, k))
            .map(|id| 1 + self.shared.get(&(id, k.clone())).copied().unwrap_or(0))
            .sum()
    }

    /// Takes a fragment's elements and chains out of the state.
    fn retract(&mut self, c: &Compiled, touched: &mut Touched) {
        for (id, elements) in &c.state.sets {
            for k in elements.keys() {
                let key = (*id, k.clone());
                let current = self.state.get(*id, k).cloned();
                touched.elements.entry(key.clone()).or_insert(current);
                if let Some(more) = self.shared.get_mut(&key) {
                    *more -= 1;
                    if *more == 0 {
                        self.shared.remove(&key);
                    }
                } else if let Some(set) = self.state.sets.get_mut(id) {
                    set.remove(k);
                    if set.is_empty() {
                        self.state.sets.remove(id);
                    }
                }
            }
        }
        for name in c.state.chains.keys() {
            let current = self.chains.get(name).map(|(c, _)| c.clone());
            touched.chains.entry(name.clone()).or_insert(current);
            let Some((chain, refs)) = self.chains.get_mut(name) else {
                continue;
            };
            *refs -= 1;
            if *refs > 0 {
                continue;
            }
            if let Some(m) = chain.slot_map() {
                let readers = self.maps.entry(m).or_default();
                touched.maps.entry(m).or_insert(*readers > 0);
                *readers = readers.saturating_sub(1);
                if *readers == 0 {
                    self.maps.remove(&m);
                }
            }
            self.chains.remove(name);
            self.state.chains.remove(name);
        }
    }

    /// Puts a fragment's elements and chains into the state; `false` if a key is held by
    /// another Service with another value.
    fn assert(&mut self, c: &Compiled, mut touched: Option<&mut Touched>) -> bool {
        let mut ok = true;
        for (id, elements) in &c.state.sets {
            let set = self.state.sets.entry(*id).or_default();
            for (k, v) in elements {
                if let Some(touched) = touched.as_deref_mut() {
                    let current = set.get(k).cloned();
                    touched.elements.entry((*id, k.clone())).or_insert(current);
                }
                match set.entry(k.clone()) {
                    std::collections::hash_map::Entry::Occupied(have) => {
                        if have.get() != v {
                            ok = false;
                        }
                        *self.shared.entry((*id, k.clone())).or_default() += 1;
                    }
                    std::collections::hash_map::Entry::Vacant(slot) => {
                        slot.insert(v.clone());
                    }
                }
            }
        }
        for (name, chain) in &c.state.chains {
            if let Some(touched) = touched.as_deref_mut() {
                let current = self.chains.get(name).map(|(c, _)| c.clone());
                touched.chains.entry(name.clone()).or_insert(current);
            }
            match self.chains.get_mut(name) {
                Some((_, refs)) => *refs += 1,
                None => {
                    if let Some(m) = chain.slot_map() {
                        let readers = self.maps.entry(m).or_default();
                        if let Some(touched) = touched.as_deref_mut() {
                            touched.maps.entry(m).or_insert(*readers > 0);
                        }
                        *readers += 1;
                    }
                    self.chains.insert(name.clone(), (chain.clone(), 1));
                    self.state.chains.insert(name.clone(), chain.clone());
                }
            }
        }
        ok
    }

    /// The operations for what was touched: before vs now.
    fn plan(&self, touched: Touched) -> Plan {
        let mut plan = Plan::default();
        let mut elements: Vec<((SetId, Key), Option<Value>)> =
            touched.elements.into_iter().collect();
        elements.sort_by(|a, b| a.0.cmp(&b.0));
        for ((id, k), before) in elements {
            let now = self.state.get(id, &k).cloned();
            if before == now {
                continue;
            }
            if before.is_some() {
                plan.delete.push((id, k.clone()));
            }
            if let Some(v) = now {
                plan.add.push((id, k, v));
            }
        }
        let mut added = Vec::new();
        let mut deleted = Vec::new();
        for (name, before) in touched.chains {
            match (before, self.chains.get(&name)) {
                (None, Some((c, _))) => added.push((name, c.clone())),
                (Some(c), None) => deleted.push((name, c)),
                _ => {}
            }
        }
        added.sort_by(|a, b| (a.1.shortcut.is_some(), &a.0).cmp(&(b.1.shortcut.is_some(), &b.0)));
        deleted.sort_by(|a, b| (a.1.shortcut.is_none(), &a.0).cmp(&(b.1.shortcut.is_none(), &b.0)));
        plan.add_chains = added;
        plan.delete_chains = deleted.into_iter().map(|(n, _)| n).collect();
        let mut maps: Vec<(SetId, bool)> = touched.maps.into_iter().collect();
        maps.sort();
        for (m, before) in maps {
            let now = self.maps.get(&m).is_some_and(|r| *r > 0);
            match (before, now) {
                (false, true) => plan.add_maps.push(m),
                (true, false) => plan.delete_maps.push(m),
                _ => {}
            }
        }
        plan
    }
}

fn same_facts(a: &NodeFacts, b: &NodeFacts) -> bool {
    a.name == b.name
        && a.zone == b.zone
        && a.nodeport_addresses == b.nodeport_addresses
        && a.cluster_cidrs == b.cluster_cidrs
        && a.service_cidrs == b.service_cidrs
}

fn names(svc: &Service) -> (&str, &str) {
    (
        svc.metadata.namespace.as_deref().unwrap_or_default(),
        svc.metadata.name.as_deref().unwrap_or_default(),
    )
}

/// Positions where `now` holds another object than `last` (both of one length).
fn replaced<T>(last: &[Arc<T>], now: &[Arc<T>]) -> Vec<usize> {
    (0..now.len())
        .filter(|i| !Arc::ptr_eq(&last[*i], &now[*i]))
        .collect()
}

fn svc_key(svc: &Service) -> SvcKey {
    let (ns, name) = names(svc);
    format!("{ns}/{name}")
}

/// [`compile_one`] for every input, on all cores (the inputs are independent).
fn compile_all(
    inputs: &[(&Arc<Service>, Vec<Arc<EndpointSlice>>)],
    node: &NodeFacts,
    previous: &State,
) -> Vec<Compiled> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = inputs.len().div_ceil(threads).max(256);
    if inputs.len() <= chunk {
        return inputs
            .iter()
            .map(|(svc, mine)| compile_one(svc, mine, node, Some(previous)))
            .collect();
    }
    std::thread::scope(|scope| {
        let workers: Vec<_> = inputs
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|(svc, mine)| compile_one(svc, mine, node, Some(previous)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| match w.join() {
                Ok(part) => part,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}

fn compile_one(
    svc: &Arc<Service>,
    slices: &[Arc<EndpointSlice>],
    node: &NodeFacts,
    previous: Option<&State>,
) -> Compiled {
    let mut problems = Vec::new();
    let ports = service_ports(
        [svc.as_ref()],
        slices.iter().map(|s| s.as_ref()),
        &mut problems,
    );
    let mut c = compile(&ports, node, previous);
    c.problems.extend(problems);
    c
}

/// Drops from `c` the elements the whole compile did not give it (lost claims), and the
/// chains no element of its goes to.
fn restrict(c: &mut Compiled, whole: &State) {
    for (id, elements) in c.state.sets.iter_mut() {
        elements.retain(|k, v| whole.get(*id, k) == Some(v));
    }
    c.state.sets.retain(|_, e| !e.is_empty());
    let used: BTreeSet<String> = c
        .state
        .sets
        .values()
        .flat_map(|e| e.values())
        .filter_map(|v| match v {
            Value::Goto(name) => Some(name.to_string()),
            _ => None,
        })
        .collect();
    let shortcuts: BTreeSet<String> = c
        .state
        .chains
        .iter()
        .filter(|(n, _)| used.contains(*n))
        .filter_map(|(_, ch)| ch.shortcut.clone())
        .collect();
    c.state
        .chains
        .retain(|n, _| used.contains(n) || shortcuts.contains(n));
}
