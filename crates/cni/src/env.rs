//! The plugin's environment: `CNI_COMMAND` and friends.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::args::CniArgs;
use crate::error::{codes, CniError};

/// The operation requested through `CNI_COMMAND`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// `ADD`: attach the container to the network.
    Add,
    /// `DEL`: detach the container from the network.
    Del,
    /// `CHECK`: verify the attachment (0.4.0+).
    Check,
    /// `STATUS`: report plugin readiness (1.1.0+).
    Status,
    /// `GC`: clean up stale resources (1.1.0+).
    Gc,
    /// `VERSION`: report supported versions.
    Version,
}

impl Command {
    /// The `CNI_COMMAND` spelling, e.g. `"ADD"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Status => "STATUS",
            Command::Gc => "GC",
            Command::Version => "VERSION",
        }
    }

    /// Whether this command acts on one attachment (ADD, DEL, CHECK).
    pub fn is_attachment(self) -> bool {
        matches!(self, Command::Add | Command::Del | Command::Check)
    }

    /// Whether `CNI_NETNS` is required (ADD, CHECK).
    pub fn needs_netns(self) -> bool {
        matches!(self, Command::Add | Command::Check)
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Command {
    type Err = CniError;

    /// Parses the exact upper-case command name; anything else is code 4.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let all = [
            Command::Add,
            Command::Del,
            Command::Check,
            Command::Status,
            Command::Gc,
            Command::Version,
        ];
        all.into_iter().find(|c| c.as_str() == s).ok_or_else(|| {
            CniError::new(
                codes::INVALID_ENV,
                format!("unknown CNI_COMMAND {s:?}"),
                "expected ADD, DEL, CHECK, STATUS, GC or VERSION",
            )
        })
    }
}

/// The validated plugin environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Env {
    /// `CNI_COMMAND`.
    pub command: Command,
    /// `CNI_CONTAINERID` (set for ADD, DEL, CHECK).
    pub container_id: Option<String>,
    /// `CNI_NETNS` (set for ADD and CHECK; optional for DEL).
    pub netns: Option<PathBuf>,
    /// `CNI_IFNAME` (set for ADD, DEL, CHECK).
    pub ifname: Option<String>,
    /// `CNI_ARGS` (parsed for ADD, DEL, CHECK; empty otherwise).
    pub args: CniArgs,
    /// `CNI_PATH`, split on `:`, empty entries dropped.
    pub path: Vec<PathBuf>,
}

impl Env {
    /// Reads and validates the `CNI_*` variables through `get`.
    ///
    /// ADD/DEL/CHECK need `CNI_CONTAINERID` and `CNI_IFNAME`, ADD/CHECK also
    /// `CNI_NETNS`; STATUS/GC/VERSION need only `CNI_COMMAND` and ignore the
    /// attachment variables. Empty counts as missing. Errors are code 4.
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Env, CniError> {
        let var = |name: &str| get(name).filter(|v| !v.is_empty());
        let command: Command = var("CNI_COMMAND")
            .ok_or_else(|| missing(&["CNI_COMMAND"]))?
            .parse()?;
        let mut env = Env {
            command,
            container_id: None,
            netns: None,
            ifname: None,
            args: CniArgs::default(),
            path: split_path(var("CNI_PATH").as_deref()),
        };
        if command.is_attachment() {
            env.read_attachment(&var)?;
        }
        Ok(env)
    }

    /// Reads and validates the ADD/DEL/CHECK variables.
    fn read_attachment(&mut self, var: &dyn Fn(&str) -> Option<String>) -> Result<(), CniError> {
        let container_id = var("CNI_CONTAINERID");
        let ifname = var("CNI_IFNAME");
        let netns = var("CNI_NETNS");
        check_missing(
            self.command,
            container_id.as_deref(),
            ifname.as_deref(),
            netns.as_deref(),
        )?;
        if let Some(id) = &container_id {
            validate_container_id(id)?;
        }
        if let Some(name) = &ifname {
            validate_ifname(name)?;
        }
        self.args = CniArgs::parse(&var("CNI_ARGS").unwrap_or_default())?;
        self.container_id = container_id;
        self.ifname = ifname;
        self.netns = netns.map(PathBuf::from);
        Ok(())
    }
}

fn check_missing(
    command: Command,
    container_id: Option<&str>,
    ifname: Option<&str>,
    netns: Option<&str>,
) -> Result<(), CniError> {
    let mut names = Vec::new();
    if container_id.is_none() {
        names.push("CNI_CONTAINERID");
    }
    if netns.is_none() && command.needs_netns() {
        names.push("CNI_NETNS");
    }
    if ifname.is_none() {
        names.push("CNI_IFNAME");
    }
    if names.is_empty() {
        Ok(())
    } else {
        Err(missing(&names))
    }
}

fn missing(names: &[&str]) -> CniError {
    CniError::msg(
        codes::INVALID_ENV,
        format!("required env variables [{}] missing", names.join(",")),
    )
}

fn split_path(raw: Option<&str>) -> Vec<PathBuf> {
    raw.unwrap_or_default()
        .split(':')
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .collect()
}

/// Checks a container ID: non-empty, an ASCII alphanumeric first character,
/// then only ASCII alphanumerics, `_`, `.` or `-`. Errors are code 4.
pub fn validate_container_id(id: &str) -> Result<(), CniError> {
    let mut chars = id.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if first_ok && rest_ok {
        Ok(())
    } else {
        Err(CniError::new(
            codes::INVALID_ENV,
            "invalid CNI_CONTAINERID",
            format!(
                "{id:?}: must start with an alphanumeric character, \
                 followed by alphanumerics, '_', '.' or '-'"
            ),
        ))
    }
}

/// Longest interface name Linux accepts, in bytes (IFNAMSIZ - 1).
pub const MAX_IFNAME_LEN: usize = 15;

/// Checks an interface name: non-empty, at most 15 bytes, not `.` or `..`,
/// and free of `/`, `:` and whitespace. Errors are code 4.
pub fn validate_ifname(name: &str) -> Result<(), CniError> {
    let problem = if name.is_empty() {
        Some("must not be empty")
    } else if name.len() > MAX_IFNAME_LEN {
        Some("must be at most 15 bytes")
    } else if name == "." || name == ".." {
        Some("must not be \".\" or \"..\"")
    } else if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        Some("must not contain '/', ':' or whitespace")
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(why) => Err(CniError::new(
            codes::INVALID_ENV,
            "invalid CNI_IFNAME",
            format!("{name:?}: {why}"),
        )),
    }
}
