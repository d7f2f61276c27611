//! The Kubernetes API source: one kube-rs watcher per kind (list then watch, bookmarks,
//! relist after 410 Gone without flushing the store, exponential backoff on errors), objects
//! trimmed before they are stored. This is the only module that talks to kube's client.

use std::path::Path;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher::{self, watcher};
use kube::runtime::WatchStreamExt;
use kube::Client;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::{Kind, KindWriter, ViewObject, ViewWriter};

/// What can go wrong with the API source.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The kubeconfig cannot be used.
    #[error("kubeconfig {path}: {message}")]
    Kubeconfig {
        /// Its path.
        path: String,
        /// Why.
        message: String,
    },
    /// No kubeconfig given and not running in a cluster.
    #[error("no in-cluster configuration ({0}); pass --kubeconfig or --manifests")]
    InCluster(String),
    /// The client cannot be built.
    #[error("cannot build the Kubernetes client: {0}")]
    Client(#[source] kube::Error),
    /// RBAC denies podnet what it needs.
    #[error("forbidden to list/watch {resource}: {message}; grant podnet's ServiceAccount get, list and watch on {resource} (the ClusterRole in deploy/podnet.yaml)")]
    Forbidden {
        /// The kind.
        kind: Kind,
        /// Its resource name.
        resource: &'static str,
        /// The API server's message.
        message: String,
    },
    /// Another API error (retried with backoff).
    #[error("API server answered {code} for {resource}: {message}")]
    Api {
        /// The kind.
        kind: Kind,
        /// Its resource name.
        resource: &'static str,
        /// HTTP status.
        code: u16,
        /// The API server's message.
        message: String,
    },
    /// A transport or decoding failure (retried with backoff).
    #[error("watching {resource}: {message}")]
    Watch {
        /// The kind.
        kind: Kind,
        /// Its resource name.
        resource: &'static str,
        /// What failed.
        message: String,
    },
    /// Patching the own Node failed.
    #[error("cannot annotate Node {node} (podnet needs patch on nodes): {source}")]
    Annotate {
        /// The node.
        node: String,
        /// Why.
        source: kube::Error,
    },
}

impl SourceError {
    /// Whether retrying cannot help until someone changes RBAC.
    pub fn is_forbidden(&self) -> bool {
        match self {
            SourceError::Forbidden { .. } => true,
            SourceError::Annotate {
                source: kube::Error::Api(s),
                ..
            } => s.is_forbidden(),
            _ => false,
        }
    }

    fn from_watcher(kind: Kind, e: watcher::Error) -> SourceError {
        let resource = kind.resource();
        let status = match &e {
            watcher::Error::InitialListFailed(kube::Error::Api(s))
            | watcher::Error::WatchStartFailed(kube::Error::Api(s))
            | watcher::Error::WatchFailed(kube::Error::Api(s)) => Some(s.as_ref()),
            watcher::Error::WatchError(s) => Some(s.as_ref()),
            _ => None,
        };
        match status {
            Some(s) if s.is_forbidden() => SourceError::Forbidden {
                kind,
                resource,
                message: s.message.clone(),
            },
            Some(s) => SourceError::Api {
                kind,
                resource,
                code: s.code,
                message: s.message.clone(),
            },
            None => SourceError::Watch {
                kind,
                resource,
                message: e.to_string(),
            },
        }
    }
}

/// A client from `kubeconfig`, or from the in-cluster service account when `None`.
pub async fn client(kubeconfig: Option<&Path>) -> Result<Client, SourceError> {
    let config = match kubeconfig {
        Some(path) => {
            let err = |message: String| SourceError::Kubeconfig {
                path: path.display().to_string(),
                message,
            };
            let kc = Kubeconfig::read_from(path).map_err(|e| err(e.to_string()))?;
            kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(|e| err(e.to_string()))?
        }
        None => kube::Config::incluster().map_err(|e| SourceError::InCluster(e.to_string()))?,
    };
    Client::try_from(config).map_err(SourceError::Client)
}

/// Starts one watcher task per kind feeding `writer`. Errors (each retried with backoff by
/// the watcher) are sent to `errors`.
pub fn spawn(
    client: Client,
    writer: ViewWriter,
    errors: mpsc::UnboundedSender<SourceError>,
) -> Vec<JoinHandle<()>> {
    let ViewWriter {
        nodes,
        pods,
        namespaces,
        services,
        endpoint_slices,
        network_policies,
    } = writer;
    vec![
        tokio::spawn(watch_kind(client.clone(), nodes, errors.clone())),
        tokio::spawn(watch_kind(client.clone(), pods, errors.clone())),
        tokio::spawn(watch_kind(client.clone(), namespaces, errors.clone())),
        tokio::spawn(watch_kind(client.clone(), services, errors.clone())),
        tokio::spawn(watch_kind(client.clone(), endpoint_slices, errors.clone())),
        tokio::spawn(watch_kind(client, network_policies, errors)),
    ]
}

/// Feeds one kind's store from the API until the task is dropped.
pub async fn watch_kind<K: ViewObject>(
    client: Client,
    mut writer: KindWriter<K>,
    errors: mpsc::UnboundedSender<SourceError>,
) {
    let api: Api<K> = Api::all(client);
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(K::trim);
    let mut stream = std::pin::pin!(stream);
    while let Some(item) = stream.next().await {
        match item {
            Ok(event) => writer.apply(&event),
            // An expired watch (410 Gone) is routine: the watcher relists, keeping the store.
            Err(watcher::Error::WatchError(s)) if s.code == 410 => {
                tracing::debug!(kind = %K::KIND, "watch expired; relisting");
            }
            Err(e) => {
                let e = SourceError::from_watcher(K::KIND, e);
                tracing::warn!(kind = %K::KIND, error = %e, "watch failed; retrying with backoff");
                let _ = errors.send(e);
            }
        }
    }
}

/// Sets annotations on the Node `name` (a merge patch; other annotations untouched).
pub async fn annotate_node(
    client: Client,
    name: &str,
    annotations: &[(&str, &str)],
) -> Result<(), SourceError> {
    let api: Api<Node> = Api::all(client);
    let map: serde_json::Map<String, serde_json::Value> = annotations
        .iter()
        .map(|(k, v)| ((*k).to_string(), serde_json::Value::from(*v)))
        .collect();
    let patch = serde_json::json!({ "metadata": { "annotations": map } });
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
        .map_err(|source| SourceError::Annotate {
            node: name.to_string(),
            source,
        })
}
