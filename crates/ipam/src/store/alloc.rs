//! Address allocation (CNI ADD).

use std::net::IpAddr;

use ipnet::IpNet;

use super::fsutil::{create_exclusive, exists, read_opt, remove_opt, write_atomic, write_in_place};
use super::lock::lock;
use super::walk::{gateways, unassignable, Walk};
use super::{AttachmentKey, Record, Store, LAST_RESERVED_PREFIX};
use crate::addr::canonical;
use crate::error::IpamError;
use crate::resolve::{ResolvedRange, ResolvedRangeSet};

/// One allocated address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    /// The address with its subnet's prefix length.
    pub address: IpNet,
    /// The gateway of the range the address came from.
    pub gateway: Option<IpAddr>,
}

/// An address chosen for a range set, with the range it lies in.
type Choice<'a> = (IpAddr, &'a ResolvedRange);

impl Store {
    /// Reserves one address per range set for `key`. Each `requested`
    /// address is used for the set containing it; other sets get the next
    /// free address in round-robin order.
    pub fn allocate(
        &self,
        key: &AttachmentKey,
        sets: &[ResolvedRangeSet],
        requested: &[IpAddr],
    ) -> Result<Vec<Allocation>, IpamError> {
        key.validate()?;
        if sets.is_empty() {
            return Err(IpamError::config("no range sets to allocate from"));
        }
        let _guard = lock(&self.dir, true)?;
        if exists(&self.record_path(key))? {
            return Err(IpamError::AlreadyAllocated {
                container_id: key.container_id.clone(),
                ifname: key.ifname.clone(),
            });
        }
        let choices = self.choose(sets, requested)?;
        let ips = choices.iter().map(|(ip, _)| *ip).collect();
        self.commit(key, ips)?;
        for (index, (ip, _)) in choices.iter().enumerate() {
            // The cursor only steers round-robin; losing it is harmless.
            let name = format!("{LAST_RESERVED_PREFIX}{index}");
            // Written in place: a torn cursor reads as garbage and round-robin restarts.
            let _ = write_in_place(&self.dir.join(name), ip.to_string().as_bytes());
        }
        choices.into_iter().map(to_allocation).collect()
    }

    /// Picks one address per set (requested ones first).
    fn choose<'a>(
        &self,
        sets: &'a [ResolvedRangeSet],
        requested: &[IpAddr],
    ) -> Result<Vec<Choice<'a>>, IpamError> {
        let gws = gateways(sets);
        let fixed = place_requested(sets, requested, &gws)?;
        let mut out = Vec::with_capacity(sets.len());
        for (index, (set, fixed)) in sets.iter().zip(fixed).enumerate() {
            let choice = match fixed {
                Some((ip, _)) if self.taken(ip)? => return Err(IpamError::AddressInUse(ip)),
                Some(choice) => choice,
                None => self.pick_free(index, set, &gws)?,
            };
            out.push(choice);
        }
        Ok(out)
    }

    /// The next free address of `set` after its round-robin cursor.
    fn pick_free<'a>(
        &self,
        index: usize,
        set: &'a ResolvedRangeSet,
        gws: &[IpAddr],
    ) -> Result<Choice<'a>, IpamError> {
        let last = self.last_reserved(index);
        for (range, ip) in Walk::new(set, last) {
            if unassignable(range, gws, ip).is_none() && !self.taken(ip)? {
                return Ok((ip, range));
            }
        }
        Err(IpamError::Exhausted {
            index,
            set: set.to_string(),
        })
    }

    /// Whether some range set has no free address left (for CNI STATUS).
    pub fn exhausted(&self, sets: &[ResolvedRangeSet]) -> Result<bool, IpamError> {
        let _guard = lock(&self.dir, false)?;
        let gws = gateways(sets);
        for set in sets {
            if !self.has_free(set, &gws)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn has_free(&self, set: &ResolvedRangeSet, gws: &[IpAddr]) -> Result<bool, IpamError> {
        for (range, ip) in Walk::new(set, None) {
            if unassignable(range, gws, ip).is_none() && !self.taken(ip)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn taken(&self, ip: IpAddr) -> Result<bool, IpamError> {
        exists(&self.ip_path(ip))
    }

    /// The round-robin cursor of set `index`; unreadable cursors are ignored.
    fn last_reserved(&self, index: usize) -> Option<IpAddr> {
        let path = self.dir.join(format!("{LAST_RESERVED_PREFIX}{index}"));
        read_opt(&path).ok().flatten()?.trim().parse().ok()
    }

    /// Writes the record first, then the IP files; undoes both on failure.
    fn commit(&self, key: &AttachmentKey, ips: Vec<IpAddr>) -> Result<(), IpamError> {
        let record = Record {
            container_id: key.container_id.clone(),
            ifname: key.ifname.clone(),
            ips,
        };
        let json = serde_json::to_vec(&record).map_err(IpamError::Encode)?;
        let name = key.record_file_name();
        // Atomic against a killed process (rename); not fsynced: a power loss also loses the
        // pods, and GC after the reboot releases whatever the store still holds.
        write_atomic(&self.attachments, &name, &json)
            .map_err(IpamError::io("writing", self.attachments.join(&name)))?;
        let content = key.ip_file_content();
        for (done, ip) in record.ips.iter().enumerate() {
            let path = self.ip_path(*ip);
            if let Err(e) = create_exclusive(&path, content.as_bytes()) {
                self.undo(key, &record.ips[..done]);
                return Err(match e.kind() {
                    std::io::ErrorKind::AlreadyExists => IpamError::AddressInUse(*ip),
                    _ => IpamError::io("creating", path)(e),
                });
            }
        }
        Ok(())
    }

    /// Best-effort removal of a half-done allocation; leftovers are still
    /// covered by the record, so a later release or gc cleans them.
    fn undo(&self, key: &AttachmentKey, created: &[IpAddr]) {
        let all_gone = created
            .iter()
            .all(|ip| remove_opt(&self.ip_path(*ip)).is_ok());
        if all_gone {
            let _ = remove_opt(&self.record_path(key));
        }
    }
}

/// Maps each requested address to the one set containing it.
fn place_requested<'a>(
    sets: &'a [ResolvedRangeSet],
    requested: &[IpAddr],
    gws: &[IpAddr],
) -> Result<Vec<Option<Choice<'a>>>, IpamError> {
    let mut fixed: Vec<Option<Choice<'a>>> = vec![None; sets.len()];
    for ip in requested.iter().copied().map(canonical) {
        let (slot, range) = fixed
            .iter_mut()
            .zip(sets)
            .find_map(|(slot, set)| set.range_for(ip).map(|(_, r)| (slot, r)))
            .ok_or(IpamError::OutOfRange(ip))?;
        if let Some(reason) = unassignable(range, gws, ip) {
            return Err(IpamError::NotAssignable { ip, reason });
        }
        if slot.is_some() {
            let reason = "another requested address is in the same range set";
            return Err(IpamError::NotAssignable { ip, reason });
        }
        *slot = Some((ip, range));
    }
    Ok(fixed)
}

fn to_allocation((ip, range): Choice<'_>) -> Result<Allocation, IpamError> {
    let address = IpNet::new(ip, range.subnet().prefix_len())
        .map_err(|e| IpamError::config(format!("{ip}: {e}")))?;
    Ok(Allocation {
        address,
        gateway: Some(range.gateway()),
    })
}
