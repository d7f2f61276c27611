//! Writes the desired [`State`] into the kernel: the first sync (or the first after an error,
//! or after the skeleton changed) replaces podnet's table in one transaction; every later sync
//! applies only the difference from what was last written, also in one transaction. A sync
//! with nothing changed writes nothing.

use std::time::Instant;

use sha2::{Digest, Sha256};

use crate::select::NodeFacts;
use crate::state::{skeleton, Plan, State};

/// What went wrong applying.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// nft refused or could not run.
    #[error(transparent)]
    Nft(#[from] podnet_nft::NftError),
}

/// What a sync did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Operations written (elements added/deleted, chains and rules added, chains deleted).
    pub ops: usize,
    /// The whole table was (re)written.
    pub full: bool,
    /// Microseconds spent writing.
    pub micros: u128,
}

/// Keeps podnet's table in step with the desired state.
#[derive(Debug)]
pub struct Applier {
    table: String,
    written: Option<(String, State)>,
}

impl Applier {
    /// An applier for `table` (family inet); nothing is known to be written yet.
    pub fn new(table: impl Into<String>) -> Applier {
        Applier {
            table: table.into(),
            written: None,
        }
    }

    /// Forgets what was written: the next sync rewrites the whole table.
    pub fn invalidate(&mut self) {
        self.written = None;
    }

    /// What was last written (for tests and diagnostics).
    pub fn written(&self) -> Option<&State> {
        self.written.as_ref().map(|(_, s)| s)
    }

    /// Brings the table to `desired` for `node`.
    pub fn sync(&mut self, node: &NodeFacts, desired: &State) -> Result<SyncStats, ApplyError> {
        let start = Instant::now();
        let skel = skeleton(&self.table, node);
        let skel_hash = hex(&Sha256::digest(skel.as_bytes()));
        let incremental = match &self.written {
            Some((hash, old)) if *hash == skel_hash => Some(Plan::diff(old, desired)),
            _ => None,
        };
        let (script, ops, full) = match incremental {
            Some(plan) if plan.is_empty() => {
                return Ok(SyncStats::default());
            }
            Some(plan) => (plan.script(&self.table), plan.ops(), false),
            None => {
                let plan = Plan::full(desired);
                let t = &self.table;
                let script = format!(
                    "table inet {t} {{}}\ndelete table inet {t}\n{skel}{}",
                    plan.script(t)
                );
                (script, plan.ops(), true)
            }
        };
        self.written = None;
        podnet_nft::apply(&script)?;
        self.written = Some((skel_hash, desired.clone()));
        Ok(SyncStats {
            ops,
            full,
            micros: start.elapsed().as_micros(),
        })
    }

    /// Removes the table (if there is one).
    pub fn remove(&mut self) -> Result<(), ApplyError> {
        self.written = None;
        let t = &self.table;
        podnet_nft::apply(&format!("table inet {t} {{}}\ndelete table inet {t}\n"))?;
        Ok(())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
