//! Writes the desired [`State`] into the kernel.
//!
//! Set elements — nearly everything a Service adds — go over netlink in one nf_tables
//! transaction ([`podnet_nft::netlink::Batch`]): `nft` parses ~10 µs per element and needs
//! ~700 MB to load 300,000 of them, the batch takes ~1 s and little memory. Chains and slot
//! maps (a few dozen, named by what they hold) go through `nft`: new ones are created before
//! the element batch (nothing refers to them yet) and those no longer used are deleted after
//! it, so every visible switch happens in the element batch, atomically. The interval set of
//! load-balancer source ranges, which the element codec does not speak, gets its additions
//! before the batch and its deletions after it.
//!
//! The first sync adopts what is in the kernel: with podnet's table of the same skeleton in
//! place it flushes and refills the sets in one batch (affinity state and established flows
//! untouched); otherwise it creates the table. Later syncs write only the difference from the
//! last written state; nothing changed writes nothing. After an error the next sync adopts
//! again.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::time::Instant;

use podnet_nft::netlink::{Batch, Concat, Conn, Data, Element, Family};
use rustc_hash::FxHashMap;
use sha2::{Digest, Sha256};

use crate::select::NodeFacts;
use crate::state::{skeleton, Chain, Key, Masq, Plan, SetId, SetKind, Skeleton, State, Value};

/// A sized slot map holds at least 2^12 elements (the kernel's bucket array: 64 KiB).
const MIN_CAPACITY_LOG2: u32 = 12;
/// And at most 2^26.
const MAX_CAPACITY_LOG2: u32 = 26;

/// What went wrong applying.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// nft or nf_tables refused, or could not be talked to.
    #[error(transparent)]
    Nft(#[from] podnet_nft::NftError),
    /// The table's listing could not be read.
    #[error("reading table {table}: {message}")]
    Listing {
        /// The table.
        table: String,
        /// What was wrong.
        message: String,
    },
}

/// What a sync did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Operations written: element adds/deletes/flushes, chains and rules added, chains and
    /// maps deleted.
    pub ops: usize,
    /// The first sync after start or an error (the sets were refilled).
    pub full: bool,
    /// The table was created (it was missing, or of another skeleton).
    pub created: bool,
    /// Microseconds spent writing.
    pub micros: u128,
}

/// Keeps podnet's table in step with the desired state.
///
/// # Sized slot maps
///
/// The slot maps of the ClusterIP and external dispatch chains (`int4-N`, `ext4-N`), which
/// hold nearly all elements, are declared with a size: the kernel keeps such a map in a hash
/// table of fixed size, which it fills 3× faster than the growing table of an unsized map
/// (whose resizing waits for a worker that the inserting thread keeps off the CPU). A size
/// is also a limit, so the map is declared with room for at least a quarter more than it
/// holds, at least 2^12, and the chain and map carry that capacity in their names (`int4-10-c17`,
/// `int4-10-c17-slots`). When a map would outgrow it, the sync adopts instead: new chain
/// and map of twice the room, frontends moved to them in the same element batch that fills
/// them, the old ones deleted after it. The state stays in logical names (`int4-10`); only
/// the applier knows the capacities.
#[derive(Debug)]
pub struct Applier {
    table: String,
    /// The skeleton hash of the table adopted (`None`: adopt on the next write).
    adopted: Option<String>,
    /// What [`Applier::sync`] last wrote.
    written: Option<State>,
    /// Log2 capacity of each sized slot map in the kernel, by its chain's logical name.
    homes: HashMap<String, u32>,
    /// Log2 capacity of each of the skeleton's element sets in the kernel.
    caps: HashMap<SetId, u32>,
    /// The netlink socket of the element batches, kept between syncs.
    conn: Option<Conn>,
}

/// What the kernel holds of podnet's table, from a terse listing (no elements).
#[derive(Debug, Default)]
struct Present {
    exists: bool,
    chains: BTreeSet<String>,
    sets: BTreeSet<String>,
}

/// Whether a slot map is declared with a size: those of chains no other chain names (a
/// short-cut chain keeps its name, which the externalTrafficPolicy Local chains use).
fn sized(id: &SetId) -> bool {
    id.kind == SetKind::Endpoints && id.masq != Masq::Never
}

/// Log2 of the capacity for `count` elements: the power of two above a quarter more (room
/// for 25–150% more), within the bounds. The kernel allocates a zeroed bucket array for all of
/// it at once (8 bytes per 3/4 element).
fn capacity_for(count: usize) -> u32 {
    let want = count.saturating_add(count / 4).max(1).next_power_of_two();
    want.trailing_zeros()
        .clamp(MIN_CAPACITY_LOG2, MAX_CAPACITY_LOG2)
}

/// The skeleton's sets that hold one element per frontend, address or endpoint: declared
/// with a size like the slot maps, under `frontends4-c15` and the like.
const ELEMENT_SETS: [SetKind; 5] = [
    SetKind::Frontends,
    SetKind::NoEndpoints,
    SetKind::ServiceIps,
    SetKind::Firewall,
    SetKind::Hairpin,
];

/// The element set a set of the kernel is (`frontends4`, `frontends4-c15`).
fn element_set_named(name: &str) -> Option<SetId> {
    ELEMENT_SETS
        .iter()
        .flat_map(|kind| [false, true].map(|v6| SetId::plain(*kind, v6)))
        .find(|id| {
            let base = id.name();
            name == base
                || name
                    .strip_prefix(&base)
                    .and_then(|rest| rest.strip_prefix("-c"))
                    .is_some_and(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()))
        })
}

/// Log2 capacity for `need` elements of a set named `base` plus `-c{k}`: one in the kernel
/// (`exists`) with room enough is kept, else [`capacity_for`].
fn room(need: usize, base: &str, exists: impl Fn(&str) -> bool) -> u32 {
    (MIN_CAPACITY_LOG2..=MAX_CAPACITY_LOG2)
        .find(|k| need <= 1 << k && exists(&format!("{base}-c{k}")))
        .unwrap_or_else(|| capacity_for(need))
}

fn count(desired: &State, id: &SetId) -> usize {
    desired.sets.get(id).map_or(0, |s| s.len())
}

impl Applier {
    /// An applier for `table` (family inet); nothing is known to be written yet.
    pub fn new(table: impl Into<String>) -> Applier {
        Applier {
            table: table.into(),
            adopted: None,
            written: None,
            homes: HashMap::new(),
            caps: HashMap::new(),
            conn: None,
        }
    }

    /// Forgets what was written: the next sync adopts the kernel's table again.
    pub fn invalidate(&mut self) {
        self.adopted = None;
        self.written = None;
    }

    /// What [`Applier::sync`] last wrote (for diffs, tests and diagnostics).
    pub fn written(&self) -> Option<&State> {
        self.written.as_ref()
    }

    /// Brings the table to `desired` for `node`, diffing against what this applier last
    /// wrote (it keeps a copy; [`Applier::apply`] does not).
    pub fn sync(&mut self, node: &NodeFacts, desired: &State) -> Result<SyncStats, ApplyError> {
        let plan = match &self.written {
            Some(old) => Plan::diff(old, desired),
            None => Plan::full(desired),
        };
        self.written = None;
        let stats = self.apply(node, desired, &plan)?;
        self.written = Some(desired.clone());
        Ok(stats)
    }

    /// Writes `plan`, the change from the state last applied to `desired`. The first write,
    /// the first after an error or a new skeleton, and one that would overfill a sized slot
    /// map adopt the table instead (and so write all of `desired`).
    pub fn apply(
        &mut self,
        node: &NodeFacts,
        desired: &State,
        plan: &Plan,
    ) -> Result<SyncStats, ApplyError> {
        let start = Instant::now();
        let skel = skeleton(&self.table, node);
        let hash: String = Sha256::digest(skel.as_bytes())[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let adopted = self.adopted.take();
        let mut stats = if adopted.as_deref() == Some(hash.as_str()) && self.fits(desired, plan) {
            self.incremental(desired, plan)?
        } else {
            self.adopt(node, &hash, desired)?
        };
        self.adopted = Some(hash);
        if stats.ops > 0 || stats.full {
            stats.micros = start.elapsed().as_micros();
        }
        Ok(stats)
    }

    /// Whether every sized set the plan adds to keeps within its capacity.
    fn fits(&self, desired: &State, plan: &Plan) -> bool {
        let mut seen = BTreeSet::new();
        plan.add
            .iter()
            .map(|(id, _, _)| id)
            .filter(|id| seen.insert(**id))
            .all(|id| {
                let cap = if sized(id) {
                    self.homes.get(&id.reader())
                } else {
                    self.caps.get(id)
                };
                cap.is_none_or(|k| count(desired, id) <= 1 << k)
            })
    }

    /// Sends an element batch over the kept socket (a new one in another namespace, or
    /// after an error).
    fn commit(&mut self, batch: Batch) -> Result<(), ApplyError> {
        if batch.is_empty() {
            return Ok(());
        }
        let conn = match self.conn.take() {
            Some(conn) if conn.here() => conn,
            _ => Conn::open()?,
        };
        batch.commit_on(&conn)?;
        self.conn = Some(conn);
        Ok(())
    }

    /// The kernel's name of a chain.
    fn chain_name(&self, logical: &str) -> String {
        match self.homes.get(logical) {
            Some(k) => format!("{logical}-c{k}"),
            None => logical.to_string(),
        }
    }

    /// The kernel's name of a set.
    fn set_name(&self, id: &SetId) -> String {
        if id.is_slots() {
            return format!("{}-slots", self.chain_name(&id.reader()));
        }
        match self.caps.get(id) {
            Some(k) => format!("{}-c{k}", id.name()),
            None => id.name(),
        }
    }

    /// Declarations of new slot maps and chains (nothing refers to them yet).
    fn create(&self, maps: &[SetId], chains: &[(String, Chain)]) -> (String, usize) {
        let t = &self.table;
        let mut s = String::new();
        let mut ops = 0;
        for id in maps {
            let size = self.homes.get(&id.reader()).map(|k| 1u32 << k);
            let _ = writeln!(s, "{}", id.declaration_as(t, &self.set_name(id), size));
            ops += 1;
        }
        for (name, chain) in chains {
            let physical = self.chain_name(name);
            let _ = writeln!(s, "add chain inet {t} {physical}");
            let map = chain.slot_map().map(|id| self.set_name(&id));
            for rule in chain.rules_reading(map.as_deref()) {
                let _ = writeln!(s, "add rule inet {t} {physical} {rule}");
                ops += 1;
            }
            ops += 1;
        }
        (s, ops)
    }

    /// Element operations for the batch, by kernel set name.
    fn elements<'a>(
        &self,
        items: impl Iterator<Item = (SetId, &'a Key, Option<&'a Value>)>,
    ) -> BTreeMap<String, Vec<Element>> {
        let mut by_set: FxHashMap<SetId, Vec<Element>> = FxHashMap::default();
        for (id, key, value) in items {
            if id.kind == SetKind::FirewallAllow {
                continue;
            }
            let Some(key) = key_bytes(key) else {
                continue;
            };
            let data = value.and_then(|v| match v {
                Value::Goto(c) => Some(Data::Goto(self.chain_name(c))),
                other => data(other),
            });
            by_set.entry(id).or_default().push(Element { key, data });
        }
        by_set
            .into_iter()
            .map(|(id, elements)| (self.set_name(&id), elements))
            .collect()
    }

    fn incremental(&mut self, desired: &State, plan: &Plan) -> Result<SyncStats, ApplyError> {
        if plan.is_empty() {
            return Ok(SyncStats::default());
        }
        let t = self.table.clone();
        for (name, chain) in &plan.add_chains {
            if let Some(id) = chain.slot_map().filter(sized) {
                self.homes
                    .insert(name.clone(), capacity_for(count(desired, &id)));
            }
        }
        let (interval_add, interval_delete) = interval_changes(plan);
        let (mut before, _) = self.create(&plan.add_maps, &plan.add_chains);
        before.push_str(&interval_script("add", &t, &interval_add));
        let mut batch = Batch::new(Family::Inet, &t);
        for (set, elements) in self.elements(plan.delete.iter().map(|(id, k)| (*id, k, None))) {
            batch.delete(&set, elements.into_iter().map(|e| e.key));
        }
        for (set, elements) in self.elements(plan.add.iter().map(|(id, k, v)| (*id, k, Some(v)))) {
            batch.add(&set, elements);
        }
        let mut after = interval_script("delete", &t, &interval_delete);
        for name in &plan.delete_chains {
            let _ = writeln!(after, "delete chain inet {t} {}", self.chain_name(name));
        }
        for id in &plan.delete_maps {
            let _ = writeln!(after, "delete map inet {t} {}", self.set_name(id));
        }
        run_nft(&before)?;
        self.commit(batch)?;
        run_nft(&after)?;
        for name in &plan.delete_chains {
            self.homes.remove(name);
        }
        Ok(SyncStats {
            ops: plan.ops(),
            ..SyncStats::default()
        })
    }

    fn adopt(
        &mut self,
        node: &NodeFacts,
        hash: &str,
        desired: &State,
    ) -> Result<SyncStats, ApplyError> {
        let t = self.table.clone();
        let marker = format!("skeleton-{hash}");
        let present = self.present()?;
        let created = !present.exists || !present.chains.contains(&marker);
        // Capacities: a sized map in the kernel with room enough is kept, else a new one.
        self.homes.clear();
        for (name, chain) in &desired.chains {
            let Some(id) = chain.slot_map().filter(sized) else {
                continue;
            };
            let k = room(count(desired, &id), name, |c| {
                !created && present.chains.contains(c)
            });
            self.homes.insert(name.clone(), k);
        }
        self.caps.clear();
        for kind in ELEMENT_SETS {
            for v6 in [false, true] {
                let id = SetId::plain(kind, v6);
                let k = room(count(desired, &id), &id.name(), |s| {
                    !created && present.sets.contains(s)
                });
                self.caps.insert(id, k);
            }
        }
        let skel = Skeleton::new(node, &|kind, v6| {
            let id = SetId::plain(kind, v6);
            (self.set_name(&id), self.caps.get(&id).map(|k| 1u32 << k))
        });
        let mut before = String::new();
        // Skeleton sets moved to new names: their rules are rewritten after the batch.
        let mut moved = false;
        if created {
            let _ = write!(
                before,
                "table inet {t} {{}}\ndelete table inet {t}\n{}add chain inet {t} {marker}\n",
                skel.text(&t)
            );
        } else {
            for id in self.caps.keys() {
                let name = self.set_name(id);
                if !present.sets.contains(&name) {
                    before.push_str(&skel.add_set(&t, &name).unwrap_or_default());
                    moved = true;
                }
            }
        }
        let new_maps: Vec<SetId> = desired
            .slot_maps()
            .into_iter()
            .filter(|id| created || !present.sets.contains(&self.set_name(id)))
            .collect();
        let new_chains: Vec<(String, Chain)> = {
            let mut list: Vec<(String, Chain)> = desired
                .chains
                .iter()
                .filter(|(name, _)| created || !present.chains.contains(&self.chain_name(name)))
                .map(|(n, c)| (n.clone(), c.clone()))
                .collect();
            // A chain is added after the chain it goes to.
            list.sort_by_key(|(_, c)| c.shortcut.is_some());
            list
        };
        let (script, mut ops) = self.create(&new_maps, &new_chains);
        before.push_str(&script);
        let allow: Vec<(SetId, &Key)> = desired
            .sets
            .iter()
            .filter(|(id, _)| id.kind == SetKind::FirewallAllow)
            .flat_map(|(id, e)| e.keys().map(move |k| (*id, k)))
            .collect();
        if !created {
            for v6 in [false, true] {
                let id = SetId::plain(SetKind::FirewallAllow, v6);
                let _ = writeln!(before, "flush set inet {t} {}", id.name());
                ops += 1;
            }
        }
        before.push_str(&interval_script("add", &t, &allow));
        ops += allow.len();

        let wanted_chains: BTreeSet<String> =
            desired.chains.keys().map(|n| self.chain_name(n)).collect();
        let wanted_maps: BTreeSet<String> = desired
            .slot_maps()
            .iter()
            .map(|id| self.set_name(id))
            .collect();
        let wanted_sets: BTreeSet<String> = self.caps.keys().map(|id| self.set_name(id)).collect();
        let mut batch = Batch::new(Family::Inet, &t);
        if !created {
            // Refill every set podnet fills (not the affinity sets: clients keep their
            // endpoint), and the slot maps still wanted.
            for name in present
                .sets
                .iter()
                .filter(|n| wanted_maps.contains(*n) || wanted_sets.contains(*n))
            {
                batch.flush(name);
            }
        }
        let all = desired
            .sets
            .iter()
            .flat_map(|(id, e)| e.iter().map(move |(k, v)| (*id, k, Some(v))));
        for (set, elements) in self.elements(all) {
            batch.add(&set, elements);
        }
        ops += batch.ops();

        let mut after = String::new();
        if moved {
            after.push_str(&skel.rules_script(&t));
            for s in &present.sets {
                let Some(id) = element_set_named(s) else {
                    continue;
                };
                if !wanted_sets.contains(s) {
                    let word = if id.kind == SetKind::Frontends {
                        "map"
                    } else {
                        "set"
                    };
                    let _ = writeln!(after, "delete {word} inet {t} {s}");
                    ops += 1;
                }
            }
        }
        if !created {
            let mut stale: Vec<&String> = present
                .chains
                .iter()
                .filter(|c| is_dispatch_chain(c) && !wanted_chains.contains(*c))
                .collect();
            // Chains with a short-cut go before the chains they go to.
            stale.sort_by_key(|c| !c.starts_with("local"));
            for c in stale {
                let _ = writeln!(after, "delete chain inet {t} {c}");
                ops += 1;
            }
            for s in &present.sets {
                if is_slot_map(s) && !wanted_maps.contains(s) {
                    let _ = writeln!(after, "delete map inet {t} {s}");
                    ops += 1;
                }
            }
        }
        run_nft(&before)?;
        self.commit(batch)?;
        run_nft(&after)?;
        Ok(SyncStats {
            ops,
            full: true,
            created,
            micros: 0,
        })
    }

    /// Chains, sets and maps of the table, without elements (`nft -j list chains inet`,
    /// `nft -t -j list sets inet` and `… maps inet`: `list table` reads every element even
    /// when terse, 0.4 s per 100,000).
    fn present(&self) -> Result<Present, ApplyError> {
        let t = &self.table;
        let mut p = Present::default();
        for (args, kinds) in [
            (&["-j", "list", "chains", "inet"][..], &["chain"][..]),
            (&["-t", "-j", "list", "sets", "inet"][..], &["set"][..]),
            (&["-t", "-j", "list", "maps", "inet"][..], &["map"][..]),
        ] {
            let json = podnet_nft::output(args)?;
            let v: serde_json::Value =
                serde_json::from_str(&json).map_err(|e| ApplyError::Listing {
                    table: t.clone(),
                    message: e.to_string(),
                })?;
            for item in v["nftables"].as_array().into_iter().flatten() {
                for kind in kinds {
                    let o = &item[*kind];
                    if o["family"] == "inet" && o["table"] == t.as_str() {
                        if let Some(name) = o["name"].as_str() {
                            if *kind == "chain" {
                                p.chains.insert(name.to_string());
                            } else {
                                p.sets.insert(name.to_string());
                            }
                        }
                    }
                }
            }
        }
        // podnet's table always has chains.
        p.exists = !p.chains.is_empty();
        Ok(p)
    }

    /// Removes the table (if there is one).
    pub fn remove(&mut self) -> Result<(), ApplyError> {
        self.invalidate();
        let t = &self.table;
        run_nft(&format!("table inet {t} {{}}\ndelete table inet {t}\n"))
    }
}

fn is_slot_map(name: &str) -> bool {
    name.ends_with("-slots")
}

/// Dispatch chains are the ones podnet names by content; the skeleton's are fixed.
fn is_dispatch_chain(name: &str) -> bool {
    ["int", "ext", "local", "pods", "aff"]
        .iter()
        .any(|p| name.starts_with(p) && name[p.len()..].starts_with(['4', '6']))
}

fn run_nft(script: &str) -> Result<(), ApplyError> {
    if !script.trim().is_empty() {
        podnet_nft::apply(script)?;
    }
    Ok(())
}

/// The interval-set (firewall-allow) part of a plan: (adds, deletes).
type IntervalOps<'a> = (Vec<(SetId, &'a Key)>, Vec<(SetId, &'a Key)>);

fn interval_changes(plan: &Plan) -> IntervalOps<'_> {
    let add = plan
        .add
        .iter()
        .filter(|(id, _, _)| id.kind == SetKind::FirewallAllow)
        .map(|(id, k, _)| (*id, k))
        .collect();
    let delete = plan
        .delete
        .iter()
        .filter(|(id, _)| id.kind == SetKind::FirewallAllow)
        .map(|(id, k)| (*id, k))
        .collect();
    (add, delete)
}

fn interval_script(verb: &str, table: &str, items: &[(SetId, &Key)]) -> String {
    let mut s = String::new();
    for (id, key) in items {
        s.push_str(&format!(
            "{verb} element inet {table} {} {{ {key} }}\n",
            id.name()
        ));
    }
    s
}

/// A key's register bytes (`None` for interval keys, which go through nft).
pub fn key_bytes(key: &Key) -> Option<Vec<u8>> {
    let fe = |c: Concat, fe: &crate::state::Frontend| {
        c.ip(fe.addr).proto(fe.proto.number()).port(fe.port)
    };
    Some(match key {
        Key::Addr(a) => Concat::new().ip(*a).build(),
        Key::Frontend(f) => fe(Concat::new(), f).build(),
        Key::Slot(f, i) => fe(Concat::new(), f).host_u32(*i).build(),
        Key::Pair(a, b) => Concat::new().ip(*a).ip(*b).build(),
        Key::Source(..) => return None,
    })
}

fn data(value: &Value) -> Option<Data> {
    match value {
        Value::None => None,
        Value::Goto(c) => Some(Data::Goto(c.to_string())),
        Value::Drop => Some(Data::Drop),
        Value::Backend(b) => Some(Data::Bytes(Concat::new().ip(b.ip()).port(b.port()).build())),
    }
}
