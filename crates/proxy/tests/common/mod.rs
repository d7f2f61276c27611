//! Builders for Services and EndpointSlices as the API shows them.
#![allow(dead_code)]
#![allow(clippy::unwrap_used)]

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use podnet_proxy::select::NodeFacts;
use serde_json::{json, Value};

pub fn node(name: &str) -> NodeFacts {
    NodeFacts {
        name: name.into(),
        zone: Some("zone-a".into()),
        nodeport_addresses: vec!["172.18.0.1".parse().unwrap(), "fd18::1".parse().unwrap()],
        cluster_cidrs: vec![
            "10.244.0.0/16".parse().unwrap(),
            "fd44::/48".parse().unwrap(),
        ],
        service_cidrs: vec![
            "10.96.0.0/12".parse().unwrap(),
            "fd96::/108".parse().unwrap(),
        ],
    }
}

/// A Service from JSON `spec` (ports, type, ...), `clusterIP` given.
pub fn service(ns: &str, name: &str, spec: Value) -> Service {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"namespace": ns, "name": name},
        "spec": spec,
    }))
    .unwrap()
}

pub fn with_status(mut svc: Service, status: Value) -> Service {
    svc.status = Some(serde_json::from_value(status).unwrap());
    svc
}

/// One endpoint: address, node, ready/serving/terminating.
pub fn ep(addr: &str, node: &str, ready: bool, serving: bool, terminating: bool) -> Value {
    json!({
        "addresses": [addr],
        "nodeName": node,
        "conditions": {"ready": ready, "serving": serving, "terminating": terminating},
    })
}

pub fn ready(addr: &str, node: &str) -> Value {
    ep(addr, node, true, true, false)
}

/// An EndpointSlice of `svc` with `ports` ([{name, port, protocol}]) and `endpoints`.
pub fn slice(
    ns: &str,
    svc: &str,
    suffix: &str,
    family: &str,
    ports: Value,
    endpoints: Vec<Value>,
) -> EndpointSlice {
    serde_json::from_value(json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"namespace": ns, "name": format!("{svc}-{suffix}"),
                     "labels": {"kubernetes.io/service-name": svc}},
        "addressType": family,
        "ports": ports,
        "endpoints": endpoints,
    }))
    .unwrap()
}
