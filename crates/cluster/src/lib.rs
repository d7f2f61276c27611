//! The agent's view of the cluster.
//!
//! Six reflector stores (Nodes, Pods, Namespaces, Services, EndpointSlices, NetworkPolicies)
//! with a change counter per kind and a "synced" barrier. Two sources feed them the same
//! `watcher::Event`s: the Kubernetes API ([`kube_source`], kube-rs watchers) and a directory
//! of manifest files ([`manifests`]). Everything downstream reads the [`ClusterView`] only.

pub mod kube_source;
pub mod manifests;
mod object;
pub mod view;

pub use object::{AnyObject, Kind, ViewObject};
pub use view::{AnyEvent, ClusterView, KindWriter, ViewWriter};

/// Re-exported API types, so that users need not pin k8s-openapi themselves.
pub use k8s_openapi;
/// The event type the stores consume.
pub use kube::runtime::watcher::Event;
