//! `CNI_ARGS`: the semicolon-separated `KEY=VALUE` extra arguments.

use crate::error::{codes, CniError};

/// The Kubernetes keys kubelet/CRI runtimes pass in `CNI_ARGS`.
pub const K8S_ARGS: [&str; 4] = [
    "K8S_POD_NAMESPACE",
    "K8S_POD_NAME",
    "K8S_POD_INFRA_CONTAINER_ID",
    "K8S_POD_UID",
];

/// The key that asks plugins to ignore keys they do not know.
pub const IGNORE_UNKNOWN: &str = "IgnoreUnknown";

/// Parsed `CNI_ARGS`: key/value pairs in the order given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniArgs {
    pairs: Vec<(String, String)>,
}

impl CniArgs {
    /// Parses `"K=V;K2=V2"`.
    ///
    /// The empty string gives no pairs; empty segments (e.g. a trailing `;`)
    /// are skipped. A segment without `=` or with an empty key is code 4.
    /// The value is everything after the first `=`.
    pub fn parse(s: &str) -> Result<Self, CniError> {
        let pairs = s
            .split(';')
            .filter(|seg| !seg.is_empty())
            .map(parse_pair)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { pairs })
    }

    /// The value of `key` (exact, case-sensitive); the last one wins on repeats.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// All pairs in the order given.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Whether no pair was given.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Whether `IgnoreUnknown` is `1` or `true` (value case-insensitive).
    pub fn ignore_unknown(&self) -> bool {
        self.get(IGNORE_UNKNOWN)
            .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
    }

    /// Fails with code 2 on a key not in `known` (nor `IgnoreUnknown`),
    /// unless [`ignore_unknown`](Self::ignore_unknown) is set.
    pub fn check_known(&self, known: &[&str]) -> Result<(), CniError> {
        if self.ignore_unknown() {
            return Ok(());
        }
        let unknown = self
            .pairs
            .iter()
            .map(|(k, _)| k.as_str())
            .find(|k| *k != IGNORE_UNKNOWN && !known.contains(k));
        match unknown {
            None => Ok(()),
            Some(key) => Err(CniError::new(
                codes::UNSUPPORTED_FIELD,
                format!("unknown CNI_ARGS key {key:?}"),
                "set IgnoreUnknown=1 to ignore unknown keys",
            )),
        }
    }
}

fn parse_pair(seg: &str) -> Result<(String, String), CniError> {
    match seg.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        Some(_) => Err(CniError::new(
            codes::INVALID_ENV,
            "invalid CNI_ARGS: empty key",
            format!("pair {seg:?}"),
        )),
        None => Err(CniError::new(
            codes::INVALID_ENV,
            "invalid CNI_ARGS: pair without '='",
            format!("pair {seg:?}"),
        )),
    }
}
