//! nftables through the `nft` binary: one atomic transaction per [`apply`], and reads of
//! podnet's own tables. Every caller names its own table; nothing here touches another.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

pub mod netlink;

/// What went wrong running `nft`.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// The binary cannot be started or talked to.
    #[error("nft: cannot {what}: {source}")]
    Io {
        /// What failed.
        what: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// nft refused the transaction or command (nothing of it was applied).
    #[error("nft refused: {0}")]
    Refused(String),
    /// nf_tables netlink failed or refused a request (see [`netlink::Error`]).
    #[error(transparent)]
    Netlink(#[from] netlink::Error),
}

/// `nft` from PATH, else from the usual sbin directories (runtimes may pass a thin PATH).
pub fn binary() -> PathBuf {
    let in_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("nft"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    in_path
        .into_iter()
        .chain(["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"].map(PathBuf::from))
        .find(|p| p.is_file())
        .unwrap_or_else(|| "nft".into())
}

/// Applies `script` (nft syntax) as one transaction: all of it or nothing.
pub fn apply(script: &str) -> Result<(), NftError> {
    let mut child = Command::new(binary())
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| NftError::Io {
            what: "start",
            source,
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(|source| NftError::Io {
                what: "write",
                source,
            })?;
    }
    let out = child.wait_with_output().map_err(|source| NftError::Io {
        what: "wait",
        source,
    })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NftError::Refused(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ))
    }
}

/// Runs `nft ARGS` and returns its standard output.
pub fn output(args: &[&str]) -> Result<String, NftError> {
    let out = Command::new(binary())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| NftError::Io {
            what: "start",
            source,
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(NftError::Refused(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ))
    }
}

/// The text of table `family name`, or `None` when it does not exist.
pub fn list_table(family: &str, name: &str) -> Result<Option<String>, NftError> {
    match output(&["list", "table", family, name]) {
        Ok(text) => Ok(Some(text)),
        Err(NftError::Refused(msg)) if msg.contains("No such file or directory") => Ok(None),
        Err(e) => Err(e),
    }
}
