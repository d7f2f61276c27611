use std::net::IpAddr;

use ipnet::IpNet;
use podnet_netdev::RouteSpec;

/// What routing needs to know of a Node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// `metadata.name`.
    pub name: String,
    /// Its addresses, preferred first (InternalIPs, then ExternalIPs).
    pub addresses: Vec<IpAddr>,
    /// `spec.podCIDRs`.
    pub pod_cidrs: Vec<IpNet>,
    /// Its published VTEP MAC (else derived from its name).
    pub vtep_mac: Option<[u8; 6]>,
}

impl NodeInfo {
    /// Its preferred address of one family.
    pub fn address(&self, ipv4: bool) -> Option<IpAddr> {
        self.addresses.iter().copied().find(|a| a.is_ipv4() == ipv4)
    }
}

/// The host-gw routes node `me` needs: every other node's pod CIDRs via that node's address
/// (same family only), sorted so that equal inputs give equal outputs.
pub fn desired_routes(me: &str, nodes: &[NodeInfo]) -> Vec<RouteSpec> {
    let mut routes: Vec<RouteSpec> = nodes
        .iter()
        .filter(|n| n.name != me)
        .flat_map(|n| {
            n.pod_cidrs.iter().filter_map(move |c| {
                let gw = n.address(c.addr().is_ipv4())?;
                Some(RouteSpec::new(c.trunc(), Some(gw), None))
            })
        })
        .collect();
    routes.sort_by_key(|r| (r.dst, r.gw));
    routes.dedup_by(|a, b| a.dst == b.dst);
    routes
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn node(name: &str, addr: Option<&str>, cidrs: &[&str]) -> NodeInfo {
        NodeInfo {
            name: name.into(),
            addresses: addr.map(|a| a.parse().unwrap()).into_iter().collect(),
            pod_cidrs: cidrs.iter().map(|c| c.parse().unwrap()).collect(),
            vtep_mac: None,
        }
    }

    #[test]
    fn routes_to_every_other_node_with_an_address() {
        let nodes = vec![
            node("a", Some("192.168.0.1"), &["10.244.0.0/24"]),
            node(
                "b",
                Some("192.168.0.2"),
                &["10.244.1.0/24", "fd00:10:244:1::/64"],
            ),
            node("c", None, &["10.244.2.0/24"]),
            node("d", Some("192.168.0.4"), &[]),
        ];
        let r = desired_routes("a", &nodes);
        assert_eq!(
            r.len(),
            1,
            "no route to self, to a node without address, for the wrong family"
        );
        assert_eq!(r[0].dst, "10.244.1.0/24".parse::<IpNet>().unwrap());
        assert_eq!(r[0].gw, Some("192.168.0.2".parse().unwrap()));
        assert_eq!(r[0].protocol, podnet_netdev::PODNET_ROUTE_PROTO);
    }

    #[test]
    fn order_does_not_matter() {
        let a = node("a", Some("192.168.0.1"), &["10.244.0.0/24"]);
        let b = node("b", Some("192.168.0.2"), &["10.244.1.0/24"]);
        let c = node("c", Some("192.168.0.3"), &["10.244.2.0/24"]);
        let one = desired_routes("a", &[a.clone(), b.clone(), c.clone()]);
        let two = desired_routes("a", &[c, a, b]);
        assert_eq!(one, two);
    }
}
