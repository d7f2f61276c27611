//! Attachment keys, attachment records and the owner line of IP files.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::IpamError;

/// Longest interface name Linux accepts (IFNAMSIZ - 1).
const MAX_IFNAME: usize = 15;
/// Separator between container ID and interface name in an IP file.
const LINE_BREAK: &str = "\r\n";

/// Identifies one attachment: a container's interface on this network.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AttachmentKey {
    /// The container ID (`CNI_CONTAINERID`).
    pub container_id: String,
    /// The interface name inside the container (`CNI_IFNAME`).
    pub ifname: String,
}

impl AttachmentKey {
    /// Builds a key.
    pub fn new(container_id: impl Into<String>, ifname: impl Into<String>) -> Self {
        Self {
            container_id: container_id.into(),
            ifname: ifname.into(),
        }
    }

    /// File name of this attachment's record: hex SHA-256 of
    /// `container_id + "\0" + ifname`.
    pub fn record_file_name(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.container_id.as_bytes());
        hasher.update([0u8]);
        hasher.update(self.ifname.as_bytes());
        hasher
            .finalize()
            .iter()
            .fold(String::with_capacity(64), |mut s, b| {
                let _ = write!(s, "{b:02x}");
                s
            })
    }

    /// The content of an IP file reserved for this attachment.
    pub(crate) fn ip_file_content(&self) -> String {
        format!("{}{LINE_BREAK}{}", self.container_id, self.ifname)
    }

    /// Checks the key can be stored unambiguously.
    pub(crate) fn validate(&self) -> Result<(), IpamError> {
        let id = &self.container_id;
        if id.is_empty() || id.trim() != id || id.chars().any(char::is_control) {
            return Err(IpamError::InvalidAttachment(format!(
                "bad container ID {id:?}"
            )));
        }
        let name = &self.ifname;
        let bad_char = |c: char| c == '/' || c == ':' || c.is_whitespace() || c.is_control();
        if name.is_empty()
            || name.len() > MAX_IFNAME
            || name == "."
            || name == ".."
            || name.chars().any(bad_char)
        {
            return Err(IpamError::InvalidAttachment(format!(
                "bad interface name {name:?}"
            )));
        }
        Ok(())
    }
}

/// What the store holds for one attachment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// The container ID.
    pub container_id: String,
    /// The interface name.
    pub ifname: String,
    /// The reserved addresses, one per range set.
    pub ips: Vec<IpAddr>,
}

impl Record {
    /// The attachment this record belongs to.
    pub fn key(&self) -> AttachmentKey {
        AttachmentKey::new(self.container_id.clone(), self.ifname.clone())
    }

    pub(crate) fn empty(key: &AttachmentKey) -> Self {
        Self {
            container_id: key.container_id.clone(),
            ifname: key.ifname.clone(),
            ips: Vec::new(),
        }
    }
}

/// The owner named by an IP file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Owner {
    /// `<container_id>\r\n<ifname>`.
    Attachment(AttachmentKey),
    /// Old host-local format: the container ID alone.
    Legacy(String),
}

impl Owner {
    /// Parses the content of an IP file.
    pub(crate) fn parse(content: &str) -> Self {
        match content.split_once(LINE_BREAK) {
            Some((id, ifname)) => Self::Attachment(AttachmentKey::new(id.trim(), ifname.trim())),
            None => Self::Legacy(content.trim().to_owned()),
        }
    }

    /// Whether this is exactly `key` (the format this crate writes).
    pub(crate) fn is(&self, key: &AttachmentKey) -> bool {
        matches!(self, Self::Attachment(k) if k == key)
    }

    /// Whether the owner is among the valid attachments.
    pub(crate) fn is_valid(&self, keys: &HashSet<&AttachmentKey>, ids: &HashSet<&str>) -> bool {
        match self {
            Self::Attachment(key) => keys.contains(key),
            Self::Legacy(id) => ids.contains(id.as_str()),
        }
    }

    /// The key to report the owner under (legacy owners get an empty ifname).
    pub(crate) fn into_key(self) -> AttachmentKey {
        match self {
            Self::Attachment(key) => key,
            Self::Legacy(id) => AttachmentKey::new(id, ""),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_name_is_hex_sha256() {
        let name = AttachmentKey::new("abc", "eth0").record_file_name();
        assert_eq!(name.len(), 64);
        assert!(name.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(name, AttachmentKey::new("abce", "th0").record_file_name());
    }

    #[test]
    fn owner_formats() {
        let key = AttachmentKey::new("c1", "eth0");
        assert!(Owner::parse(&key.ip_file_content()).is(&key));
        assert_eq!(Owner::parse(" c1 \n"), Owner::Legacy("c1".into()));
        assert!(!Owner::parse("c1").is(&key));
    }

    #[test]
    fn key_validation() {
        assert!(AttachmentKey::new("c1", "eth0").validate().is_ok());
        assert!(AttachmentKey::new("", "eth0").validate().is_err());
        assert!(AttachmentKey::new("c\r\n1", "eth0").validate().is_err());
        assert!(AttachmentKey::new("c1", "../x").validate().is_err());
        assert!(AttachmentKey::new("c1", "averyveryverylongname")
            .validate()
            .is_err());
    }
}
