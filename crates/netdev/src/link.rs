use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::link::{
    AfSpecInet6, AfSpecUnspec, In6AddrGenMode, InfoBridgePort, InfoData, InfoKind, InfoPortData,
    InfoPortKind, InfoVeth, LinkAttribute, LinkExtentMask, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::RouteNetlinkMessage;

use crate::{NetNs, NetdevError, Netlink, Result};

/// What podnet needs to know about a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// Hardware address.
    pub mac: Vec<u8>,
    /// MTU.
    pub mtu: u32,
    /// The bridge (or other controller) it is enslaved to.
    pub master: Option<u32>,
    /// `IFF_UP` is set.
    pub up: bool,
    /// `IFF_PROMISC` is set.
    pub promisc: bool,
    /// The link kind (`veth`, `bridge`, …) when it has one.
    pub kind: Option<String>,
    /// The alias (`ip link set … alias`).
    pub alias: Option<String>,
}

impl Link {
    fn from_message(msg: LinkMessage) -> Link {
        let mut link = Link {
            index: msg.header.index,
            name: String::new(),
            mac: Vec::new(),
            mtu: 0,
            master: None,
            up: msg.header.flags.contains(LinkFlags::Up),
            promisc: msg.header.flags.contains(LinkFlags::Promisc),
            kind: None,
            alias: None,
        };
        for attr in msg.attributes {
            match attr {
                LinkAttribute::IfName(n) => link.name = n,
                LinkAttribute::Address(a) => link.mac = a,
                LinkAttribute::Mtu(m) => link.mtu = m,
                LinkAttribute::Controller(m) => link.master = Some(m),
                LinkAttribute::LinkInfo(infos) => link.kind = kind_of(&infos),
                LinkAttribute::IfAlias(a) => link.alias = Some(a),
                _ => {}
            }
        }
        link
    }

    /// The MAC as `aa:bb:cc:dd:ee:ff`.
    pub fn mac_string(&self) -> String {
        format_mac(&self.mac)
    }
}

fn kind_of(infos: &[LinkInfo]) -> Option<String> {
    infos.iter().find_map(|i| match i {
        LinkInfo::Kind(k) => Some(k.to_string()),
        _ => None,
    })
}

/// Formats a hardware address the way `ip link` does.
pub fn format_mac(mac: &[u8]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A veth pair to create: `name` stays in the socket's namespace, `peer_name` goes to `peer_ns`.
#[derive(Debug)]
pub struct VethSpec<'a> {
    /// Name of the end that stays here (the host side).
    pub name: &'a str,
    /// Name of the other end (the pod side).
    pub peer_name: &'a str,
    /// Namespace of the other end.
    pub peer_ns: &'a NetNs,
    /// MTU of both ends.
    pub mtu: Option<u32>,
    /// Hardware address of the other end.
    pub peer_mac: Option<[u8; 6]>,
    /// Bridge to enslave this end to.
    pub master: Option<u32>,
    /// Bring this end up at once (else leave it down, e.g. to set sysctls first).
    pub up: bool,
}

/// Settings of an existing link (typically a new veth's host end), applied in one request.
#[derive(Debug, Default)]
pub struct PortConfig<'a> {
    /// An alias (`ip link set … alias`).
    pub alias: Option<&'a str>,
    /// Hairpin mode, for a bridge port.
    pub hairpin: bool,
    /// Set `IFF_UP`.
    pub up: bool,
    /// No IPv6 link-local address (`addrgenmode none`): a bridge port needs none, and
    /// without it the kernel deletes the link much faster on an IPv6-forwarding node.
    pub no_link_local: bool,
}

/// A bridge to create.
#[derive(Debug)]
pub struct BridgeSpec<'a> {
    /// Its name.
    pub name: &'a str,
    /// Its hardware address, set at creation so it never changes with its ports.
    pub mac: [u8; 6],
    /// Its MTU.
    pub mtu: Option<u32>,
    /// Whether to set `IFF_PROMISC`.
    pub promisc: bool,
    /// Bring it up at once (else leave it down, e.g. to set sysctls first).
    pub up: bool,
}

fn up_flags(extra: LinkFlags) -> (LinkFlags, LinkFlags) {
    (LinkFlags::Up | extra, LinkFlags::Up | extra)
}

impl Netlink {
    /// Looks a link up by name.
    pub fn link_by_name(&mut self, name: &str) -> Result<Option<Link>> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        msg.attributes.push(skip_stats());
        let op = format!("get link {name}");
        Ok(self
            .get_one(&op, RouteNetlinkMessage::GetLink(msg))?
            .and_then(into_link))
    }

    /// Looks a link up by index.
    pub fn link_by_index(&mut self, index: u32) -> Result<Option<Link>> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.attributes.push(skip_stats());
        let op = format!("get link #{index}");
        Ok(self
            .get_one(&op, RouteNetlinkMessage::GetLink(msg))?
            .and_then(into_link))
    }

    /// Every link of the namespace.
    pub fn links(&mut self) -> Result<Vec<Link>> {
        let msgs = self.dump(
            "list links",
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
        )?;
        Ok(msgs.into_iter().filter_map(into_link).collect())
    }

    /// Creates a veth pair, this end up, the peer directly in its namespace: one round trip.
    pub fn create_veth(&mut self, spec: &VethSpec<'_>) -> Result<()> {
        // The peer cannot be brought up in the same request (veth_open needs both ends
        // registered first): bring it up from its own namespace.
        let mut peer = LinkMessage::default();
        peer.attributes
            .push(LinkAttribute::IfName(spec.peer_name.to_string()));
        peer.attributes
            .push(LinkAttribute::NetNsFd(spec.peer_ns.raw_fd()));
        if let Some(mac) = spec.peer_mac {
            peer.attributes.push(LinkAttribute::Address(mac.to_vec()));
        }
        let mut msg = LinkMessage::default();
        (msg.header.flags, msg.header.change_mask) = up_flags(LinkFlags::empty());
        msg.attributes
            .push(LinkAttribute::IfName(spec.name.to_string()));
        if let Some(mtu) = spec.mtu {
            msg.attributes.push(LinkAttribute::Mtu(mtu));
            peer.attributes.push(LinkAttribute::Mtu(mtu));
        }
        if let Some(master) = spec.master {
            msg.attributes.push(LinkAttribute::Controller(master));
        }
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
        ]));
        let op = format!("create veth {} (peer {})", spec.name, spec.peer_name);
        self.change(
            &op,
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }

    /// Creates a bridge, up, with a fixed MAC. `Ok(false)` when it already existed.
    pub fn create_bridge(&mut self, spec: &BridgeSpec<'_>) -> Result<bool> {
        let extra = if spec.promisc {
            LinkFlags::Promisc
        } else {
            LinkFlags::empty()
        };
        let mut msg = LinkMessage::default();
        (msg.header.flags, msg.header.change_mask) = up_flags(extra);
        msg.attributes
            .push(LinkAttribute::IfName(spec.name.to_string()));
        msg.attributes
            .push(LinkAttribute::Address(spec.mac.to_vec()));
        if let Some(mtu) = spec.mtu {
            msg.attributes.push(LinkAttribute::Mtu(mtu));
        }
        msg.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Bridge,
            )]));
        let op = format!("create bridge {}", spec.name);
        self.create(&op, RouteNetlinkMessage::NewLink(msg))
    }

    /// Sets `IFF_UP` (and `IFF_PROMISC` when asked) on a link.
    pub fn set_up(&mut self, index: u32, promisc: bool) -> Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        let extra = if promisc {
            LinkFlags::Promisc
        } else {
            LinkFlags::empty()
        };
        (msg.header.flags, msg.header.change_mask) = up_flags(extra);
        self.change(
            &format!("set link #{index} up"),
            RouteNetlinkMessage::SetLink(msg),
            0,
        )
    }

    /// Turns hairpin mode on for a bridge port.
    pub fn set_hairpin(&mut self, index: u32) -> Result<()> {
        let port = PortConfig {
            hairpin: true,
            ..Default::default()
        };
        self.configure_port(index, &port)
    }

    /// Applies a [`PortConfig`] in one request.
    pub fn configure_port(&mut self, index: u32, port: &PortConfig<'_>) -> Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        if port.up {
            (msg.header.flags, msg.header.change_mask) = up_flags(LinkFlags::empty());
        }
        if let Some(alias) = port.alias {
            msg.attributes
                .push(LinkAttribute::IfAlias(alias.to_string()));
        }
        if port.no_link_local {
            msg.attributes
                .push(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(
                    vec![AfSpecInet6::AddrGenMode(In6AddrGenMode::None)],
                )]));
        }
        if port.hairpin {
            msg.attributes.push(LinkAttribute::LinkInfo(vec![
                LinkInfo::PortKind(InfoPortKind::Bridge),
                LinkInfo::PortData(InfoPortData::BridgePort(vec![InfoBridgePort::HairpinMode(
                    true,
                )])),
            ]));
        }
        let op = format!("configure link #{index}");
        self.change(&op, RouteNetlinkMessage::NewLink(msg), 0)
    }

    /// Deletes a link by name; `Ok(false)` when there was none.
    pub fn delete_link_by_name(&mut self, name: &str) -> Result<bool> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        self.remove(
            &format!("delete link {name}"),
            RouteNetlinkMessage::DelLink(msg),
        )
    }

    /// Looks a link up by name and fails when it is missing.
    pub fn require_link(&mut self, name: &str) -> Result<Link> {
        self.link_by_name(name)?
            .ok_or_else(|| NetdevError::NoSuchLink(name.to_string()))
    }
}

/// Asks the kernel to leave the (large) statistics out of link answers.
fn skip_stats() -> LinkAttribute {
    LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats])
}

fn into_link(msg: RouteNetlinkMessage) -> Option<Link> {
    match msg {
        RouteNetlinkMessage::NewLink(m) => Some(Link::from_message(m)),
        _ => None,
    }
}
