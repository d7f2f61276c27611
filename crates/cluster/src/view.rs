//! The stores, their writers and change notification.

use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::runtime::reflector::store::Writer;
use kube::runtime::reflector::Store;
use kube::runtime::watcher::Event;
use tokio::sync::watch;

use crate::{Kind, ViewObject};

/// A watcher event of any kind.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // short-lived values; boxing buys nothing
pub enum AnyEvent {
    /// Nodes.
    Node(Event<Node>),
    /// Pods.
    Pod(Event<Pod>),
    /// Namespaces.
    Namespace(Event<Namespace>),
    /// Services.
    Service(Event<Service>),
    /// EndpointSlices.
    EndpointSlice(Event<EndpointSlice>),
    /// NetworkPolicies.
    NetworkPolicy(Event<NetworkPolicy>),
}

/// The write half of one kind's store: applies events and bumps the kind's change counter
/// whenever the store's content may have changed.
pub struct KindWriter<K: ViewObject> {
    writer: Writer<K>,
    generation: watch::Sender<u64>,
}

impl<K: ViewObject> KindWriter<K> {
    fn new() -> (Store<K>, watch::Receiver<u64>, KindWriter<K>) {
        let writer = Writer::default();
        let store = writer.as_reader();
        let (tx, rx) = watch::channel(0);
        (
            store,
            rx,
            KindWriter {
                writer,
                generation: tx,
            },
        )
    }

    /// Applies one event. `Init`/`InitApply` only buffer (the store keeps its content during a
    /// relist); `InitDone` swaps the buffer in atomically and releases the synced barrier.
    pub fn apply(&mut self, event: &Event<K>) {
        self.writer.apply_watcher_event(event);
        if matches!(event, Event::Apply(_) | Event::Delete(_) | Event::InitDone) {
            self.generation.send_modify(|g| *g += 1);
        }
    }
}

/// The write half of the view; its fields can be moved to separate tasks.
pub struct ViewWriter {
    /// Nodes.
    pub nodes: KindWriter<Node>,
    /// Pods.
    pub pods: KindWriter<Pod>,
    /// Namespaces.
    pub namespaces: KindWriter<Namespace>,
    /// Services.
    pub services: KindWriter<Service>,
    /// EndpointSlices.
    pub endpoint_slices: KindWriter<EndpointSlice>,
    /// NetworkPolicies.
    pub network_policies: KindWriter<NetworkPolicy>,
}

impl ViewWriter {
    /// Applies an event of any kind.
    pub fn apply(&mut self, event: &AnyEvent) {
        match event {
            AnyEvent::Node(e) => self.nodes.apply(e),
            AnyEvent::Pod(e) => self.pods.apply(e),
            AnyEvent::Namespace(e) => self.namespaces.apply(e),
            AnyEvent::Service(e) => self.services.apply(e),
            AnyEvent::EndpointSlice(e) => self.endpoint_slices.apply(e),
            AnyEvent::NetworkPolicy(e) => self.network_policies.apply(e),
        }
    }
}

/// The read half: what every controller reads. Cheap to clone.
#[derive(Clone)]
pub struct ClusterView {
    /// Nodes.
    pub nodes: Store<Node>,
    /// Pods.
    pub pods: Store<Pod>,
    /// Namespaces.
    pub namespaces: Store<Namespace>,
    /// Services.
    pub services: Store<Service>,
    /// EndpointSlices.
    pub endpoint_slices: Store<EndpointSlice>,
    /// NetworkPolicies.
    pub network_policies: Store<NetworkPolicy>,
    generations: [watch::Receiver<u64>; 6],
}

/// The reader's store was dropped before it ever synced (its source ended).
#[derive(Debug, thiserror::Error)]
#[error("the source of {0} objects ended before its first full list")]
pub struct SourceGone(pub Kind);

impl ClusterView {
    /// An empty view and its writer.
    pub fn new() -> (ClusterView, ViewWriter) {
        let (nodes, g0, w0) = KindWriter::new();
        let (pods, g1, w1) = KindWriter::new();
        let (namespaces, g2, w2) = KindWriter::new();
        let (services, g3, w3) = KindWriter::new();
        let (endpoint_slices, g4, w4) = KindWriter::new();
        let (network_policies, g5, w5) = KindWriter::new();
        (
            ClusterView {
                nodes,
                pods,
                namespaces,
                services,
                endpoint_slices,
                network_policies,
                generations: [g0, g1, g2, g3, g4, g5],
            },
            ViewWriter {
                nodes: w0,
                pods: w1,
                namespaces: w2,
                services: w3,
                endpoint_slices: w4,
                network_policies: w5,
            },
        )
    }

    /// A receiver that wakes when objects of `kind` change (the value is a change counter).
    pub fn changes(&self, kind: Kind) -> watch::Receiver<u64> {
        let mut rx = self.generations[kind.index()].clone();
        rx.mark_unchanged();
        rx
    }

    /// Waits until the stores of `kinds` each hold a full list: the barrier before any
    /// controller reconciles.
    pub async fn synced(&self, kinds: &[Kind]) -> Result<(), SourceGone> {
        for &k in kinds {
            let r = match k {
                Kind::Node => self.nodes.wait_until_ready().await,
                Kind::Pod => self.pods.wait_until_ready().await,
                Kind::Namespace => self.namespaces.wait_until_ready().await,
                Kind::Service => self.services.wait_until_ready().await,
                Kind::EndpointSlice => self.endpoint_slices.wait_until_ready().await,
                Kind::NetworkPolicy => self.network_policies.wait_until_ready().await,
            };
            r.map_err(|_| SourceGone(k))?;
        }
        Ok(())
    }

    /// Number of objects of `kind`.
    pub fn len(&self, kind: Kind) -> usize {
        match kind {
            Kind::Node => self.nodes.len(),
            Kind::Pod => self.pods.len(),
            Kind::Namespace => self.namespaces.len(),
            Kind::Service => self.services.len(),
            Kind::EndpointSlice => self.endpoint_slices.len(),
            Kind::NetworkPolicy => self.network_policies.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use std::time::Duration;

    fn node(name: &str) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            ..Node::default()
        }
    }

    #[tokio::test]
    async fn relist_keeps_state_until_init_done_and_barrier_waits() {
        let (view, mut w) = ClusterView::new();
        let mut changes = view.changes(Kind::Node);
        // Not synced before the first InitDone.
        let early = tokio::time::timeout(Duration::from_millis(20), view.synced(&[Kind::Node]));
        assert!(early.await.is_err());
        w.nodes.apply(&Event::Init);
        w.nodes.apply(&Event::InitApply(node("a")));
        assert!(!changes.has_changed().unwrap());
        w.nodes.apply(&Event::InitDone);
        assert!(changes.has_changed().unwrap());
        changes.mark_unchanged();
        view.synced(&[Kind::Node]).await.unwrap();
        assert_eq!(view.nodes.len(), 1);
        // A relist: the old content stays until InitDone, then is replaced.
        w.nodes.apply(&Event::Init);
        w.nodes.apply(&Event::InitApply(node("b")));
        assert_eq!(view.nodes.state()[0].metadata.name.as_deref(), Some("a"));
        w.nodes.apply(&Event::InitDone);
        assert_eq!(view.nodes.state()[0].metadata.name.as_deref(), Some("b"));
        assert!(changes.has_changed().unwrap());
    }
}
