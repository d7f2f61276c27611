//! Conntrack entries as dumped by the kernel, decoded from ctnetlink attributes.

use std::net::{IpAddr, SocketAddr};

use netlink_packet_core::{parse_u16_be, parse_u32_be, DefaultNla, Nla, NLA_TYPE_MASK};
use netlink_packet_netfilter::conntrack::{
    ConntrackAttribute, IPTuple, ProtoTuple, Tuple as Nested,
};

use crate::ConntrackError;

/// `CTA_ID` in `enum ctattr_type` (linux/netfilter/nfnetlink_conntrack.h).
pub(crate) const CTA_ID: u16 = 12;
/// `CTA_ZONE` in `enum ctattr_type`.
pub(crate) const CTA_ZONE: u16 = 18;

/// One direction of a conntrack entry: who sends to whom.
///
/// Ports are 0 for protocols without ports (ICMP, GRE, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tuple {
    /// Source address and port.
    pub src: SocketAddr,
    /// Destination address and port.
    pub dst: SocketAddr,
}

/// A conntrack entry of the current network namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The layer 4 protocol number (`libc::IPPROTO_UDP`, ...).
    pub proto: u8,
    /// The original direction, as the first packet was seen (before NAT).
    pub orig: Tuple,
    /// The reply direction: after DNAT its source is the chosen backend.
    pub reply: Tuple,
    /// The conntrack zone, when not the default one.
    pub zone: Option<u16>,
    /// The kernel's id of the entry: a hash of its address and original tuple.
    pub(crate) id: Option<u32>,
    /// `CTA_TUPLE_REPLY` as the kernel sent it, sent back verbatim to delete the entry.
    pub(crate) reply_raw: Vec<Nested>,
}

impl Entry {
    /// Decodes the attributes of one `IPCTNL_MSG_CT_NEW` dump answer.
    pub(crate) fn parse(attrs: Vec<ConntrackAttribute>) -> Result<Entry, ConntrackError> {
        let (mut orig, mut reply, mut zone, mut id) = (None, None, None, None);
        for attr in attrs {
            match attr {
                ConntrackAttribute::CtaTupleOrig(t) => orig = Some(t),
                ConntrackAttribute::CtaTupleReply(t) => reply = Some(t),
                ConntrackAttribute::Other(nla) => match nla.kind() & NLA_TYPE_MASK {
                    CTA_ZONE => {
                        zone = Some(parse_u16_be(&value(&nla)).map_err(ConntrackError::Decode)?)
                    }
                    CTA_ID => {
                        id = Some(parse_u32_be(&value(&nla)).map_err(ConntrackError::Decode)?)
                    }
                    _ => {}
                },
                _ => {}
            }
        }
        let orig = orig.ok_or(ConntrackError::Missing("CTA_TUPLE_ORIG"))?;
        let reply_raw = reply.ok_or(ConntrackError::Missing("CTA_TUPLE_REPLY"))?;
        let (proto, orig) = decode_tuple(&orig)?;
        let (_, reply) = decode_tuple(&reply_raw)?;
        Ok(Entry {
            proto,
            orig,
            reply,
            zone,
            id,
            reply_raw,
        })
    }
}

fn value(nla: &DefaultNla) -> Vec<u8> {
    let mut buf = vec![0; nla.value_len()];
    nla.emit_value(&mut buf);
    buf
}

/// Decodes `CTA_TUPLE_IP` and `CTA_TUPLE_PROTO` of one direction.
fn decode_tuple(parts: &[Nested]) -> Result<(u8, Tuple), ConntrackError> {
    let (mut src, mut dst, mut proto) = (None, None, None);
    let (mut sport, mut dport) = (0, 0);
    for part in parts {
        match part {
            Nested::Ip(ips) => {
                for ip in ips {
                    match ip {
                        IPTuple::SourceAddress(a) => src = Some(*a),
                        IPTuple::DestinationAddress(a) => dst = Some(*a),
                        _ => {}
                    }
                }
            }
            Nested::Proto(fields) => {
                for field in fields {
                    match field {
                        ProtoTuple::Protocol(p) => proto = Some(u8::from(*p)),
                        ProtoTuple::SourcePort(p) => sport = *p,
                        ProtoTuple::DestinationPort(p) => dport = *p,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    let src: IpAddr = src.ok_or(ConntrackError::Missing("CTA_TUPLE_IP source"))?;
    let dst: IpAddr = dst.ok_or(ConntrackError::Missing("CTA_TUPLE_IP destination"))?;
    let proto = proto.ok_or(ConntrackError::Missing("CTA_PROTO_NUM"))?;
    let tuple = Tuple {
        src: SocketAddr::new(src, sport),
        dst: SocketAddr::new(dst, dport),
    };
    Ok((proto, tuple))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;
    use netlink_packet_core::{Emitable, NlaBuffer, Parseable, NLA_F_NESTED};
    use netlink_packet_netfilter::conntrack::Protocol;

    /// The attributes of a dumped entry: `orig` then `reply`, ports and protocol included.
    pub(crate) fn attrs(
        proto: u8,
        orig: (&str, &str),
        reply: (&str, &str),
    ) -> Vec<ConntrackAttribute> {
        let dir = |(src, dst): (&str, &str)| -> Vec<Nested> {
            let (src, dst): (SocketAddr, SocketAddr) = (src.parse().unwrap(), dst.parse().unwrap());
            vec![
                Nested::Ip(vec![
                    IPTuple::SourceAddress(src.ip()),
                    IPTuple::DestinationAddress(dst.ip()),
                ]),
                Nested::Proto(vec![
                    ProtoTuple::Protocol(Protocol::from(proto)),
                    ProtoTuple::SourcePort(src.port()),
                    ProtoTuple::DestinationPort(dst.port()),
                ]),
            ]
        };
        vec![
            ConntrackAttribute::CtaTupleOrig(dir(orig)),
            ConntrackAttribute::CtaTupleReply(dir(reply)),
        ]
    }

    #[test]
    fn parses_both_directions() {
        let e = Entry::parse(attrs(
            17,
            ("10.0.0.5:40000", "10.96.0.10:53"),
            ("10.1.0.1:5353", "10.0.0.5:40000"),
        ))
        .unwrap();
        assert_eq!(e.proto, 17);
        assert_eq!(e.orig.dst, "10.96.0.10:53".parse().unwrap());
        assert_eq!(e.reply.src, "10.1.0.1:5353".parse().unwrap());
        assert_eq!((e.zone, e.id), (None, None));
    }

    #[test]
    fn parses_ipv6_zone_and_id() {
        let mut a = attrs(
            6,
            ("[fd00::5]:40000", "[fd00:96::10]:80"),
            ("[fd00:1::1]:8080", "[fd00::5]:40000"),
        );
        a.push(ConntrackAttribute::Other(DefaultNla::new(
            CTA_ZONE,
            vec![0, 7],
        )));
        a.push(ConntrackAttribute::Other(DefaultNla::new(
            CTA_ID,
            vec![0, 0, 1, 2],
        )));
        let e = Entry::parse(a).unwrap();
        assert_eq!(e.orig.dst, "[fd00:96::10]:80".parse().unwrap());
        assert_eq!(e.reply.src, "[fd00:1::1]:8080".parse().unwrap());
        assert_eq!((e.zone, e.id), (Some(7), Some(258)));
    }

    #[test]
    fn an_entry_without_reply_is_an_error() {
        let mut a = attrs(
            17,
            ("10.0.0.5:1", "10.0.0.6:2"),
            ("10.0.0.6:2", "10.0.0.5:1"),
        );
        a.pop();
        assert!(matches!(
            Entry::parse(a),
            Err(ConntrackError::Missing("CTA_TUPLE_REPLY"))
        ));
    }

    #[test]
    fn a_short_zone_is_an_error() {
        let mut a = attrs(
            17,
            ("10.0.0.5:1", "10.0.0.6:2"),
            ("10.0.0.6:2", "10.0.0.5:1"),
        );
        a.push(ConntrackAttribute::Other(DefaultNla::new(
            CTA_ZONE,
            vec![7],
        )));
        assert!(matches!(Entry::parse(a), Err(ConntrackError::Decode(_))));
    }

    #[test]
    fn tuples_are_emitted_nested_and_parse_back() {
        let a = attrs(
            17,
            ("10.0.0.5:40000", "10.96.0.10:53"),
            ("10.1.0.1:5353", "10.0.0.5:40000"),
        );
        let mut buf = vec![0; a[0].buffer_len()];
        a[0].emit(&mut buf);
        let nla = NlaBuffer::new_checked(&buf[..]).unwrap();
        assert!(nla.nested_flag());
        assert_eq!(u16::from_ne_bytes([buf[2], buf[3]]), 1 | NLA_F_NESTED);
        assert_eq!(ConntrackAttribute::parse(&nla).unwrap(), a[0]);
    }
}
