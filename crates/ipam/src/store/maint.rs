//! Release (CNI DEL), lookup (CNI CHECK) and garbage collection (CNI GC).

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::Path;

use super::fsutil::{list_dir, read_opt, remove_opt, sweep_tmp, TMP_PREFIX};
use super::lock::lock;
use super::record::Owner;
use super::{AttachmentKey, Record, Store};
use crate::error::IpamError;

impl Store {
    /// Releases the addresses of `key`. Idempotent: `Ok(None)` when nothing
    /// is reserved. The returned record lists the addresses actually freed
    /// (those whose IP file still named this attachment).
    pub fn release(&self, key: &AttachmentKey) -> Result<Option<Record>, IpamError> {
        let _guard = lock(&self.dir, true)?;
        // A record write interrupted by a kill leaves its temporary: it names this key.
        remove_opt(
            &self
                .attachments
                .join(format!("{TMP_PREFIX}{}", key.record_file_name())),
        )?;
        let record = match self.read_record(key) {
            Ok(Some(record)) => record,
            Ok(None) => return Ok(None),
            Err(IpamError::CorruptRecord { .. }) => return self.release_by_scan(key).map(Some),
            Err(e) => return Err(e),
        };
        let ips = self.free_owned(key, &record.ips)?;
        remove_opt(&self.record_path(key))?;
        Ok(Some(Record { ips, ..record }))
    }

    /// The record of `key`, after checking that every IP file it lists
    /// still names this attachment.
    pub fn get(&self, key: &AttachmentKey) -> Result<Option<Record>, IpamError> {
        let _guard = lock(&self.dir, false)?;
        let Some(record) = self.read_record(key)? else {
            return Ok(None);
        };
        for ip in &record.ips {
            if !self.ip_owner(*ip)?.is_some_and(|o| o.is(key)) {
                return Err(IpamError::NotReserved {
                    ip: *ip,
                    container_id: key.container_id.clone(),
                    ifname: key.ifname.clone(),
                });
            }
        }
        Ok(Some(record))
    }

    /// Releases every reservation of this network whose attachment is not
    /// in `valid`, including IP files without a record (crash leftovers,
    /// host-local stores). Returns what was released.
    pub fn gc(&self, valid: &[AttachmentKey]) -> Result<Vec<Record>, IpamError> {
        let _guard = lock(&self.dir, true)?;
        sweep_tmp(&self.dir)?;
        sweep_tmp(&self.attachments)?;
        let keys: HashSet<&AttachmentKey> = valid.iter().collect();
        let ids: HashSet<&str> = valid.iter().map(|k| k.container_id.as_str()).collect();
        let mut released = self.gc_records(&keys)?;
        self.gc_ip_files(&keys, &ids, &mut released)?;
        Ok(released)
    }

    /// Removes the IP files among `ips` that name `key`; returns those.
    fn free_owned(&self, key: &AttachmentKey, ips: &[IpAddr]) -> Result<Vec<IpAddr>, IpamError> {
        let mut freed = Vec::new();
        let mine = key.ip_file_content();
        for ip in ips {
            let Some(text) = read_opt(&self.ip_path(*ip))? else {
                continue;
            };
            // The record lists this address, so a torn (empty or partial) file is this
            // attachment's own write cut short by a kill.
            let owned = Owner::parse(&text).is(key) || mine.starts_with(&text);
            if owned && remove_opt(&self.ip_path(*ip))? {
                freed.push(*ip);
            }
        }
        Ok(freed)
    }

    /// Fallback for an unreadable record: scan the IP files for `key`.
    fn release_by_scan(&self, key: &AttachmentKey) -> Result<Record, IpamError> {
        let mut record = Record::empty(key);
        for (ip, path) in self.ip_files()? {
            if read_owner(&path)?.is_some_and(|o| o.is(key)) && remove_opt(&path)? {
                record.ips.push(ip);
            }
        }
        remove_opt(&self.record_path(key))?;
        Ok(record)
    }

    /// Releases the records whose attachment is not valid; drops corrupt
    /// records (their IP files are handled by the IP file scan).
    fn gc_records(&self, keys: &HashSet<&AttachmentKey>) -> Result<Vec<Record>, IpamError> {
        let mut released = Vec::new();
        for (_, path) in list_dir(&self.attachments)? {
            let Some(text) = read_opt(&path)? else {
                continue;
            };
            let Ok(record) = serde_json::from_str::<Record>(&text) else {
                remove_opt(&path)?;
                continue;
            };
            let key = record.key();
            if keys.contains(&key) {
                continue;
            }
            let ips = self.free_owned(&key, &record.ips)?;
            remove_opt(&path)?;
            released.push(Record { ips, ..record });
        }
        Ok(released)
    }

    /// Removes the IP files whose owner is not valid, adding them to
    /// `released` grouped by owner.
    fn gc_ip_files(
        &self,
        keys: &HashSet<&AttachmentKey>,
        ids: &HashSet<&str>,
        released: &mut Vec<Record>,
    ) -> Result<(), IpamError> {
        for (ip, path) in self.ip_files()? {
            let Some(owner) = read_owner(&path)? else {
                continue;
            };
            if owner.is_valid(keys, ids) || !remove_opt(&path)? {
                continue;
            }
            let key = owner.into_key();
            match released.iter_mut().find(|r| r.key() == key) {
                Some(record) => record.ips.push(ip),
                None => released.push(Record {
                    ips: vec![ip],
                    ..Record::empty(&key)
                }),
            }
        }
        Ok(())
    }

    /// Every file in the network directory named by an IP address.
    fn ip_files(&self) -> Result<Vec<(IpAddr, std::path::PathBuf)>, IpamError> {
        let entries = list_dir(&self.dir)?;
        let ips = entries.into_iter().filter_map(|(name, path)| {
            let ip = name.parse::<IpAddr>().ok()?;
            path.is_file().then_some((ip, path))
        });
        Ok(ips.collect())
    }
}

/// The owner named by the IP file at `path`, if it still exists.
fn read_owner(path: &Path) -> Result<Option<Owner>, IpamError> {
    Ok(read_opt(path)?.map(|text| Owner::parse(&text)))
}
