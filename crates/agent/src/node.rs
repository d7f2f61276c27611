//! What routing reads of a Node.

use std::net::IpAddr;

use ipnet::IpNet;
use podnet_cluster::k8s_openapi::api::core::v1::Node;
use podnet_routing::NodeInfo;

/// The annotation holding a node's VTEP MAC (published by its agent with the kube source).
pub const VTEP_MAC_ANNOTATION: &str = "podnet.io/vtep-mac";

/// A Node's routing facts: addresses (InternalIPs first, then ExternalIPs), pod CIDRs
/// (`spec.podCIDRs`, else `spec.podCIDR`) and its published VTEP MAC. Unparsable values are
/// skipped, so one bad Node cannot stop routing to the others.
pub fn node_info(node: &Node) -> NodeInfo {
    let name = node.metadata.name.clone().unwrap_or_default();
    let mut addresses: Vec<IpAddr> = Vec::new();
    if let Some(status) = &node.status {
        for kind in ["InternalIP", "ExternalIP"] {
            for a in status.addresses.iter().flatten() {
                if a.type_ == kind {
                    if let Ok(ip) = a.address.parse::<IpAddr>() {
                        if !addresses.contains(&ip) {
                            addresses.push(ip);
                        }
                    }
                }
            }
        }
    }
    let mut pod_cidrs: Vec<IpNet> = Vec::new();
    if let Some(spec) = &node.spec {
        let listed = spec.pod_cidrs.iter().flatten();
        for c in listed.chain(spec.pod_cidr.iter()) {
            if let Ok(net) = c.parse::<IpNet>() {
                let net = net.trunc();
                if !pod_cidrs.contains(&net) {
                    pod_cidrs.push(net);
                }
            }
        }
    }
    let vtep_mac = node
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(VTEP_MAC_ANNOTATION))
        .and_then(|m| parse_mac(m));
    NodeInfo {
        name,
        addresses,
        pod_cidrs,
        vtep_mac,
    }
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut out {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn internal_before_external_and_bad_values_skipped() {
        let n: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n", "annotations": {VTEP_MAC_ANNOTATION: "02:aa:bb:cc:dd:ee"}},
            "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24", "fd00:1::/64", "junk"]},
            "status": {"addresses": [
                {"type": "ExternalIP", "address": "203.0.113.5"},
                {"type": "Hostname", "address": "n"},
                {"type": "InternalIP", "address": "192.168.0.5"},
                {"type": "InternalIP", "address": "fd00::5"},
                {"type": "InternalIP", "address": "bad"}]}
        }))
        .unwrap();
        let i = node_info(&n);
        assert_eq!(i.address(true), Some("192.168.0.5".parse().unwrap()));
        assert_eq!(i.address(false), Some("fd00::5".parse().unwrap()));
        assert_eq!(i.addresses.len(), 3);
        assert_eq!(i.pod_cidrs.len(), 2);
        assert_eq!(i.vtep_mac, Some([2, 0xaa, 0xbb, 0xcc, 0xdd, 0xee]));
        assert_eq!(parse_mac("02:aa:bb:cc:dd"), None);
        assert_eq!(parse_mac("02:aa:bb:cc:dd:ee:ff"), None);
    }
}
