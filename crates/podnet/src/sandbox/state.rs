//! The sandbox's persistent state (`/run/podnet/sandbox/NAME/state.json`, under a lock), and
//! the manifests directory its agents read.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

/// Where sandboxes keep their state.
pub const ROOT: &str = "/run/podnet/sandbox";

/// A network namespace name of sandbox `sandbox` (dots cannot appear in sandbox names, so
/// two sandboxes never share a prefix).
pub fn ns_name(sandbox: &str, what: &str) -> String {
    format!("psb.{sandbox}.{what}")
}

/// The prefix of every namespace of a sandbox.
pub fn ns_prefix(sandbox: &str) -> String {
    format!("psb.{sandbox}.")
}

/// Checks a sandbox name: 1–20 of `[a-z0-9-]`, starting with a letter or digit.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 20
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-');
    if !ok {
        bail!("bad sandbox name {name:?}: use 1-20 characters of a-z, 0-9 and '-'");
    }
    Ok(())
}

/// One node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeRec {
    /// `node-i`.
    pub name: String,
    /// Its network namespace.
    pub netns: String,
    /// Underlay address.
    pub address: String,
    /// Pod CIDR.
    pub pod_cidr: String,
    /// The agent's pid.
    pub agent_pid: u32,
}

/// One pod.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PodRec {
    /// The object, with the status the sandbox maintains.
    pub pod: Pod,
    /// Its network namespace.
    pub netns: String,
    /// The CNI container id it was attached with.
    pub container_id: String,
    /// Its node.
    pub node: String,
    /// Process groups of its containers.
    pub pids: Vec<u32>,
    /// Declared ports accept connections.
    pub ready: bool,
    /// Being deleted.
    pub terminating: bool,
}

/// Everything the sandbox knows.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    /// Sandbox name.
    pub name: String,
    /// `host-gw` or `vxlan`.
    pub routing: String,
    /// Nodes.
    pub nodes: Vec<NodeRec>,
    /// Namespaces by name.
    pub namespaces: BTreeMap<String, Namespace>,
    /// Pods by `ns/name`.
    pub pods: BTreeMap<String, PodRec>,
    /// Services by `ns/name`.
    pub services: BTreeMap<String, Service>,
    /// NetworkPolicies by `ns/name`.
    pub policies: BTreeMap<String, NetworkPolicy>,
    /// Counter for uids and namespace names.
    pub counter: u64,
}

impl State {
    /// A fresh unique number.
    pub fn next(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }
}

/// Paths of one sandbox.
#[derive(Debug, Clone)]
pub struct Paths {
    /// `/run/podnet/sandbox/NAME`.
    pub root: PathBuf,
}

impl Paths {
    /// The paths of sandbox `name`.
    pub fn of(name: &str) -> Paths {
        Paths {
            root: Path::new(ROOT).join(name),
        }
    }
    /// The state file.
    pub fn state(&self) -> PathBuf {
        self.root.join("state.json")
    }
    /// The manifests directory the agents read.
    pub fn manifests(&self) -> PathBuf {
        self.root.join("manifests")
    }
    /// A node's directory (CNI config, IPAM state).
    pub fn node(&self, node: &str) -> PathBuf {
        self.root.join(node)
    }
    /// A node's CNI config.
    pub fn conflist(&self, node: &str) -> PathBuf {
        self.node(node).join("10-podnet.conflist")
    }
    /// Logs.
    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }
}

/// An open sandbox: its state under an exclusive lock (held until drop).
pub struct Sandbox {
    /// Paths.
    pub paths: Paths,
    /// State.
    pub state: State,
    _lock: Flock<File>,
}

fn lock(paths: &Paths) -> Result<Flock<File>> {
    std::fs::create_dir_all(&paths.root)
        .with_context(|| format!("creating {}", paths.root.display()))?;
    let f = File::create(paths.root.join("lock")).context("opening the sandbox lock")?;
    Flock::lock(f, FlockArg::LockExclusive)
        .map_err(|(_, e)| anyhow::anyhow!("locking the sandbox: {e}"))
}

impl Sandbox {
    /// Opens an existing sandbox.
    pub fn open(name: &str) -> Result<Sandbox> {
        check_name(name)?;
        let paths = Paths::of(name);
        if !paths.state().exists() {
            bail!("sandbox {name:?} is not up (podnet sandbox up --name {name})");
        }
        let lock = lock(&paths)?;
        let text = std::fs::read(paths.state()).context("reading the sandbox state")?;
        let state = serde_json::from_slice(&text)
            .context("sandbox state is corrupt; run `podnet sandbox down`")?;
        Ok(Sandbox {
            paths,
            state,
            _lock: lock,
        })
    }

    /// Creates a new sandbox (fails if one of that name exists).
    pub fn create(name: &str, routing: &str) -> Result<Sandbox> {
        check_name(name)?;
        let paths = Paths::of(name);
        let lock = lock(&paths)?;
        if paths.state().exists() {
            bail!("sandbox {name:?} is already up (podnet sandbox down --name {name} first)");
        }
        for d in [paths.manifests(), paths.logs()] {
            std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
        }
        let sb = Sandbox {
            paths,
            state: State {
                name: name.into(),
                routing: routing.into(),
                ..State::default()
            },
            _lock: lock,
        };
        sb.save()?;
        Ok(sb)
    }

    /// Writes the state (atomically).
    pub fn save(&self) -> Result<()> {
        let text = serde_json::to_vec_pretty(&self.state)?;
        write_atomic(&self.paths.state(), &text)
    }
}

/// Writes `data` to `path` through a hidden temporary and a rename, unless the file already
/// holds exactly that; returns whether it wrote.
pub fn write_atomic_if_changed(path: &Path, data: &[u8]) -> Result<bool> {
    if std::fs::read(path).ok().as_deref() == Some(data) {
        return Ok(false);
    }
    write_atomic(path, data)?;
    Ok(true)
}

fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, data).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// YAML documents of `objects`.
pub fn yaml_docs<T: Serialize>(objects: impl IntoIterator<Item = T>) -> Result<String> {
    let mut out = String::new();
    for o in objects {
        if !out.is_empty() {
            out.push_str("---\n");
        }
        out.push_str(&serde_yaml::to_string(&o)?);
    }
    Ok(out)
}

/// The Node objects of the sandbox, as the API server would show them.
pub fn node_objects(state: &State) -> Vec<Node> {
    state
        .nodes
        .iter()
        .map(|n| {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": n.name, "labels": {
                    "kubernetes.io/hostname": n.name, "kubernetes.io/os": "linux",
                    "podnet.io/sandbox": state.name}},
                "spec": {"podCIDR": n.pod_cidr, "podCIDRs": [n.pod_cidr]},
                "status": {
                    "addresses": [{"type": "InternalIP", "address": n.address},
                                  {"type": "Hostname", "address": n.name}],
                    "conditions": [{"type": "Ready", "status": "True", "reason": "PodnetSandbox"}]}
            }))
            .unwrap_or_default()
        })
        .collect()
}
