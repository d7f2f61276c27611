use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteMetric,
    RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::{Netlink, Result};

/// The route protocol number podnet tags its routes with (`ip route … proto 122`), so that it
/// only ever removes routes it made.
pub const PODNET_ROUTE_PROTO: u8 = 122;

/// A unicast route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// Destination.
    pub dst: IpNet,
    /// Next hop.
    pub gw: Option<IpAddr>,
    /// Output interface index.
    pub oif: Option<u32>,
    /// `scope link` (a directly connected destination).
    pub scope_link: bool,
    /// `onlink`: the gateway is on the link even without a covering prefix.
    pub onlink: bool,
    /// Routing table (None: main).
    pub table: Option<u32>,
    /// Metric / priority.
    pub metric: Option<u32>,
    /// Preferred source address.
    pub src: Option<IpAddr>,
    /// Path MTU.
    pub mtu: Option<u32>,
    /// Advertised MSS.
    pub advmss: Option<u32>,
    /// Protocol tag (defaults to [`PODNET_ROUTE_PROTO`] when built with [`RouteSpec::new`]).
    pub protocol: u8,
}

impl RouteSpec {
    /// A route to `dst` through `gw` (or on-link when `gw` is None) tagged as podnet's.
    pub fn new(dst: IpNet, gw: Option<IpAddr>, oif: Option<u32>) -> RouteSpec {
        RouteSpec {
            dst: dst.trunc(),
            gw,
            oif,
            scope_link: gw.is_none(),
            onlink: false,
            table: None,
            metric: None,
            src: None,
            mtu: None,
            advmss: None,
            protocol: PODNET_ROUTE_PROTO,
        }
    }

    fn family(&self) -> AddressFamily {
        match self.dst {
            IpNet::V4(_) => AddressFamily::Inet,
            IpNet::V6(_) => AddressFamily::Inet6,
        }
    }

    fn to_message(&self) -> RouteMessage {
        let mut msg = RouteMessage::default();
        msg.header.address_family = self.family();
        msg.header.destination_prefix_length = self.dst.prefix_len();
        msg.header.protocol = RouteProtocol::from(self.protocol);
        msg.header.scope = if self.scope_link {
            RouteScope::Link
        } else {
            RouteScope::Universe
        };
        msg.header.kind = RouteType::Unicast;
        msg.header.table = RouteHeader::RT_TABLE_MAIN;
        if self.onlink {
            msg.header.flags = RouteFlags::Onlink;
        }
        let attrs = &mut msg.attributes;
        if let Some(t) = self
            .table
            .filter(|t| *t != u32::from(RouteHeader::RT_TABLE_MAIN))
        {
            msg.header.table = RouteHeader::RT_TABLE_UNSPEC;
            attrs.push(RouteAttribute::Table(t));
        }
        if self.dst.prefix_len() > 0 {
            attrs.push(RouteAttribute::Destination(RouteAddress::from(
                self.dst.addr(),
            )));
        }
        if let Some(gw) = self.gw {
            attrs.push(RouteAttribute::Gateway(RouteAddress::from(gw)));
        }
        if let Some(oif) = self.oif {
            attrs.push(RouteAttribute::Oif(oif));
        }
        if let Some(src) = self.src {
            attrs.push(RouteAttribute::PrefSource(RouteAddress::from(src)));
        }
        if let Some(m) = self.metric {
            attrs.push(RouteAttribute::Priority(m));
        }
        let mut metrics = Vec::new();
        if let Some(mtu) = self.mtu {
            metrics.push(RouteMetric::Mtu(mtu));
        }
        if let Some(mss) = self.advmss {
            metrics.push(RouteMetric::Advmss(mss));
        }
        if !metrics.is_empty() {
            attrs.push(RouteAttribute::Metrics(metrics));
        }
        msg
    }

    fn from_message(msg: RouteMessage) -> Option<RouteSpec> {
        if msg.header.kind != RouteType::Unicast {
            return None;
        }
        let mut dst = None;
        let mut spec = RouteSpec::new(unspecified(msg.header.address_family)?, None, None);
        spec.scope_link = msg.header.scope == RouteScope::Link;
        spec.onlink = msg.header.flags.contains(RouteFlags::Onlink);
        spec.protocol = u8::from(msg.header.protocol);
        spec.table = Some(u32::from(msg.header.table));
        for attr in msg.attributes {
            match attr {
                RouteAttribute::Destination(a) => dst = route_ip(a),
                RouteAttribute::Gateway(a) => spec.gw = route_ip(a),
                RouteAttribute::Oif(i) => spec.oif = Some(i),
                RouteAttribute::PrefSource(a) => spec.src = route_ip(a),
                RouteAttribute::Priority(p) => spec.metric = Some(p),
                RouteAttribute::Table(t) => spec.table = Some(t),
                RouteAttribute::Metrics(ms) => spec.read_metrics(ms),
                _ => {}
            }
        }
        if let Some(ip) = dst {
            spec.dst = IpNet::new(ip, msg.header.destination_prefix_length).ok()?;
        }
        Some(spec)
    }

    fn read_metrics(&mut self, metrics: Vec<RouteMetric>) {
        for m in metrics {
            match m {
                RouteMetric::Mtu(v) => self.mtu = Some(v),
                RouteMetric::Advmss(v) => self.advmss = Some(v),
                _ => {}
            }
        }
    }
}

fn unspecified(family: AddressFamily) -> Option<IpNet> {
    match family {
        AddressFamily::Inet => Some(IpNet::V4(Default::default())),
        AddressFamily::Inet6 => Some(IpNet::V6(Default::default())),
        _ => None,
    }
}

fn route_ip(a: RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(v6)),
        _ => None,
    }
}

impl Netlink {
    /// Adds a route; `Ok(false)` when an identical one was there.
    pub fn add_route(&mut self, route: &RouteSpec) -> Result<bool> {
        let op = format!("add route {} via {:?}", route.dst, route.gw);
        let msg = RouteNetlinkMessage::NewRoute(route.to_message());
        self.create(&op, msg)
    }

    /// Adds or replaces a route.
    pub fn replace_route(&mut self, route: &RouteSpec) -> Result<()> {
        let op = format!("replace route {} via {:?}", route.dst, route.gw);
        let msg = RouteNetlinkMessage::NewRoute(route.to_message());
        self.change(&op, msg, NLM_F_CREATE | NLM_F_REPLACE)
    }

    /// Deletes a route; `Ok(false)` when there was none.
    pub fn delete_route(&mut self, route: &RouteSpec) -> Result<bool> {
        let op = format!("delete route {}", route.dst);
        let msg = RouteNetlinkMessage::DelRoute(route.to_message());
        self.remove(&op, msg)
    }

    /// Every unicast route of both families in every table.
    pub fn routes(&mut self) -> Result<Vec<RouteSpec>> {
        let mut out = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut msg = RouteMessage::default();
            msg.header.address_family = family;
            let answers = self.dump("list routes", RouteNetlinkMessage::GetRoute(msg))?;
            out.extend(answers.into_iter().filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r) => RouteSpec::from_message(r),
                _ => None,
            }));
        }
        Ok(out)
    }
}
