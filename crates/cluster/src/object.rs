//! The six kinds the view holds, and how each is trimmed to the fields podnet uses.

use std::fmt::Debug;

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, Namespace, Node, NodeSpec, NodeStatus, Pod, PodSpec, PodStatus,
    Service,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Annotations with this prefix are podnet's own and survive trimming.
pub const ANNOTATION_PREFIX: &str = "podnet.io/";

/// A kind of object in the view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `v1/Node`
    Node,
    /// `v1/Pod`
    Pod,
    /// `v1/Namespace`
    Namespace,
    /// `v1/Service`
    Service,
    /// `discovery.k8s.io/v1/EndpointSlice`
    EndpointSlice,
    /// `networking.k8s.io/v1/NetworkPolicy`
    NetworkPolicy,
}

impl Kind {
    /// Every kind, in a fixed order.
    pub const ALL: [Kind; 6] = [
        Kind::Node,
        Kind::Pod,
        Kind::Namespace,
        Kind::Service,
        Kind::EndpointSlice,
        Kind::NetworkPolicy,
    ];

    /// Position in [`Kind::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The `kind` field.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Node => "Node",
            Kind::Pod => "Pod",
            Kind::Namespace => "Namespace",
            Kind::Service => "Service",
            Kind::EndpointSlice => "EndpointSlice",
            Kind::NetworkPolicy => "NetworkPolicy",
        }
    }

    /// The `apiVersion` field.
    pub fn api_version(self) -> &'static str {
        match self {
            Kind::Node | Kind::Pod | Kind::Namespace | Kind::Service => "v1",
            Kind::EndpointSlice => "discovery.k8s.io/v1",
            Kind::NetworkPolicy => "networking.k8s.io/v1",
        }
    }

    /// The API resource (plural) name, as RBAC rules spell it.
    pub fn resource(self) -> &'static str {
        match self {
            Kind::Node => "nodes",
            Kind::Pod => "pods",
            Kind::Namespace => "namespaces",
            Kind::Service => "services",
            Kind::EndpointSlice => "endpointslices",
            Kind::NetworkPolicy => "networkpolicies",
        }
    }

    /// Whether objects of this kind live in a namespace.
    pub fn namespaced(self) -> bool {
        !matches!(self, Kind::Node | Kind::Namespace)
    }

    /// The kind for an `apiVersion`/`kind` pair.
    pub fn from_type(api_version: &str, kind: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.name() == kind && k.api_version() == api_version)
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An object type the view holds.
pub trait ViewObject:
    Resource<DynamicType = ()>
    + Clone
    + Debug
    + PartialEq
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
    /// Its kind.
    const KIND: Kind;

    /// Drops what podnet never reads (managed fields, foreign annotations, and per kind
    /// the large parts of spec and status), so memory stays small on big clusters.
    fn trim(&mut self);

    /// Wraps it.
    fn into_any(self) -> AnyObject;
}

fn trim_meta(meta: &mut ObjectMeta, keep_foreign_annotations: bool) {
    meta.managed_fields = None;
    if let Some(ann) = meta.annotations.as_mut() {
        if keep_foreign_annotations {
            ann.remove("kubectl.kubernetes.io/last-applied-configuration");
        } else {
            ann.retain(|k, _| k.starts_with(ANNOTATION_PREFIX));
        }
        if ann.is_empty() {
            meta.annotations = None;
        }
    }
}

impl ViewObject for Node {
    const KIND: Kind = Kind::Node;
    fn trim(&mut self) {
        trim_meta(&mut self.metadata, false);
        self.spec = self.spec.take().map(|s| NodeSpec {
            pod_cidr: s.pod_cidr,
            pod_cidrs: s.pod_cidrs,
            unschedulable: s.unschedulable,
            ..NodeSpec::default()
        });
        self.status = self.status.take().map(|s| NodeStatus {
            addresses: s.addresses,
            ..NodeStatus::default()
        });
    }
    fn into_any(self) -> AnyObject {
        AnyObject::Node(self)
    }
}

impl ViewObject for Pod {
    const KIND: Kind = Kind::Pod;
    fn trim(&mut self) {
        trim_meta(&mut self.metadata, false);
        self.spec = self.spec.take().map(|s| PodSpec {
            node_name: s.node_name,
            hostname: s.hostname,
            subdomain: s.subdomain,
            host_network: s.host_network,
            containers: s
                .containers
                .into_iter()
                .map(|c| Container {
                    name: c.name,
                    ports: c.ports.map(|ports| {
                        ports
                            .into_iter()
                            .map(|p| ContainerPort { host_ip: None, ..p })
                            .collect()
                    }),
                    ..Container::default()
                })
                .collect(),
            ..PodSpec::default()
        });
        self.status = self.status.take().map(|s| PodStatus {
            phase: s.phase,
            pod_ip: s.pod_ip,
            pod_ips: s.pod_ips,
            host_ip: s.host_ip,
            conditions: s.conditions,
            ..PodStatus::default()
        });
    }
    fn into_any(self) -> AnyObject {
        AnyObject::Pod(self)
    }
}

impl ViewObject for Namespace {
    const KIND: Kind = Kind::Namespace;
    fn trim(&mut self) {
        trim_meta(&mut self.metadata, false);
        self.spec = None;
        self.status = None;
    }
    fn into_any(self) -> AnyObject {
        AnyObject::Namespace(self)
    }
}

impl ViewObject for Service {
    const KIND: Kind = Kind::Service;
    fn trim(&mut self) {
        trim_meta(&mut self.metadata, true);
    }
    fn into_any(self) -> AnyObject {
        AnyObject::Service(self)
    }
}

impl ViewObject for EndpointSlice {
    const KIND: Kind = Kind::EndpointSlice;
    fn trim(&mut self) {
        trim_meta(&mut self.metadata, true);
    }
    fn into_any(self) -> AnyObject {
        AnyObject::EndpointSlice(self)
    }
}

impl ViewObject for NetworkPolicy {
    const KIND: Kind = Kind::NetworkPolicy;
    fn trim(&mut self) {
        trim_meta(&mut self.metadata, true);
    }
    fn into_any(self) -> AnyObject {
        AnyObject::NetworkPolicy(self)
    }
}

/// An object of any of the view's kinds.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // short-lived values; boxing buys nothing
pub enum AnyObject {
    /// A Node.
    Node(Node),
    /// A Pod.
    Pod(Pod),
    /// A Namespace.
    Namespace(Namespace),
    /// A Service.
    Service(Service),
    /// An EndpointSlice.
    EndpointSlice(EndpointSlice),
    /// A NetworkPolicy.
    NetworkPolicy(NetworkPolicy),
}

impl AnyObject {
    /// Its kind.
    pub fn kind(&self) -> Kind {
        match self {
            AnyObject::Node(_) => Kind::Node,
            AnyObject::Pod(_) => Kind::Pod,
            AnyObject::Namespace(_) => Kind::Namespace,
            AnyObject::Service(_) => Kind::Service,
            AnyObject::EndpointSlice(_) => Kind::EndpointSlice,
            AnyObject::NetworkPolicy(_) => Kind::NetworkPolicy,
        }
    }

    /// Its metadata.
    pub fn meta(&self) -> &ObjectMeta {
        match self {
            AnyObject::Node(o) => &o.metadata,
            AnyObject::Pod(o) => &o.metadata,
            AnyObject::Namespace(o) => &o.metadata,
            AnyObject::Service(o) => &o.metadata,
            AnyObject::EndpointSlice(o) => &o.metadata,
            AnyObject::NetworkPolicy(o) => &o.metadata,
        }
    }

    /// `(kind, namespace, name)`: unique within a cluster.
    pub fn key(&self) -> (Kind, String, String) {
        let m = self.meta();
        (
            self.kind(),
            m.namespace.clone().unwrap_or_default(),
            m.name.clone().unwrap_or_default(),
        )
    }

    /// Decodes a JSON object of the given kind, trims it and fills in the defaults the API
    /// server would (namespace `default`).
    pub fn from_value(
        kind: Kind,
        value: serde_json::Value,
    ) -> Result<AnyObject, serde_json::Error> {
        fn decode<K: ViewObject>(v: serde_json::Value) -> Result<AnyObject, serde_json::Error> {
            let mut o: K = serde_json::from_value(v)?;
            if K::KIND.namespaced() && o.meta().namespace.is_none() {
                o.meta_mut().namespace = Some("default".into());
            }
            o.trim();
            Ok(o.into_any())
        }
        match kind {
            Kind::Node => decode::<Node>(value),
            Kind::Pod => decode::<Pod>(value),
            Kind::Namespace => decode::<Namespace>(value),
            Kind::Service => decode::<Service>(value),
            Kind::EndpointSlice => decode::<EndpointSlice>(value),
            Kind::NetworkPolicy => decode::<NetworkPolicy>(value),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn kinds_round_trip_their_type() {
        for k in Kind::ALL {
            assert_eq!(Kind::from_type(k.api_version(), k.name()), Some(k));
            assert_eq!(Kind::ALL[k.index()], k);
        }
        assert_eq!(Kind::from_type("apps/v1", "Deployment"), None);
        assert_eq!(Kind::from_type("v1", "EndpointSlice"), None);
    }

    #[test]
    fn trimming_keeps_what_podnet_reads() {
        let v = serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "a", "labels": {"app": "x"},
                "annotations": {"podnet.io/x": "1", "foo": "bar"},
                "managedFields": [{"manager": "kubectl"}]},
            "spec": {"nodeName": "node-1", "hostname": "h", "subdomain": "s",
                "containers": [{"name": "c", "image": "big", "command": ["sleep"],
                    "env": [{"name": "E", "value": "v"}],
                    "ports": [{"containerPort": 80, "name": "http", "protocol": "TCP"}]}],
                "volumes": [{"name": "v", "emptyDir": {}}]},
            "status": {"podIP": "10.0.0.1", "phase": "Running",
                "containerStatuses": [{"name": "c", "image": "big", "imageID": "x", "ready": true, "restartCount": 0}],
                "conditions": [{"type": "Ready", "status": "True"}]}
        });
        let AnyObject::Pod(p) = AnyObject::from_value(Kind::Pod, v).unwrap() else {
            panic!("not a pod")
        };
        assert_eq!(p.metadata.namespace.as_deref(), Some("default"));
        assert!(p.metadata.managed_fields.is_none());
        let ann = p.metadata.annotations.unwrap();
        assert_eq!(ann.len(), 1);
        assert!(ann.contains_key("podnet.io/x"));
        let spec = p.spec.unwrap();
        assert_eq!(spec.node_name.as_deref(), Some("node-1"));
        assert_eq!(spec.subdomain.as_deref(), Some("s"));
        assert!(spec.volumes.is_none());
        let c = &spec.containers[0];
        assert!(c.image.is_none() && c.command.is_none() && c.env.is_none());
        assert_eq!(c.ports.as_ref().unwrap()[0].name.as_deref(), Some("http"));
        let st = p.status.unwrap();
        assert_eq!(st.pod_ip.as_deref(), Some("10.0.0.1"));
        assert!(st.container_statuses.is_none());
        assert_eq!(st.conditions.unwrap().len(), 1);
    }
}
