//! Wiring a pod: the veth pair, addresses and routes on both sides.

use std::net::IpAddr;

use ipnet::IpNet;
use podnet_cni_spec::{codes, CniError, CniResult, Interface, IpConfig};
use podnet_netdev::{
    sysctl_write, BridgeSpec, Link, NetNs, NetdevError, Netlink, PortConfig, RouteSpec, VethSpec,
};

use crate::attach::Attachment;
use crate::config::{Config, Mode};
use crate::names;

/// podnet's error code for a kernel refusal.
pub fn nl_error(e: NetdevError) -> CniError {
    let code = match &e {
        NetdevError::Sysctl { .. } | NetdevError::OpenNs { .. } => codes::IO_FAILURE,
        _ => codes::NETLINK,
    };
    CniError::new(
        code,
        e.to_string(),
        std::error::Error::source(&e)
            .map(|s| s.to_string())
            .unwrap_or_default(),
    )
}

/// The sockets and facts of one ADD.
pub struct Wiring<'a> {
    /// Configuration.
    pub cfg: &'a Config,
    /// The attachment.
    pub att: &'a Attachment,
    /// Socket in the node's namespace.
    pub host: &'a mut Netlink,
    /// Socket in the pod's namespace.
    pub pod: &'a mut Netlink,
    /// The pod's namespace.
    pub pod_ns: &'a NetNs,
    /// MAC for the pod interface.
    pub mac: Option<[u8; 6]>,
}

/// What ADD made, for rollback.
#[derive(Debug, Default)]
pub struct Made {
    /// The host veth was created by this ADD.
    pub veth: bool,
}

impl Wiring<'_> {
    /// Wires the pod for the IPAM result `ipam` (ips and routes); fills in the interfaces.
    pub fn run(&mut self, ipam: &CniResult, made: &mut Made) -> Result<CniResult, CniError> {
        let has_v6 = ipam.ips.iter().any(|ip| ip.address.addr().is_ipv6());
        enable_forwarding(ipam)?;
        let bridge = match self.cfg.net.mode {
            Mode::Bridge => Some(self.ensure_bridge(ipam)?),
            Mode::Ptp => None,
        };
        self.host
            .create_veth(&VethSpec {
                name: &self.att.host_veth,
                peer_name: self.att.ifname(),
                peer_ns: self.pod_ns,
                mtu: self.cfg.net.mtu,
                peer_mac: self.mac,
                master: bridge.as_ref().map(|b| b.index),
                // Left down when its IPv6 must be set up before it comes alive.
                up: !has_v6,
            })
            .map_err(|e| veth_error(e, self.att.ifname()))?;
        made.veth = true;
        let hv = self
            .host
            .require_link(&self.att.host_veth)
            .map_err(nl_error)?;
        let hairpin = bridge.is_some() && self.cfg.net.hairpin_mode;
        if bridge.is_none() && has_v6 {
            // Its link-local must not go tentative: NDP towards the pod needs it at once.
            no_dad(&hv.name)?;
        }
        let port = PortConfig {
            alias: Some(&self.att.alias),
            hairpin,
            // A bridge port needs no IPv6 of its own. Without a link-local the kernel deletes
            // the veth in ~22 ms instead of ~40 ms on a node with IPv6 forwarding on.
            no_link_local: bridge.is_some(),
            up: false,
        };
        self.host
            .configure_port(hv.index, &port)
            .map_err(nl_error)?;
        if bridge.is_some() || has_v6 {
            self.host.set_up(hv.index, false).map_err(nl_error)?;
        }
        let pl = self.pod_side(ipam, has_v6)?;
        if bridge.is_none() {
            self.ptp_host_side(ipam, &hv)?;
        }
        Ok(self.result(ipam, bridge, hv, pl))
    }

    fn ensure_bridge(&mut self, ipam: &CniResult) -> Result<Link, CniError> {
        let net = &self.cfg.net;
        let spec = BridgeSpec {
            name: &net.bridge,
            mac: names::bridge_mac(&net.bridge),
            mtu: net.mtu,
            promisc: net.promisc_mode,
            up: false,
        };
        let created = self.host.create_bridge(&spec).map_err(nl_error)?;
        if created {
            no_dad(&net.bridge)?;
        }
        let br = self.host.require_link(&net.bridge).map_err(nl_error)?;
        if br.kind.as_deref() != Some("bridge") {
            return Err(CniError::new(
                codes::INVALID_CONFIG,
                format!("{} exists and is not a bridge", net.bridge),
                format!("kind {:?}", br.kind),
            ));
        }
        if !br.up || (net.promisc_mode && !br.promisc) {
            self.host
                .set_up(br.index, net.promisc_mode)
                .map_err(nl_error)?;
        }
        for ip in &ipam.ips {
            if let Some(gw) = ip.gateway {
                let addr =
                    IpNet::new(gw, ip.address.prefix_len()).map_err(|e| bad_gateway(gw, e))?;
                self.host.add_address(br.index, &addr).map_err(nl_error)?;
            }
        }
        Ok(br)
    }

    fn pod_side(&mut self, ipam: &CniResult, has_v6: bool) -> Result<Link, CniError> {
        let ifname = self.att.ifname();
        if has_v6 {
            // No DAD on the pod interface: its link-local is usable at once too.
            let key = format!("net/ipv6/conf/{ifname}/accept_dad");
            self.pod_ns
                .run(|| sysctl_write(&key, "0"))
                .map_err(nl_error)?
                .map_err(nl_error)?;
        }
        let pl = self.pod.require_link(ifname).map_err(nl_error)?;
        self.pod.set_up(pl.index, false).map_err(nl_error)?;
        let ptp = self.cfg.net.mode == Mode::Ptp;
        for ip in &ipam.ips {
            let addr = if ptp {
                IpNet::from(ip.address.addr())
            } else {
                ip.address
            };
            self.pod.add_address(pl.index, &addr).map_err(nl_error)?;
            if let (true, Some(gw)) = (ptp, ip.gateway) {
                self.pod
                    .add_route(&RouteSpec::new(IpNet::from(gw), None, Some(pl.index)))
                    .map_err(nl_error)?;
                let subnet = RouteSpec::new(ip.address.trunc(), Some(gw), Some(pl.index));
                self.pod.add_route(&subnet).map_err(nl_error)?;
            }
        }
        for r in &ipam.routes {
            let gw = r.gw.or_else(|| gateway_for(ipam, r.dst.addr()));
            let mut spec = RouteSpec::new(r.dst, gw, Some(pl.index));
            spec.mtu = r.mtu;
            spec.advmss = r.advmss;
            spec.metric = r.priority;
            spec.table = r.table;
            self.pod.add_route(&spec).map_err(nl_error)?;
        }
        Ok(pl)
    }

    fn ptp_host_side(&mut self, ipam: &CniResult, hv: &Link) -> Result<(), CniError> {
        sysctl_write(&format!("net/ipv4/conf/{}/proxy_arp", hv.name), "1").map_err(nl_error)?;
        for ip in &ipam.ips {
            let gw = ip.gateway.ok_or_else(|| {
                CniError::new(
                    codes::INVALID_CONFIG,
                    "ptp mode needs a gateway for every address",
                    ip.address.to_string(),
                )
            })?;
            self.host
                .add_address(hv.index, &IpNet::from(gw))
                .map_err(nl_error)?;
            let mut route = RouteSpec::new(IpNet::from(ip.address.addr()), None, Some(hv.index));
            route.src = Some(gw);
            self.host.add_route(&route).map_err(nl_error)?;
        }
        Ok(())
    }

    fn result(&self, ipam: &CniResult, bridge: Option<Link>, hv: Link, pl: Link) -> CniResult {
        let mut interfaces: Vec<Interface> = bridge.into_iter().map(|b| iface(&b, None)).collect();
        interfaces.push(iface(&hv, None));
        let sandbox = self.pod_ns.path().display().to_string();
        interfaces.push(iface(&pl, Some(sandbox)));
        let pod_index = interfaces.len() - 1;
        let ptp = self.cfg.net.mode == Mode::Ptp;
        let ips = ipam
            .ips
            .iter()
            .map(|ip| IpConfig {
                address: if ptp {
                    IpNet::from(ip.address.addr())
                } else {
                    ip.address
                },
                gateway: ip.gateway,
                interface: Some(pod_index),
            })
            .collect();
        CniResult {
            interfaces,
            ips,
            routes: ipam.routes.clone(),
            dns: ipam.dns.clone(),
        }
    }
}

fn iface(link: &Link, sandbox: Option<String>) -> Interface {
    Interface {
        name: link.name.clone(),
        mac: Some(link.mac_string()),
        sandbox,
        ..Default::default()
    }
}

/// The gateway of the result's first address of `dst`'s family.
pub fn gateway_for(result: &CniResult, dst: IpAddr) -> Option<IpAddr> {
    result
        .ips
        .iter()
        .filter(|ip| ip.address.addr().is_ipv4() == dst.is_ipv4())
        .find_map(|ip| ip.gateway)
}

/// Turns DAD off on a node-side link (before it goes up) so its link-local is usable at once.
fn no_dad(ifname: &str) -> Result<(), CniError> {
    sysctl_write(&format!("net/ipv6/conf/{ifname}/accept_dad"), "0").map_err(nl_error)
}

fn enable_forwarding(ipam: &CniResult) -> Result<(), CniError> {
    if ipam.ips.iter().any(|ip| ip.address.addr().is_ipv4()) {
        sysctl_write("net/ipv4/ip_forward", "1").map_err(nl_error)?;
    }
    if ipam.ips.iter().any(|ip| ip.address.addr().is_ipv6()) {
        sysctl_write("net/ipv6/conf/all/forwarding", "1").map_err(nl_error)?;
    }
    Ok(())
}

fn veth_error(e: NetdevError, ifname: &str) -> CniError {
    if e.is_exists() {
        return CniError::new(
            IF_EXISTS,
            format!("interface {ifname} (or its host side) already exists"),
            e.to_string(),
        );
    }
    nl_error(e)
}

fn bad_gateway(gw: IpAddr, e: ipnet::PrefixLenError) -> CniError {
    CniError::new(
        codes::INVALID_CONFIG,
        format!("invalid gateway {gw}"),
        e.to_string(),
    )
}

/// podnet's error code: the interface to create already exists.
pub const IF_EXISTS: u32 = 106;
