//! A synchronous ctnetlink socket: one dump, one delete at a time.

use std::io;
use std::net::IpAddr;

use netlink_packet_core::{
    DefaultNla, NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_netfilter::conntrack::{ConntrackAttribute, ConntrackMessage};
use netlink_packet_netfilter::{
    NetfilterHeader, NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily,
};
use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};

use crate::entry::{CTA_ID, CTA_ZONE};
use crate::{ConntrackError, Entry};

/// `NFNETLINK_V0` (linux/netfilter/nfnetlink.h).
const NFNETLINK_V0: u8 = 0;

/// A ctnetlink socket of the namespace it was opened in.
#[derive(Debug)]
pub(crate) struct Ctnetlink {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl Ctnetlink {
    /// Opens a socket in the calling thread's network namespace.
    pub(crate) fn open() -> Result<Ctnetlink, ConntrackError> {
        let mut socket = Socket::new(NETLINK_NETFILTER).map_err(ConntrackError::Socket)?;
        socket.bind_auto().map_err(ConntrackError::Socket)?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(ConntrackError::Socket)?;
        Ok(Ctnetlink {
            socket,
            seq: 0,
            buf: vec![0; 64 * 1024],
        })
    }

    /// The entries of both address families (`AF_UNSPEC` dumps them all) that `keep` selects,
    /// so that only those are held in memory however big the table is.
    pub(crate) fn dump(
        &mut self,
        mut keep: impl FnMut(&Entry) -> bool,
    ) -> Result<Vec<Entry>, ConntrackError> {
        let get = ConntrackMessage::Get(Vec::new());
        self.send(
            NetfilterProtoFamily::Unspec,
            get,
            NLM_F_REQUEST | NLM_F_DUMP,
        )?;
        let mut entries = Vec::new();
        self.collect("dump conntrack table", |msg| {
            if let NetfilterMessageInner::Conntrack(ConntrackMessage::New(attrs)) = msg.inner {
                let entry = Entry::parse(attrs)?;
                if keep(&entry) {
                    entries.push(entry);
                }
            }
            Ok(())
        })?;
        Ok(entries)
    }

    /// Deletes one entry; `Ok(false)` when it is gone.
    ///
    /// The kernel finds the entry by its reply tuple, which names the endpoint, and then
    /// compares `CTA_ID`, which hashes the original tuple: an entry created since the dump is
    /// deleted only if both its tuples are the dumped entry's. (The original tuple alone is not
    /// enough: a client that keeps sending recreates it at once, with a new endpoint in its
    /// reply tuple, often at the same address and so with the same id.)
    pub(crate) fn delete(&mut self, entry: &Entry) -> Result<bool, ConntrackError> {
        let mut attrs = vec![ConntrackAttribute::CtaTupleReply(entry.reply_raw.clone())];
        if let Some(zone) = entry.zone {
            attrs.push(other(CTA_ZONE, zone.to_be_bytes().to_vec()));
        }
        if let Some(id) = entry.id {
            attrs.push(other(CTA_ID, id.to_be_bytes().to_vec()));
        }
        let family = match entry.reply.src.ip() {
            IpAddr::V4(_) => NetfilterProtoFamily::IPv4,
            IpAddr::V6(_) => NetfilterProtoFamily::IPv6,
        };
        self.send(
            family,
            ConntrackMessage::Delete(attrs),
            NLM_F_REQUEST | NLM_F_ACK,
        )?;
        match self.collect("delete conntrack entry", |_| Ok(())) {
            Ok(()) => Ok(true),
            Err(e) if e.errno() == Some(libc::ENOENT) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn send(
        &mut self,
        family: NetfilterProtoFamily,
        msg: ConntrackMessage,
        flags: u16,
    ) -> Result<(), ConntrackError> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.seq;
        let nf = NetfilterMessage::new(NetfilterHeader::new(family, NFNETLINK_V0, 0), msg);
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(nf));
        packet.finalize();
        let mut out = vec![0; packet.buffer_len()];
        packet.serialize(&mut out);
        self.socket.send(&out, 0).map_err(ConntrackError::Socket)?;
        Ok(())
    }

    /// Hands every answer to the last request to `each`, until the kernel's `NLMSG_DONE` or
    /// acknowledgement.
    fn collect(
        &mut self,
        op: &str,
        mut each: impl FnMut(NetfilterMessage) -> Result<(), ConntrackError>,
    ) -> Result<(), ConntrackError> {
        loop {
            let n = self
                .socket
                .recv(&mut &mut self.buf[..], 0)
                .map_err(ConntrackError::Socket)?;
            let mut offset = 0;
            while offset < n {
                let msg = NetlinkMessage::<NetfilterMessage>::deserialize(&self.buf[offset..n])
                    .map_err(ConntrackError::Decode)?;
                offset += (msg.header.length as usize).max(1).next_multiple_of(4);
                if msg.header.sequence_number != self.seq {
                    continue;
                }
                match msg.payload {
                    NetlinkPayload::Done(_) => return Ok(()),
                    NetlinkPayload::Error(err) => {
                        return match err.code {
                            None => Ok(()),
                            Some(code) => Err(ConntrackError::Kernel {
                                op: op.to_string(),
                                source: io::Error::from_raw_os_error(-code.get()),
                            }),
                        };
                    }
                    NetlinkPayload::InnerMessage(inner) => each(inner)?,
                    _ => {}
                }
            }
        }
    }
}

fn other(kind: u16, value: Vec<u8>) -> ConntrackAttribute {
    ConntrackAttribute::Other(DefaultNla::new(kind, value))
}
