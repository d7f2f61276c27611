//! VXLAN devices, permanent neighbours and FDB entries (what podnet's VXLAN routing programs).

use std::net::{IpAddr, Ipv4Addr};

use netlink_packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVxlan, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::{Netlink, Result};

/// A VXLAN device to create (learning off: podnet programs every entry).
#[derive(Debug)]
pub struct VxlanSpec<'a> {
    /// Device name.
    pub name: &'a str,
    /// VXLAN network identifier.
    pub vni: u32,
    /// UDP port.
    pub port: u16,
    /// Local underlay address.
    pub local: Ipv4Addr,
    /// Underlay device index.
    pub link: Option<u32>,
    /// The VTEP MAC.
    pub mac: [u8; 6],
    /// MTU (underlay MTU minus 50).
    pub mtu: Option<u32>,
}

/// A permanent neighbour (`ip neigh replace IP lladdr MAC dev X nud permanent`) or, with
/// `fdb`, a bridge FDB entry of a VXLAN device (`bridge fdb append MAC dev X dst IP self`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Neighbour {
    /// Device index.
    pub ifindex: u32,
    /// The IP (neighbour) or remote underlay address (FDB).
    pub ip: IpAddr,
    /// The MAC.
    pub mac: [u8; 6],
    /// An FDB entry rather than an IP neighbour.
    pub fdb: bool,
}

impl Neighbour {
    fn to_message(&self) -> NeighbourMessage {
        let mut msg = NeighbourMessage::default();
        msg.header.ifindex = self.ifindex;
        msg.header.state = NeighbourState::Permanent;
        msg.header.family = match (self.fdb, self.ip) {
            (true, _) => AddressFamily::Bridge,
            (false, IpAddr::V4(_)) => AddressFamily::Inet,
            (false, IpAddr::V6(_)) => AddressFamily::Inet6,
        };
        if self.fdb {
            msg.header.flags = NeighbourFlags::Own;
        }
        let dst = match self.ip {
            IpAddr::V4(v4) => NeighbourAddress::Inet(v4),
            IpAddr::V6(v6) => NeighbourAddress::Inet6(v6),
        };
        msg.attributes.push(NeighbourAttribute::Destination(dst));
        msg.attributes
            .push(NeighbourAttribute::LinkLayerAddress(self.mac.to_vec()));
        msg
    }

    fn from_message(msg: NeighbourMessage) -> Option<Neighbour> {
        // NUD_PERMANENT, possibly with NUD_NOARP (VXLAN FDB entries answer 0xc0).
        if u16::from(msg.header.state) & 0x80 == 0 {
            return None;
        }
        let mut ip = None;
        let mut mac = None;
        for a in msg.attributes {
            match a {
                NeighbourAttribute::Destination(NeighbourAddress::Inet(v4)) => {
                    ip = Some(IpAddr::V4(v4))
                }
                NeighbourAttribute::Destination(NeighbourAddress::Inet6(v6)) => {
                    ip = Some(IpAddr::V6(v6))
                }
                // FDB answers (AF_BRIDGE) carry the remote address as raw bytes.
                NeighbourAttribute::Destination(NeighbourAddress::Other(raw)) => ip = raw_ip(&raw),
                NeighbourAttribute::LinkLayerAddress(l) => {
                    mac = <[u8; 6]>::try_from(l.as_slice()).ok()
                }
                _ => {}
            }
        }
        Some(Neighbour {
            ifindex: msg.header.ifindex,
            ip: ip?,
            mac: mac?,
            fdb: msg.header.family == AddressFamily::Bridge,
        })
    }
}

fn raw_ip(raw: &[u8]) -> Option<IpAddr> {
    if let Ok(v4) = <[u8; 4]>::try_from(raw) {
        return Some(IpAddr::from(v4));
    }
    <[u8; 16]>::try_from(raw).ok().map(IpAddr::from)
}

impl Netlink {
    /// Creates a VXLAN device, up. `Ok(false)` when it already existed.
    pub fn create_vxlan(&mut self, spec: &VxlanSpec<'_>) -> Result<bool> {
        let mut data = vec![
            InfoVxlan::Id(spec.vni),
            InfoVxlan::Local(spec.local),
            InfoVxlan::Port(spec.port),
            InfoVxlan::Learning(false),
        ];
        if let Some(link) = spec.link {
            data.push(InfoVxlan::Link(link));
        }
        let mut msg = LinkMessage::default();
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        msg.attributes
            .push(LinkAttribute::IfName(spec.name.to_string()));
        msg.attributes
            .push(LinkAttribute::Address(spec.mac.to_vec()));
        if let Some(mtu) = spec.mtu {
            msg.attributes.push(LinkAttribute::Mtu(mtu));
        }
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Vxlan),
            LinkInfo::Data(InfoData::Vxlan(data)),
        ]));
        let op = format!("create vxlan {}", spec.name);
        self.create(&op, RouteNetlinkMessage::NewLink(msg))
    }

    /// Adds or replaces a permanent neighbour or FDB entry.
    pub fn replace_neighbour(&mut self, n: &Neighbour) -> Result<()> {
        let op = format!("replace neighbour {} on link #{}", n.ip, n.ifindex);
        let msg = RouteNetlinkMessage::NewNeighbour(n.to_message());
        self.change(&op, msg, NLM_F_CREATE | NLM_F_REPLACE)
    }

    /// Deletes a neighbour or FDB entry; `Ok(false)` when it was not there.
    pub fn delete_neighbour(&mut self, n: &Neighbour) -> Result<bool> {
        let op = format!("delete neighbour {} on link #{}", n.ip, n.ifindex);
        self.remove(&op, RouteNetlinkMessage::DelNeighbour(n.to_message()))
    }

    /// The permanent neighbours (`fdb` false) or FDB entries (`fdb` true) of link `ifindex`.
    pub fn neighbours(&mut self, ifindex: u32, fdb: bool) -> Result<Vec<Neighbour>> {
        let families: &[AddressFamily] = if fdb {
            &[AddressFamily::Bridge]
        } else {
            &[AddressFamily::Inet, AddressFamily::Inet6]
        };
        let mut out = Vec::new();
        for family in families {
            let mut msg = NeighbourMessage::default();
            msg.header.family = *family;
            let answers = self.dump("list neighbours", RouteNetlinkMessage::GetNeighbour(msg))?;
            out.extend(answers.into_iter().filter_map(|m| match m {
                RouteNetlinkMessage::NewNeighbour(n) => Neighbour::from_message(n),
                _ => None,
            }));
        }
        out.retain(|n| n.ifindex == ifindex && n.fdb == fdb);
        Ok(out)
    }
}
