//! The manifests source: a directory of ordinary Kubernetes YAML (or JSON) files, several
//! documents per file, `kind: List` accepted. Each scan turns what changed on disk into the
//! matching watcher events; a file that does not parse is reported (file and document named)
//! and its last good objects stay in force.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::runtime::watcher::Event;
use serde::Deserialize;

use crate::{AnyEvent, AnyObject, Kind, ViewWriter};

/// What can go wrong with a manifests directory.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The directory cannot be listed.
    #[error("manifests directory {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A document is not YAML.
    #[error("{path}: document {doc}: not valid YAML: {source}")]
    Yaml {
        /// The file.
        path: PathBuf,
        /// 1-based document number.
        doc: usize,
        /// Why.
        source: serde_yaml::Error,
    },
    /// A document has an `apiVersion`/`kind` podnet does not read.
    #[error("{path}: document {doc}: unknown kind {api_version}/{kind} (podnet reads v1 Node, Pod, Namespace, Service, discovery.k8s.io/v1 EndpointSlice, networking.k8s.io/v1 NetworkPolicy)")]
    UnknownKind {
        /// The file.
        path: PathBuf,
        /// Document (and list item) position.
        doc: String,
        /// Its `apiVersion`.
        api_version: String,
        /// Its `kind`.
        kind: String,
    },
    /// A document of a known kind does not decode.
    #[error("{path}: document {doc}: invalid {kind}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Document (and list item) position.
        doc: String,
        /// What it claimed to be (may be empty).
        kind: String,
        /// Why.
        message: String,
    },
    /// Two files define the same object; the first (in file name order) wins.
    #[error("{path}: {kind} {name} is already defined in {first}; ignored here")]
    Duplicate {
        /// The file whose copy is ignored.
        path: PathBuf,
        /// The file whose copy is used.
        first: PathBuf,
        /// Kind.
        kind: Kind,
        /// `namespace/name` or `name`.
        name: String,
    },
    /// The directory cannot be watched.
    #[error("cannot watch {path}: {source}")]
    Watch {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: notify::Error,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    len: u64,
    ino: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(md: &fs::Metadata) -> Stamp {
        Stamp {
            len: md.len(),
            ino: md.ino(),
            mtime: (md.mtime(), md.mtime_nsec()),
            ctime: (md.ctime(), md.ctime_nsec()),
        }
    }
}

struct FileEntry {
    stamp: Stamp,
    /// The objects of the last version that parsed.
    objects: Vec<AnyObject>,
}

type Key = (Kind, String, String);

/// What one scan found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Events that bring a view from the previous scan's state to this one.
    pub events: Vec<AnyEvent>,
    /// Problems found; each leaves the affected file's last good objects in force.
    pub errors: Vec<ManifestError>,
}

/// A manifests directory and the state of its last scan.
pub struct ManifestDir {
    dir: PathBuf,
    files: BTreeMap<PathBuf, FileEntry>,
    current: BTreeMap<Key, AnyObject>,
    listed: bool,
}

impl ManifestDir {
    /// A directory not yet scanned.
    pub fn new(dir: impl Into<PathBuf>) -> ManifestDir {
        ManifestDir {
            dir: dir.into(),
            files: BTreeMap::new(),
            current: BTreeMap::new(),
            listed: false,
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Reads what changed since the last scan. The first scan answers a full list per kind
    /// (`Init`, `InitApply`…, `InitDone`, also for kinds with no object); later scans answer
    /// `Apply` for new or changed objects and `Delete` for vanished ones.
    pub fn scan(&mut self) -> Result<Scan, ManifestError> {
        let mut scan = Scan::default();
        let present = self.list()?;
        self.files
            .retain(|p, _| present.iter().any(|(q, _)| q == p));
        for (path, stamp) in present {
            if self.files.get(&path).is_some_and(|e| e.stamp == stamp) {
                continue;
            }
            let parsed = fs::read_to_string(&path)
                .map_err(|source| ManifestError::Read {
                    path: path.clone(),
                    source,
                })
                .and_then(|text| parse_file(&path, &text));
            match parsed {
                Ok(objects) => {
                    self.files.insert(path, FileEntry { stamp, objects });
                }
                Err(e) => {
                    scan.errors.push(e);
                    let entry = self.files.entry(path).or_insert(FileEntry {
                        stamp: stamp.clone(),
                        objects: Vec::new(),
                    });
                    entry.stamp = stamp;
                }
            }
        }
        let mut next: BTreeMap<Key, AnyObject> = BTreeMap::new();
        let mut origin: BTreeMap<Key, &Path> = BTreeMap::new();
        for (path, entry) in &self.files {
            for o in &entry.objects {
                let key = o.key();
                if let Some(first) = origin.get(&key) {
                    scan.errors.push(ManifestError::Duplicate {
                        path: path.clone(),
                        first: first.to_path_buf(),
                        kind: key.0,
                        name: if key.1.is_empty() {
                            key.2.clone()
                        } else {
                            format!("{}/{}", key.1, key.2)
                        },
                    });
                    continue;
                }
                origin.insert(key.clone(), path);
                next.insert(key, o.clone());
            }
        }
        if !self.listed {
            for kind in Kind::ALL {
                scan.events.push(marker(kind, Event::Init));
                for o in next.values().filter(|o| o.kind() == kind) {
                    scan.events.push(event(o.clone(), Change::InitApply));
                }
                scan.events.push(marker(kind, Event::InitDone));
            }
            self.listed = true;
        } else {
            for (k, old) in &self.current {
                if !next.contains_key(k) {
                    scan.events.push(event(old.clone(), Change::Delete));
                }
            }
            for (k, new) in &next {
                if self.current.get(k) != Some(new) {
                    scan.events.push(event(new.clone(), Change::Apply));
                }
            }
        }
        self.current = next;
        Ok(scan)
    }

    fn list(&self) -> Result<Vec<(PathBuf, Stamp)>, ManifestError> {
        let dir_err = |source| ManifestError::Dir {
            path: self.dir.clone(),
            source,
        };
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(dir_err)? {
            let entry = entry.map_err(dir_err)?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.')
                || !(name.ends_with(".yaml") || name.ends_with(".yml") || name.ends_with(".json"))
            {
                continue;
            }
            let path = entry.path();
            // Follow symlinks (ConfigMap volumes are symlink farms).
            match fs::metadata(&path) {
                Ok(md) if md.is_file() => out.push((path, Stamp::of(&md))),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(ManifestError::Read { path, source }),
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}

enum Change {
    InitApply,
    Apply,
    Delete,
}

fn event(o: AnyObject, change: Change) -> AnyEvent {
    fn wrap<K>(o: K, change: Change) -> Event<K> {
        match change {
            Change::InitApply => Event::InitApply(o),
            Change::Apply => Event::Apply(o),
            Change::Delete => Event::Delete(o),
        }
    }
    match o {
        AnyObject::Node(o) => AnyEvent::Node(wrap(o, change)),
        AnyObject::Pod(o) => AnyEvent::Pod(wrap(o, change)),
        AnyObject::Namespace(o) => AnyEvent::Namespace(wrap(o, change)),
        AnyObject::Service(o) => AnyEvent::Service(wrap(o, change)),
        AnyObject::EndpointSlice(o) => AnyEvent::EndpointSlice(wrap(o, change)),
        AnyObject::NetworkPolicy(o) => AnyEvent::NetworkPolicy(wrap(o, change)),
    }
}

/// `Init` or `InitDone` for a kind.
fn marker(kind: Kind, e: Event<()>) -> AnyEvent {
    fn conv<K>(e: &Event<()>) -> Event<K> {
        match e {
            Event::Init => Event::Init,
            _ => Event::InitDone,
        }
    }
    match kind {
        Kind::Node => AnyEvent::Node(conv(&e)),
        Kind::Pod => AnyEvent::Pod(conv(&e)),
        Kind::Namespace => AnyEvent::Namespace(conv(&e)),
        Kind::Service => AnyEvent::Service(conv(&e)),
        Kind::EndpointSlice => AnyEvent::EndpointSlice(conv(&e)),
        Kind::NetworkPolicy => AnyEvent::NetworkPolicy(conv(&e)),
    }
}

/// Parses one file's documents. Any bad document fails the whole file, so that a file is
/// always in force as a whole.
pub fn parse_file(path: &Path, text: &str) -> Result<Vec<AnyObject>, ManifestError> {
    let mut out = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let doc_no = i + 1;
        let value = serde_json::Value::deserialize(doc).map_err(|source| ManifestError::Yaml {
            path: path.to_path_buf(),
            doc: doc_no,
            source,
        })?;
        if value.is_null() {
            continue;
        }
        if value.get("kind").and_then(|k| k.as_str()) == Some("List") {
            let items = value
                .get("items")
                .and_then(|i| i.as_array())
                .cloned()
                .unwrap_or_default();
            for (j, item) in items.into_iter().enumerate() {
                out.push(parse_object(
                    path,
                    format!("{doc_no} (item {})", j + 1),
                    item,
                )?);
            }
        } else {
            out.push(parse_object(path, doc_no.to_string(), value)?);
        }
    }
    Ok(out)
}

fn parse_object(
    path: &Path,
    doc: String,
    value: serde_json::Value,
) -> Result<AnyObject, ManifestError> {
    let text = |f: &str| {
        value
            .get(f)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string()
    };
    let (api_version, kind_name) = (text("apiVersion"), text("kind"));
    let invalid = |message: String| ManifestError::Invalid {
        path: path.to_path_buf(),
        doc: doc.clone(),
        kind: kind_name.clone(),
        message,
    };
    if !value.is_object() {
        return Err(invalid("a document must be a mapping".into()));
    }
    if api_version.is_empty() || kind_name.is_empty() {
        return Err(invalid("apiVersion and kind are required".into()));
    }
    let Some(kind) = Kind::from_type(&api_version, &kind_name) else {
        return Err(ManifestError::UnknownKind {
            path: path.to_path_buf(),
            doc,
            api_version,
            kind: kind_name,
        });
    };
    let obj = AnyObject::from_value(kind, value).map_err(|e| invalid(e.to_string()))?;
    match obj.meta().name.as_deref() {
        Some(n) if !n.is_empty() => Ok(obj),
        _ => Err(invalid("metadata.name is required".into())),
    }
}

/// Feeds `writer` from `dir` until the task is dropped: a full list first, then the changes
/// seen through inotify (debounced by a few milliseconds) and a periodic rescan as a safety
/// net. Errors of a scan go to `on_error`; the source keeps running.
pub async fn run(
    dir: PathBuf,
    mut writer: ViewWriter,
    mut on_error: impl FnMut(&ManifestError) + Send,
) -> Result<(), ManifestError> {
    let mut manifests = ManifestDir::new(dir.clone());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        // Reads (including this source's own scans: inotify reports opens) change nothing;
        // reacting to them would rescan forever.
        let relevant = match res {
            Ok(e) => !matches!(e.kind, notify::EventKind::Access(_)),
            Err(_) => true,
        };
        if relevant {
            let _ = tx.send(());
        }
    })
    .map_err(|source| ManifestError::Watch {
        path: dir.clone(),
        source,
    })?;
    use notify::Watcher as _;
    watcher
        .watch(&dir, notify::RecursiveMode::NonRecursive)
        .map_err(|source| ManifestError::Watch {
            path: dir.clone(),
            source,
        })?;
    let mut poll = tokio::time::interval(Duration::from_secs(2));
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        match manifests.scan() {
            Ok(scan) => {
                scan.errors.iter().for_each(&mut on_error);
                for e in &scan.events {
                    writer.apply(e);
                }
            }
            Err(e) => on_error(&e),
        }
        tokio::select! {
            got = rx.recv() => {
                if got.is_none() {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
                while rx.try_recv().is_ok() {}
            }
            _ = poll.tick() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn names(events: &[AnyEvent]) -> Vec<String> {
        events
            .iter()
            .map(|e| match e {
                AnyEvent::Node(Event::Init) => "Node:Init".to_string(),
                AnyEvent::Node(Event::InitDone) => "Node:InitDone".to_string(),
                AnyEvent::Node(Event::InitApply(n)) => {
                    format!("Node:InitApply:{}", n.metadata.name.clone().unwrap())
                }
                AnyEvent::Node(Event::Apply(n)) => {
                    format!("Node:Apply:{}", n.metadata.name.clone().unwrap())
                }
                AnyEvent::Node(Event::Delete(n)) => {
                    format!("Node:Delete:{}", n.metadata.name.clone().unwrap())
                }
                AnyEvent::Pod(Event::Apply(p)) => {
                    format!("Pod:Apply:{}", p.metadata.name.clone().unwrap())
                }
                AnyEvent::Pod(Event::Delete(p)) => {
                    format!("Pod:Delete:{}", p.metadata.name.clone().unwrap())
                }
                _ => "other".to_string(),
            })
            .filter(|s| s != "other")
            .collect()
    }

    const NODES: &str = "apiVersion: v1\nkind: Node\nmetadata: {name: a}\nspec: {podCIDRs: [10.244.0.0/24]}\n---\napiVersion: v1\nkind: Node\nmetadata: {name: b}\n";

    #[test]
    fn first_scan_lists_then_changes_become_events() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("nodes.yaml"), NODES).unwrap();
        fs::write(dir.path().join("notes.txt"), "not a manifest").unwrap();
        let mut m = ManifestDir::new(dir.path());
        let s = m.scan().unwrap();
        assert!(s.errors.is_empty(), "{:?}", s.errors);
        assert_eq!(
            names(&s.events),
            [
                "Node:Init",
                "Node:InitApply:a",
                "Node:InitApply:b",
                "Node:InitDone"
            ]
        );
        // Every kind gets its full list, also the empty ones (so every store syncs).
        assert_eq!(s.events.len(), 4 + 5 * 2);
        assert!(m.scan().unwrap().events.is_empty(), "nothing changed");

        // Edit: b changes, a removed, c added.
        fs::write(
            dir.path().join("nodes.yaml"),
            "apiVersion: v1\nkind: Node\nmetadata: {name: b, labels: {x: y}}\n---\napiVersion: v1\nkind: Node\nmetadata: {name: c}\n",
        )
        .unwrap();
        let s = m.scan().unwrap();
        assert_eq!(
            names(&s.events),
            ["Node:Delete:a", "Node:Apply:b", "Node:Apply:c"]
        );

        // A second file; then its removal.
        fs::write(
            dir.path().join("pods.yml"),
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c}]}\n",
        )
        .unwrap();
        assert_eq!(names(&m.scan().unwrap().events), ["Pod:Apply:p"]);
        fs::remove_file(dir.path().join("pods.yml")).unwrap();
        assert_eq!(names(&m.scan().unwrap().events), ["Pod:Delete:p"]);
    }

    #[test]
    fn bad_file_is_named_and_its_last_good_state_stays() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("nodes.yaml");
        fs::write(&f, NODES).unwrap();
        let mut m = ManifestDir::new(dir.path());
        m.scan().unwrap();

        fs::write(
            &f,
            format!("{NODES}---\napiVersion: v1\nkind: Node\nmetadata: {{name: [\n"),
        )
        .unwrap();
        let s = m.scan().unwrap();
        assert!(
            s.events.is_empty(),
            "last good state stays: {:?}",
            names(&s.events)
        );
        let msg = s.errors[0].to_string();
        assert!(
            msg.contains("nodes.yaml") && msg.contains("document 3"),
            "{msg}"
        );

        fs::write(
            &f,
            format!("{NODES}---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: d}}\n"),
        )
        .unwrap();
        let s = m.scan().unwrap();
        assert!(s.events.is_empty());
        let msg = s.errors[0].to_string();
        assert!(
            msg.contains("document 3") && msg.contains("apps/v1/Deployment"),
            "{msg}"
        );

        fs::write(
            &f,
            "apiVersion: v1\nkind: Node\nmetadata: {name: a}\nspec: {podCIDRs: 7}\n",
        )
        .unwrap();
        let s = m.scan().unwrap();
        assert!(s.events.is_empty());
        assert!(
            s.errors[0].to_string().contains("invalid Node"),
            "{}",
            s.errors[0]
        );

        fs::write(
            &f,
            "apiVersion: v1\nkind: Node\nmetadata: {labels: {a: b}}\n",
        )
        .unwrap();
        let s = m.scan().unwrap();
        assert!(s.errors[0]
            .to_string()
            .contains("metadata.name is required"));

        // Fixed: the file is in force again.
        fs::write(&f, "apiVersion: v1\nkind: Node\nmetadata: {name: a}\n").unwrap();
        let s = m.scan().unwrap();
        assert!(s.errors.is_empty());
        assert_eq!(names(&s.events), ["Node:Delete:b", "Node:Apply:a"]);
    }

    #[test]
    fn lists_namespaces_and_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("a.yaml"),
            "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Service\n  metadata: {name: s}\n- apiVersion: v1\n  kind: Service\n  metadata: {name: s, namespace: other}\n",
        )
        .unwrap();
        fs::write(
            dir.path().join("b.yaml"),
            "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: default}\n",
        )
        .unwrap();
        let mut m = ManifestDir::new(dir.path());
        let s = m.scan().unwrap();
        let keys: Vec<_> = m.current.keys().cloned().collect();
        assert_eq!(
            keys,
            [
                (Kind::Service, "default".into(), "s".into()),
                (Kind::Service, "other".into(), "s".into())
            ]
        );
        assert_eq!(s.errors.len(), 1);
        let msg = s.errors[0].to_string();
        assert!(
            msg.contains("b.yaml") && msg.contains("a.yaml") && msg.contains("default/s"),
            "{msg}"
        );
    }

    #[test]
    fn missing_directory_is_an_error() {
        let mut m = ManifestDir::new("/nonexistent/podnet-manifests");
        assert!(matches!(m.scan(), Err(ManifestError::Dir { .. })));
    }

    #[tokio::test]
    async fn run_feeds_the_view_and_follows_edits() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("nodes.yaml"), NODES).unwrap();
        let (view, writer) = crate::ClusterView::new();
        let errors = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let errs = errors.clone();
        let task = tokio::spawn(run(dir.path().to_path_buf(), writer, move |e| {
            errs.lock().unwrap().push(e.to_string())
        }));
        view.synced(&Kind::ALL).await.unwrap();
        assert_eq!(view.nodes.len(), 2);
        let mut changes = view.changes(Kind::Node);
        fs::write(
            dir.path().join("more.yaml"),
            "apiVersion: v1\nkind: Node\nmetadata: {name: z}\n",
        )
        .unwrap();
        tokio::time::timeout(Duration::from_secs(1), changes.changed())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(view.nodes.len(), 3);
        fs::write(dir.path().join("bad.yaml"), "kind: [").unwrap();
        tokio::time::timeout(Duration::from_secs(1), async {
            while errors.lock().unwrap().is_empty() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap();
        assert!(errors.lock().unwrap()[0].contains("bad.yaml"));
        assert_eq!(view.nodes.len(), 3);
        task.abort();
    }
}
