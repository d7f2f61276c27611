use std::io;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use crate::{NetNs, NetdevError, Result};

/// A synchronous rtnetlink socket bound to the namespace it was opened in.
#[derive(Debug)]
pub struct Netlink {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl Netlink {
    /// Opens a socket in the calling thread's namespace.
    pub fn new() -> Result<Netlink> {
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(NetdevError::Socket)?;
        socket.bind_auto().map_err(NetdevError::Socket)?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(NetdevError::Socket)?;
        socket.set_ext_ack(true).map_err(NetdevError::Socket)?;
        Ok(Netlink {
            socket,
            seq: 0,
            buf: vec![0; 64 * 1024],
        })
    }

    /// Opens a socket inside `ns`; the calling thread stays where it is.
    pub fn in_ns(ns: &NetNs) -> Result<Netlink> {
        ns.run(Netlink::new)?
    }

    /// Sends a request that changes state and waits for its acknowledgement.
    pub(crate) fn change(&mut self, op: &str, msg: RouteNetlinkMessage, flags: u16) -> Result<()> {
        self.exchange(op, msg, NLM_F_REQUEST | NLM_F_ACK | flags)
            .map(|_| ())
    }

    /// Creates an object (`NLM_F_CREATE | NLM_F_EXCL`); `Ok(false)` when it already existed.
    pub(crate) fn create(&mut self, op: &str, msg: RouteNetlinkMessage) -> Result<bool> {
        match self.change(op, msg, NLM_F_CREATE | NLM_F_EXCL) {
            Ok(()) => Ok(true),
            Err(e) if e.is_exists() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Deletes an object; `Ok(false)` when it was not there.
    pub(crate) fn remove(&mut self, op: &str, msg: RouteNetlinkMessage) -> Result<bool> {
        match self.change(op, msg, 0) {
            Ok(()) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Sends a dump request and collects every answer.
    pub(crate) fn dump(
        &mut self,
        op: &str,
        msg: RouteNetlinkMessage,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        self.exchange(op, msg, NLM_F_REQUEST | NLM_F_DUMP)
    }

    /// Sends a get request for one object; `Ok(None)` when the kernel says it does not exist.
    pub(crate) fn get_one(
        &mut self,
        op: &str,
        msg: RouteNetlinkMessage,
    ) -> Result<Option<RouteNetlinkMessage>> {
        match self.exchange(op, msg, NLM_F_REQUEST) {
            Ok(mut v) => Ok(v.pop()),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn exchange(
        &mut self,
        op: &str,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        packet.finalize();
        let mut out = vec![0; packet.buffer_len()];
        packet.serialize(&mut out);
        self.socket.send(&out, 0).map_err(NetdevError::Socket)?;
        self.collect(
            op,
            flags & NLM_F_DUMP == NLM_F_DUMP || flags & NLM_F_ACK != 0,
        )
    }

    fn collect(&mut self, op: &str, until_done: bool) -> Result<Vec<RouteNetlinkMessage>> {
        let mut answers = Vec::new();
        loop {
            let n = self
                .socket
                .recv(&mut &mut self.buf[..], 0)
                .map_err(NetdevError::Socket)?;
            let mut offset = 0;
            while offset < n {
                let bytes = &self.buf[offset..n];
                let msg =
                    NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes).map_err(|e| {
                        NetdevError::Decode {
                            op: op.to_string(),
                            detail: e.to_string(),
                        }
                    })?;
                let len = msg.header.length as usize;
                offset += len.max(1).next_multiple_of(4);
                if msg.header.sequence_number != self.seq {
                    continue;
                }
                match msg.payload {
                    NetlinkPayload::Done(_) => return Ok(answers),
                    NetlinkPayload::Error(err) => {
                        return match err.code {
                            None => Ok(answers),
                            Some(code) => Err(NetdevError::Kernel {
                                op: op.to_string(),
                                source: io::Error::from_raw_os_error(-code.get()),
                            }),
                        };
                    }
                    NetlinkPayload::InnerMessage(inner) => {
                        answers.push(inner);
                        if !until_done {
                            return Ok(answers);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}
