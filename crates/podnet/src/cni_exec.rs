//! Invoking a CNI plugin binary the way a container runtime does, from inside a node's
//! network namespace (the child inherits the namespace of the thread that spawns it).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result};
use podnet_netdev::NetNs;
use serde_json::Value;

/// One plugin call.
#[derive(Debug, Clone, Default)]
pub struct Call {
    /// `ADD`, `DEL`, `CHECK`, `STATUS`, `GC` or `VERSION`.
    pub command: String,
    /// `CNI_CONTAINERID`.
    pub container_id: Option<String>,
    /// `CNI_NETNS`.
    pub netns: Option<PathBuf>,
    /// `CNI_IFNAME`.
    pub ifname: Option<String>,
    /// `CNI_ARGS`.
    pub args: Option<String>,
    /// `CNI_PATH`.
    pub path: Option<String>,
}

impl Call {
    /// An attachment command (ADD, DEL, CHECK) for `container_id` in `netns` as `eth0`.
    pub fn attachment(command: &str, container_id: &str, netns: &Path) -> Call {
        Call {
            command: command.to_string(),
            container_id: Some(container_id.to_string()),
            netns: Some(netns.to_path_buf()),
            ifname: Some("eth0".to_string()),
            ..Default::default()
        }
    }
}

/// What the plugin answered.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Exit code.
    pub code: i32,
    /// Stdout as JSON (`Null` when empty).
    pub json: Value,
    /// Raw stdout.
    pub stdout: String,
    /// Stderr.
    pub stderr: String,
}

impl Reply {
    /// True on exit code 0.
    pub fn ok(&self) -> bool {
        self.code == 0
    }
}

/// Runs `plugin` with `call` and `stdin`, in `node`'s network namespace.
pub fn invoke(plugin: &Path, node: &NetNs, call: &Call, stdin: &[u8]) -> Result<Reply> {
    let mut cmd = Command::new(plugin);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("CNI_COMMAND", &call.command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let vars = [
        ("CNI_CONTAINERID", call.container_id.clone()),
        (
            "CNI_NETNS",
            call.netns.as_ref().map(|p| p.display().to_string()),
        ),
        ("CNI_IFNAME", call.ifname.clone()),
        ("CNI_ARGS", call.args.clone()),
        ("CNI_PATH", call.path.clone()),
    ];
    for (k, v) in vars {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    let mut child = node
        .run(|| cmd.spawn())?
        .with_context(|| format!("starting {}", plugin.display()))?;
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin).context("writing plugin stdin")?;
    }
    let out = child.wait_with_output().context("waiting for plugin")?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let json = if stdout.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&stdout)
            .with_context(|| format!("plugin stdout is not JSON: {stdout:?}"))?
    };
    Ok(Reply {
        code: out.status.code().unwrap_or(-1),
        json,
        stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// The path of a binary next to the running one (`podnet-cni`, `podnet-ipam`).
pub fn sibling(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locating own binary")?;
    let dir = exe.parent().context("own binary has no directory")?;
    // Test binaries live in target/<profile>/deps; the plugin one level up.
    let candidates = [dir.join(name), dir.join("..").join(name)];
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .with_context(|| format!("{name} not found next to {}", exe.display()))
}
