//! The on-disk reservation store, one directory per network.
//!
//! Layout of `<dataDir>/<network>/` (directories 0700, files 0600):
//! - `lock`: flock(2) target serializing every access;
//! - `<ip>`: one file per reserved address, content
//!   `<container_id>\r\n<ifname>` (host-local format);
//! - `last_reserved_ip.<set index>`: round-robin cursor per range set;
//! - `attachments/<hex sha256(container_id \0 ifname)>`: JSON [`Record`];
//! - `.tmp.*`: temporaries of interrupted writes, swept by `gc`.

mod alloc;
mod fsutil;
mod lock;
mod maint;
mod record;
mod walk;

use std::net::IpAddr;
use std::path::{Path, PathBuf};

pub use self::alloc::Allocation;
pub use self::record::{AttachmentKey, Record};

use self::fsutil::{create_parents, ensure_private_dir, read_opt};
use self::record::Owner;
use crate::error::IpamError;

/// Name of the subdirectory holding attachment records.
const ATTACHMENTS_DIR: &str = "attachments";
/// Prefix of the per-range-set round-robin cursor files.
const LAST_RESERVED_PREFIX: &str = "last_reserved_ip.";
/// Longest accepted network name.
const MAX_NETWORK_NAME: usize = 255;

/// Reservations of one network. Every operation takes the store lock itself,
/// so a `Store` may be shared between threads and processes.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
    attachments: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the store of `network` under `data_dir`.
    pub fn open(data_dir: &Path, network: &str) -> Result<Store, IpamError> {
        validate_network_name(network)?;
        create_parents(data_dir)?;
        let dir = data_dir.join(network);
        ensure_private_dir(&dir)?;
        let attachments = dir.join(ATTACHMENTS_DIR);
        ensure_private_dir(&attachments)?;
        Ok(Store { dir, attachments })
    }

    /// The network's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn ip_path(&self, ip: IpAddr) -> PathBuf {
        self.dir.join(ip.to_string())
    }

    fn record_path(&self, key: &AttachmentKey) -> PathBuf {
        self.attachments.join(key.record_file_name())
    }

    /// The owner named by the IP file of `ip`, if the file exists.
    fn ip_owner(&self, ip: IpAddr) -> Result<Option<Owner>, IpamError> {
        Ok(read_opt(&self.ip_path(ip))?.map(|text| Owner::parse(&text)))
    }

    /// Reads the record of `key`, if any.
    fn read_record(&self, key: &AttachmentKey) -> Result<Option<Record>, IpamError> {
        let path = self.record_path(key);
        let Some(text) = read_opt(&path)? else {
            return Ok(None);
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|source| IpamError::CorruptRecord { path, source })
    }
}

fn validate_network_name(name: &str) -> Result<(), IpamError> {
    let bad = name.is_empty()
        || name.len() > MAX_NETWORK_NAME
        || name == "."
        || name == ".."
        || name.chars().any(|c| c == '/' || c.is_control());
    if bad {
        return Err(IpamError::InvalidNetworkName(name.to_owned()));
    }
    Ok(())
}
