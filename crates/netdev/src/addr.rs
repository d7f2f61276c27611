use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::{Netlink, Result};

fn family(ip: &IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

fn address_message(index: u32, addr: &IpNet) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.family = family(&addr.addr());
    msg.header.prefix_len = addr.prefix_len();
    msg.header.index = index;
    msg.attributes.push(AddressAttribute::Local(addr.addr()));
    msg.attributes.push(AddressAttribute::Address(addr.addr()));
    msg
}

impl Netlink {
    /// Adds an address without DAD (so IPv6 is usable at once). `Ok(false)` when it was there.
    pub fn add_address(&mut self, index: u32, addr: &IpNet) -> Result<bool> {
        let mut msg = address_message(index, addr);
        if let (IpNet::V4(net), true) = (addr, addr.prefix_len() < 31) {
            msg.attributes
                .push(AddressAttribute::Broadcast(net.broadcast()));
        }
        msg.attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
        let op = format!("add address {addr} to link #{index}");
        self.create(&op, RouteNetlinkMessage::NewAddress(msg))
    }

    /// Replaces (or adds) an address.
    pub fn replace_address(&mut self, index: u32, addr: &IpNet) -> Result<()> {
        let mut msg = address_message(index, addr);
        msg.attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
        let op = format!("replace address {addr} on link #{index}");
        self.change(
            &op,
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
    }

    /// Removes an address; `Ok(false)` when it was not there.
    pub fn delete_address(&mut self, index: u32, addr: &IpNet) -> Result<bool> {
        let msg = address_message(index, addr);
        let op = format!("delete address {addr} from link #{index}");
        self.remove(&op, RouteNetlinkMessage::DelAddress(msg))
    }

    /// The addresses of a link (or of every link when `index` is 0), with prefix length.
    pub fn addresses(&mut self, index: u32) -> Result<Vec<(u32, IpNet)>> {
        let msgs = self.dump(
            "list addresses",
            RouteNetlinkMessage::GetAddress(AddressMessage::default()),
        )?;
        let mut out = Vec::new();
        for msg in msgs {
            let RouteNetlinkMessage::NewAddress(m) = msg else {
                continue;
            };
            if index != 0 && m.header.index != index {
                continue;
            }
            let ip = m.attributes.iter().find_map(|a| match a {
                AddressAttribute::Local(ip) => Some(*ip),
                _ => None,
            });
            let ip = ip.or_else(|| {
                m.attributes.iter().find_map(|a| match a {
                    AddressAttribute::Address(ip) => Some(*ip),
                    _ => None,
                })
            });
            if let Some(net) = ip.and_then(|ip| IpNet::new(ip, m.header.prefix_len).ok()) {
                out.push((m.header.index, net));
            }
        }
        Ok(out)
    }
}
