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

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use podnet_nft::netlink::{Batch, Concat, Data, Element, Family};
use sha2::{Digest, Sha256};

use crate::select::NodeFacts;
use crate::state::{skeleton, Key, Plan, SetId, SetKind, State, Value};

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
#[derive(Debug)]
pub struct Applier {
    table: String,
    /// The skeleton hash of the table adopted (`None`: adopt on the next write).
    adopted: Option<String>,
    /// What [`Applier::sync`] last wrote.
    written: Option<State>,
}

/// What the kernel holds of podnet's table, from a terse listing (no elements).
#[derive(Debug, Default)]
struct Present {
    exists: bool,
    chains: BTreeSet<String>,
    sets: BTreeSet<String>,
}

impl Applier {
    /// An applier for `table` (family inet); nothing is known to be written yet.
    pub fn new(table: impl Into<String>) -> Applier {
        Applier {
            table: table.into(),
            adopted: None,
            written: None,
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
    /// and the first after an error or a new skeleton, adopts the table instead (and so
    /// writes all of `desired`).
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
        let mut stats = if adopted.as_deref() == Some(hash.as_str()) {
            self.incremental(plan)?
        } else {
            self.adopt(&skel, &hash, desired)?
        };
        self.adopted = Some(hash);
        if stats.ops > 0 || stats.full {
            stats.micros = start.elapsed().as_micros();
        }
        Ok(stats)
    }

    fn incremental(&self, plan: &Plan) -> Result<SyncStats, ApplyError> {
        if plan.is_empty() {
            return Ok(SyncStats::default());
        }
        let t = &self.table;
        let (interval_add, interval_delete) = interval_changes(plan);
        let before = format!(
            "{}{}",
            Plan {
                add_maps: plan.add_maps.clone(),
                add_chains: plan.add_chains.clone(),
                ..Plan::default()
            }
            .script(t),
            interval_script("add", t, &interval_add)
        );
        let mut batch = Batch::new(Family::Inet, t);
        let deletes = group(
            plan.delete
                .iter()
                .filter(|(id, _)| id.kind != SetKind::FirewallAllow)
                .map(|(id, k)| (*id, k, None)),
        );
        for (set, elements) in deletes {
            batch.delete(&set, elements.into_iter().map(|e| e.key));
        }
        let adds = group(
            plan.add
                .iter()
                .filter(|(id, _, _)| id.kind != SetKind::FirewallAllow)
                .map(|(id, k, v)| (*id, k, Some(v))),
        );
        for (set, elements) in adds {
            batch.add(&set, elements);
        }
        let after = format!(
            "{}{}",
            interval_script("delete", t, &interval_delete),
            Plan {
                delete_chains: plan.delete_chains.clone(),
                delete_maps: plan.delete_maps.clone(),
                ..Plan::default()
            }
            .script(t)
        );
        run_nft(&before)?;
        if !batch.is_empty() {
            batch.commit()?;
        }
        run_nft(&after)?;
        Ok(SyncStats {
            ops: plan.ops(),
            ..SyncStats::default()
        })
    }

    fn adopt(&self, skel: &str, hash: &str, desired: &State) -> Result<SyncStats, ApplyError> {
        let t = &self.table;
        let marker = format!("skeleton-{hash}");
        let present = self.present()?;
        let created = !present.exists || !present.chains.contains(&marker);
        let full = Plan::full(desired);
        let mut ops = 0;
        let mut before = String::new();
        if created {
            before.push_str(&format!(
                "table inet {t} {{}}\ndelete table inet {t}\n{skel}add chain inet {t} {marker}\n"
            ));
        }
        let kept = |name: &str| !created && present.chains.contains(name);
        let new_plan = Plan {
            add_maps: full
                .add_maps
                .iter()
                .filter(|id| created || !present.sets.contains(&id.name()))
                .copied()
                .collect(),
            add_chains: full
                .add_chains
                .iter()
                .filter(|(name, _)| !kept(name))
                .cloned()
                .collect(),
            ..Plan::default()
        };
        ops += new_plan.ops();
        before.push_str(&new_plan.script(t));
        let allow: Vec<(SetId, &Key)> = full
            .add
            .iter()
            .filter(|(id, _, _)| id.kind == SetKind::FirewallAllow)
            .map(|(id, k, _)| (*id, k))
            .collect();
        if !created {
            for v6 in [false, true] {
                let id = SetId::plain(SetKind::FirewallAllow, v6);
                before.push_str(&format!("flush set inet {t} {}\n", id.name()));
                ops += 1;
            }
        }
        before.push_str(&interval_script("add", t, &allow));
        ops += allow.len();

        let mut batch = Batch::new(Family::Inet, t);
        if !created {
            // Refill every set podnet fills (not the affinity sets: clients keep their endpoint).
            for name in present.sets.iter().filter(|n| refilled(n, desired)) {
                batch.flush(name);
            }
        }
        let adds = group(
            full.add
                .iter()
                .filter(|(id, _, _)| id.kind != SetKind::FirewallAllow)
                .map(|(id, k, v)| (*id, k, Some(v))),
        );
        for (set, elements) in adds {
            batch.add(&set, elements);
        }
        ops += batch.ops();

        let mut after = String::new();
        if !created {
            let wanted_chains: BTreeSet<&String> = desired.chains.keys().collect();
            let wanted_maps: BTreeSet<String> =
                desired.slot_maps().iter().map(SetId::name).collect();
            let mut stale: Vec<&String> = present
                .chains
                .iter()
                .filter(|c| is_dispatch_chain(c) && !wanted_chains.contains(c))
                .collect();
            // Chains with a short-cut go before the chains they go to.
            stale.sort_by_key(|c| !c.starts_with("local"));
            for c in stale {
                after.push_str(&format!("delete chain inet {t} {c}\n"));
                ops += 1;
            }
            for s in &present.sets {
                if is_slot_map(s) && !wanted_maps.contains(s) {
                    after.push_str(&format!("delete map inet {t} {s}\n"));
                    ops += 1;
                }
            }
        }
        run_nft(&before)?;
        if !batch.is_empty() {
            batch.commit()?;
        }
        run_nft(&after)?;
        Ok(SyncStats {
            ops,
            full: true,
            created,
            micros: 0,
        })
    }

    /// Chains and sets of the table, without elements (`nft -t -j list table`).
    fn present(&self) -> Result<Present, ApplyError> {
        let t = &self.table;
        let Some(json) = podnet_nft::output(&["-t", "-j", "list", "table", "inet", t]).ok() else {
            return Ok(Present::default());
        };
        let v: serde_json::Value =
            serde_json::from_str(&json).map_err(|e| ApplyError::Listing {
                table: t.clone(),
                message: e.to_string(),
            })?;
        let mut p = Present {
            exists: true,
            ..Present::default()
        };
        for item in v["nftables"].as_array().into_iter().flatten() {
            if let Some(name) = item["chain"]["name"].as_str() {
                p.chains.insert(name.to_string());
            }
            for kind in ["set", "map"] {
                if let Some(name) = item[kind]["name"].as_str() {
                    p.sets.insert(name.to_string());
                }
            }
        }
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

/// Whether a set present in the kernel is flushed and refilled on adoption: podnet's element
/// sets, and the slot maps still wanted (not the affinity sets: clients keep their endpoint;
/// not the interval set, which nft refills).
fn refilled(name: &str, desired: &State) -> bool {
    if is_slot_map(name) {
        return desired.slot_maps().iter().any(|id| id.name() == name);
    }
    SetKind::ALL
        .iter()
        .filter(|k| {
            !matches!(
                k,
                SetKind::FirewallAllow | SetKind::Endpoints | SetKind::ClusterEndpoints
            )
        })
        .any(|kind| {
            [false, true]
                .iter()
                .any(|v6| SetId::plain(*kind, *v6).name() == name)
        })
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

/// Elements in netlink form, grouped by set name.
fn group<'a>(
    items: impl Iterator<Item = (SetId, &'a Key, Option<&'a Value>)>,
) -> BTreeMap<String, Vec<Element>> {
    let mut out: BTreeMap<String, Vec<Element>> = BTreeMap::new();
    for (id, key, value) in items {
        let Some(key_bytes) = key_bytes(key) else {
            continue;
        };
        out.entry(id.name()).or_default().push(Element {
            key: key_bytes,
            data: value.and_then(data),
        });
    }
    out
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
