//! VXLAN routing (Flannel's layout): one VXLAN device per node holding the network address
//! of its own pod CIDR as a /32; per remote node a permanent neighbour (remote VTEP IP →
//! remote VTEP MAC), an FDB entry (remote VTEP MAC → remote underlay address) and an on-link
//! route (remote pod CIDR via remote VTEP IP). IPv6 pod CIDRs ride the same IPv4 underlay:
//! their network address is a second VTEP address with the same MAC.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;
use podnet_netdev::{Neighbour, Netlink, RouteSpec, VxlanSpec};

use crate::{reconcile, NodeInfo, Plan, RoutingError};

/// VXLAN settings.
#[derive(Debug, Clone)]
pub struct VxlanConfig {
    /// Device name.
    pub device: String,
    /// VNI.
    pub vni: u32,
    /// UDP port.
    pub port: u16,
    /// MTU of the underlay; the device gets 50 bytes less.
    pub underlay_mtu: u32,
}

impl Default for VxlanConfig {
    fn default() -> Self {
        VxlanConfig {
            device: "podnet.vxlan".into(),
            vni: 1,
            port: 8472,
            underlay_mtu: 1500,
        }
    }
}

/// VXLAN encapsulation overhead (outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8).
pub const VXLAN_OVERHEAD: u32 = 50;

/// A node's VTEP MAC: published on its Node (kube source) or derived from its name, so it
/// stays the same across restarts.
pub fn vtep_mac(node: &NodeInfo) -> [u8; 6] {
    if let Some(mac) = node.vtep_mac {
        return mac;
    }
    // FNV-1a over the name: stable, no dependency.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in node.name.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let b = h.to_be_bytes();
    [0x02 | (b[0] & 0xfc), b[1], b[2], b[3], b[4], b[5]]
}

/// The node's pod CIDRs, both families, normalised to their network.
fn cidrs(node: &NodeInfo) -> Vec<IpNet> {
    let mut c: Vec<IpNet> = node.pod_cidrs.iter().map(|c| c.trunc()).collect();
    c.sort();
    c.dedup();
    c
}

/// The host address of a pod CIDR's network (`10.244.1.0/32`, `fd00:10:244:1::/128`): the
/// next hop remote nodes use for it.
fn gateway_net(c: &IpNet) -> IpNet {
    IpNet::from(c.network())
}

fn v4_address(node: &NodeInfo) -> Option<Ipv4Addr> {
    match node.address(true) {
        Some(IpAddr::V4(a)) => Some(a),
        _ => None,
    }
}

/// What a reconcile of the VXLAN device changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct VxlanPlan {
    /// Route changes.
    pub routes: Plan,
    /// Neighbour and FDB entries written or deleted, and the device/address if created.
    pub entries: usize,
}

impl VxlanPlan {
    /// Number of kernel writes.
    pub fn operations(&self) -> usize {
        self.routes.operations() + self.entries
    }
}

/// Programs VXLAN routing on node `me` for `nodes`. Writes nothing when nothing changed.
pub fn reconcile_vxlan(
    nl: &mut Netlink,
    cfg: &VxlanConfig,
    me: &NodeInfo,
    nodes: &[NodeInfo],
) -> Result<VxlanPlan, RoutingError> {
    let mut plan = VxlanPlan::default();
    let own = cidrs(me);
    let Some(local) = v4_address(me) else {
        return Ok(plan);
    };
    if own.is_empty() {
        return Ok(plan);
    }
    let ifindex = ensure_device(nl, cfg, me, local, &own, &mut plan)?;
    let remotes: Vec<(&NodeInfo, Ipv4Addr, Vec<IpNet>)> = nodes
        .iter()
        .filter(|n| n.name != me.name)
        .filter_map(|n| Some((n, v4_address(n)?, cidrs(n))))
        .filter(|(_, _, c)| !c.is_empty())
        .collect();
    let neigh: Vec<Neighbour> = remotes
        .iter()
        .flat_map(|(n, _, cs)| {
            cs.iter().map(|c| Neighbour {
                ifindex,
                ip: c.network(),
                mac: vtep_mac(n),
                fdb: false,
            })
        })
        .collect();
    let fdb: Vec<Neighbour> = remotes
        .iter()
        .map(|(n, a, _)| Neighbour {
            ifindex,
            ip: IpAddr::V4(*a),
            mac: vtep_mac(n),
            fdb: true,
        })
        .collect();
    plan.entries += sync_entries(nl, ifindex, false, &neigh)?;
    plan.entries += sync_entries(nl, ifindex, true, &fdb)?;
    let mut routes: Vec<RouteSpec> = remotes
        .iter()
        .flat_map(|(_, _, cs)| cs.iter())
        .map(|c| {
            let mut r = RouteSpec::new(*c, Some(c.network()), Some(ifindex));
            r.onlink = true;
            r
        })
        .collect();
    routes.sort_by_key(|r| r.dst);
    plan.routes = reconcile(nl, &routes)?;
    Ok(plan)
}

fn ensure_device(
    nl: &mut Netlink,
    cfg: &VxlanConfig,
    me: &NodeInfo,
    local: Ipv4Addr,
    own: &[IpNet],
    plan: &mut VxlanPlan,
) -> Result<u32, RoutingError> {
    let spec = VxlanSpec {
        name: &cfg.device,
        vni: cfg.vni,
        port: cfg.port,
        local,
        link: None,
        mac: vtep_mac(me),
        mtu: Some(cfg.underlay_mtu - VXLAN_OVERHEAD),
    };
    let dev = match nl.link_by_name(&cfg.device)? {
        Some(dev) => dev,
        None => {
            nl.create_vxlan(&spec)?;
            plan.entries += 1;
            nl.require_link(&cfg.device)?
        }
    };
    for c in own {
        if nl.add_address(dev.index, &gateway_net(c))? {
            plan.entries += 1;
        }
    }
    Ok(dev.index)
}

/// Makes the permanent entries of `ifindex` equal `want`; returns the number of writes.
fn sync_entries(
    nl: &mut Netlink,
    ifindex: u32,
    fdb: bool,
    want: &[Neighbour],
) -> Result<usize, RoutingError> {
    let have = nl.neighbours(ifindex, fdb)?;
    let have_set: HashSet<&Neighbour> = have.iter().collect();
    let want_set: HashSet<&Neighbour> = want.iter().collect();
    let mut writes = 0;
    for h in have.iter().filter(|h| !want_set.contains(h)) {
        nl.delete_neighbour(h)?;
        writes += 1;
    }
    for w in want.iter().filter(|w| !have_set.contains(w)) {
        nl.replace_neighbour(w)?;
        writes += 1;
    }
    Ok(writes)
}
