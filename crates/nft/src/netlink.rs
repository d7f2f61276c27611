//! Set and map elements over nf_tables netlink, without the `nft` binary.
//!
//! [`Batch`] adds and deletes elements of one table's sets and maps in one atomic
//! transaction; [`list_elements`] reads a set back. Tables, sets, maps and chains are still
//! made with [`crate::apply`]: this module only moves elements, which is where `nft -f` is
//! slow (its parser spends ~10 µs and ~2.5 KiB per element). Everything runs in the calling
//! thread's network namespace.
//!
//! # Key and data layout
//!
//! Keys and map data are the bytes nf_tables keeps in its registers: the fields of a
//! concatenation one after the other, each padded with zeros to a multiple of 4 bytes.
//!
//! | field | bytes |
//! |---|---|
//! | IPv4 / IPv6 address (`ip daddr`, `ipv4_addr`, …) | 4 / 16, network byte order |
//! | port (`th dport`, `inet_service`) | 2 in network byte order, then 2 zero bytes |
//! | `meta l4proto`, `inet_proto` | 1, then 3 zero bytes |
//! | `numgen …`, `mark` | 4 in host byte order |
//!
//! A key or data value whose length differs from the set's is refused with `EINVAL`.
//! [`Concat`] builds these values field by field.
//!
//! # Transactions
//!
//! A [`Batch`] goes out as `NFNL_MSG_BATCH_BEGIN`, `NFT_MSG_NEWSETELEM` /
//! `NFT_MSG_DELSETELEM` messages (many elements each, every message under 64 KiB because the
//! element list is an attribute with a 16-bit length) and `NFNL_MSG_BATCH_END`, all in one
//! `send`: nfnetlink treats a batch as one transaction only when it arrives in one datagram,
//! so the socket's send buffer is raised to the batch's size with `SO_SNDBUFFORCE` (this
//! needs `CAP_NET_ADMIN`, as changing nf_tables does anyway). The kernel processes the whole
//! batch inside that `send` and applies all of it or nothing; every message carries
//! `NLM_F_ACK`, so each one is answered and a refusal names its message, and with extended
//! acks the kernel also points at the refused element.
//!
//! What the kernel does with elements:
//! - adding an element that exists with the same data does nothing; with other data it is
//!   refused (`EEXIST`): delete then add the key in the same batch to change its data;
//! - deleting an element that does not exist is refused (`ENOENT`);
//! - a verdict to a chain that does not exist is refused (`ENOENT`);
//! - [`Batch::flush`] then adds in one batch replaces a set's contents atomically.
//!
//! # Large sets and consistent reads
//!
//! A set declared without `size` lives in a resizable hash table that the kernel grows in
//! the background after big insertions. Inserting into it gets slower as it grows (300,000
//! elements: ~1 s, against ~0.4 s for a set declared with `size 1048576`, which the kernel
//! keeps in a fixed-size hash table).
//!
//! A set element dump is read in parts of at most 32 KiB, each resuming by skipping as many
//! elements as were already sent, which makes it quadratic (~6 s of kernel time for 300,000
//! elements) and tears it when the set changes in between: the kernel (6.18) does not flag
//! such dumps with `NLM_F_DUMP_INTR`. [`list_elements`] therefore dumps again when
//! - the ruleset generation that every part carries (nfgenmsg `res_id`) changed: a commit
//!   happened during the dump;
//! - a key came twice: the hash table was resized during the dump (that repeats as many
//!   elements as it skips, and does not change the generation).
//!
//! Only sets of exact keys are handled: [`list_elements`] refuses interval sets and
//! catch-all elements rather than return half of them.

mod wire;

use std::fmt::{self, Write as _};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};
use nix::sys::socket::{setsockopt, sockopt};

use crate::NftError;
use wire::{ErrorReply, Message, Messages, Wire};

/// Larger than any datagram the kernel sends (dump parts are capped near 32 KiB).
const RECV_BUF_LEN: usize = 256 * 1024;
/// Receive buffer room per acknowledgement (a small skb's true size, with margin).
const ACK_ROOM: usize = 2048;
/// Inconsistent dumps are taken again this many times.
const DUMP_TRIES: usize = 5;

/// The address family of a table (`nfgen_family`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// `inet`: IPv4 and IPv6.
    Inet,
    /// `ip`: IPv4 only.
    Ip,
    /// `ip6`: IPv6 only.
    Ip6,
}

impl Family {
    fn code(self) -> u8 {
        let code = match self {
            Family::Inet => libc::NFPROTO_INET,
            Family::Ip => libc::NFPROTO_IPV4,
            Family::Ip6 => libc::NFPROTO_IPV6,
        };
        code as u8
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::Inet => "inet",
            Family::Ip => "ip",
            Family::Ip6 => "ip6",
        })
    }
}

/// What a map element maps its key to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Data {
    /// A value, laid out like keys (see the [module docs](self)).
    Bytes(Vec<u8>),
    /// `goto CHAIN`.
    Goto(String),
    /// `jump CHAIN`.
    Jump(String),
    /// `accept`.
    Accept,
    /// `drop`.
    Drop,
}

impl fmt::Display for Data {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Data::Bytes(value) => f.write_str(&wire::hex(value)),
            Data::Goto(chain) => write!(f, "goto {chain}"),
            Data::Jump(chain) => write!(f, "jump {chain}"),
            Data::Accept => f.write_str("accept"),
            Data::Drop => f.write_str("drop"),
        }
    }
}

/// One element: a key and, in maps, its data.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Element {
    /// The key's register bytes (see the [module docs](self)).
    pub key: Vec<u8>,
    /// The data of a map element; `None` in sets.
    pub data: Option<Data>,
}

impl fmt::Display for Element {
    /// The key as hex, then ` : ` and the data for map elements.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&wire::hex(&self.key))?;
        match &self.data {
            Some(data) => write!(f, " : {data}"),
            None => Ok(()),
        }
    }
}

/// Builds a key or data value field by field, padding each field to 4 bytes.
///
/// `Concat::new().ipv4(vip).proto(6).port(80).host_u32(3).build()` is a key of
/// `typeof ip daddr . meta l4proto . th dport . numgen random mod N`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Concat(Vec<u8>);

impl Concat {
    /// An empty value.
    pub fn new() -> Concat {
        Concat::default()
    }

    /// An IPv4 or IPv6 address (4 or 16 bytes).
    pub fn ip(self, addr: IpAddr) -> Concat {
        match addr {
            IpAddr::V4(a) => self.ipv4(a),
            IpAddr::V6(a) => self.ipv6(a),
        }
    }

    /// An IPv4 address.
    pub fn ipv4(self, addr: Ipv4Addr) -> Concat {
        self.field(&addr.octets())
    }

    /// An IPv6 address.
    pub fn ipv6(self, addr: Ipv6Addr) -> Concat {
        self.field(&addr.octets())
    }

    /// A layer 4 protocol number (`meta l4proto`, `inet_proto`).
    pub fn proto(self, proto: u8) -> Concat {
        self.field(&[proto])
    }

    /// A port (`th dport`, `inet_service`).
    pub fn port(self, port: u16) -> Concat {
        self.field(&port.to_be_bytes())
    }

    /// A 32-bit value nf_tables keeps in host byte order (`numgen`, `mark`).
    pub fn host_u32(self, value: u32) -> Concat {
        self.field(&value.to_ne_bytes())
    }

    /// The bytes.
    pub fn build(self) -> Vec<u8> {
        self.0
    }

    fn field(mut self, bytes: &[u8]) -> Concat {
        self.0.extend_from_slice(bytes);
        self.0.resize((self.0.len() + 3) & !3, 0);
        self
    }
}

/// What went wrong talking nf_tables netlink.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The socket could not be opened, sized, written or read.
    #[error("nf_tables netlink: cannot {what}: {source}")]
    Socket {
        /// What failed.
        what: &'static str,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The kernel refused a request; for a batch, nothing of it was applied.
    #[error("nf_tables refused {what}: {}{}{}",
        io::Error::from_raw_os_error(*errno),
        message.as_ref().map(|m| format!(" ({m})")).unwrap_or_default(),
        if *more > 0 { format!("; {more} more refusals in the batch") } else { String::new() })]
    Refused {
        /// The request, e.g. `add to set inet t svc4, element #3 (0a600001.06000000.00500000
        /// : goto svc-x)`; elements are counted from 0 across consecutive [`Batch::add`] (or
        /// [`Batch::delete`]) calls for the same set.
        what: String,
        /// The errno the kernel answered with.
        errno: i32,
        /// The kernel's extended-ack message, when it gave one.
        message: Option<String>,
        /// How many other messages of the same batch were refused too.
        more: usize,
    },
    /// Answers to a batch were lost (receive buffer overflow) and none that arrived was a
    /// refusal, so whether it was applied is unknown.
    #[error("nf_tables netlink: answers to the batch for table {table} were lost; list the sets to learn its outcome")]
    RepliesLost {
        /// `family name` of the table.
        table: String,
    },
    /// A name or element does not fit in a netlink attribute.
    #[error("nf_tables netlink: {what} is too large for one message")]
    TooLarge {
        /// What did not fit.
        what: String,
    },
    /// The kernel answered something this codec cannot read.
    #[error("nf_tables netlink: unexpected answer: {0}")]
    Unexpected(&'static str),
    /// The set holds elements this codec does not represent.
    #[error("nf_tables netlink: set {set} holds {what}, which is not supported")]
    Unsupported {
        /// `family table set`.
        set: String,
        /// What was found.
        what: &'static str,
    },
    /// Every dump of the set was inconsistent.
    #[error("nf_tables netlink: {DUMP_TRIES} dumps of set {set} in a row were inconsistent (concurrent changes or a table resize)")]
    Inconsistent {
        /// `family table set`.
        set: String,
    },
}

impl Error {
    /// The kernel's errno when it refused a request.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Refused { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OpKind {
    Add,
    Delete,
    Flush,
}

/// One set's consecutive operations of one kind.
#[derive(Debug)]
struct Op {
    kind: OpKind,
    set: String,
    elements: Vec<Element>,
}

/// Element additions and deletions for the sets and maps of one table, committed as one
/// nf_tables transaction. Operations run in the order they were queued.
#[derive(Debug)]
pub struct Batch {
    family: Family,
    table: String,
    ops: Vec<Op>,
}

impl Batch {
    /// An empty batch for table `family table`.
    pub fn new(family: Family, table: &str) -> Batch {
        Batch {
            family,
            table: table.to_string(),
            ops: Vec::new(),
        }
    }

    /// Queues adding `elements` to `set` (`NFT_MSG_NEWSETELEM` with `NLM_F_CREATE` and
    /// without `NLM_F_EXCL`: an identical existing element is no error, one with other data
    /// is).
    pub fn add(&mut self, set: &str, elements: impl IntoIterator<Item = Element>) {
        self.queue(OpKind::Add, set).extend(elements);
    }

    /// Queues deleting the elements with `keys` from `set` (`NFT_MSG_DELSETELEM`; a missing
    /// key fails the whole batch with `ENOENT`).
    pub fn delete(&mut self, set: &str, keys: impl IntoIterator<Item = Vec<u8>>) {
        let keys = keys.into_iter().map(|key| Element { key, data: None });
        self.queue(OpKind::Delete, set).extend(keys);
    }

    /// Queues removing every element of `set` (`NFT_MSG_DELSETELEM` without elements);
    /// counts as one operation.
    pub fn flush(&mut self, set: &str) {
        self.ops.push(Op {
            kind: OpKind::Flush,
            set: set.to_string(),
            elements: Vec::new(),
        });
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.ops() == 0
    }

    /// The number of element operations queued (a flush counts as one).
    pub fn ops(&self) -> usize {
        let count = |op: &Op| match op.kind {
            OpKind::Flush => 1,
            _ => op.elements.len(),
        };
        self.ops.iter().map(count).sum()
    }

    /// Sends the batch as one transaction: all of it is applied, or nothing and the error
    /// names the first refused operation. An empty batch sends nothing.
    pub fn commit(self) -> Result<(), NftError> {
        if self.is_empty() {
            return Ok(());
        }
        self.commit_on(&Conn::open()?)
    }

    /// [`Batch::commit`] over a socket kept for several batches (see [`Conn`]).
    pub fn commit_on(self, conn: &Conn) -> Result<(), NftError> {
        if self.is_empty() {
            return Ok(());
        }
        let wire = Wire::batch(self.family, &self.table, &self.ops)?;
        let socket = &conn.socket;
        // One batch must fit in one datagram (the kernel doubles the value).
        setsockopt(socket, sockopt::SndBufForce, &wire.bytes.len())
            .map_err(sock_err("raise the send buffer (SO_SNDBUFFORCE)"))?;
        let rcvbuf = (wire.msgs.len() * ACK_ROOM).max(RECV_BUF_LEN);
        setsockopt(socket, sockopt::RcvBufForce, &rcvbuf)
            .map_err(sock_err("raise the receive buffer (SO_RCVBUFFORCE)"))?;
        let sent = socket
            .send(&wire.bytes, 0)
            .map_err(sock_err("send the batch"))?;
        if sent != wire.bytes.len() {
            return Err(Error::Unexpected("the batch was sent in part").into());
        }
        let replies = read_replies(socket)?;
        Ok(self.judge(&wire, replies)?)
    }

    fn queue(&mut self, kind: OpKind, set: &str) -> &mut Vec<Element> {
        let same = matches!(self.ops.last(), Some(op) if op.kind == kind && op.set == set);
        if !same {
            self.ops.push(Op {
                kind,
                set: set.to_string(),
                elements: Vec::new(),
            });
        }
        let last = self.ops.len() - 1;
        &mut self.ops[last].elements
    }

    /// Turns the kernel's answers into the batch's outcome.
    fn judge(&self, wire: &Wire, replies: Replies) -> Result<(), Error> {
        let mut refusals = replies.answers.iter().filter(|a| a.errno != 0);
        if let Some(first) = refusals.next() {
            return Err(Error::Refused {
                what: self.describe(wire, first),
                errno: first.errno,
                message: first.message.clone(),
                more: refusals.count(),
            });
        }
        if replies.lost {
            return Err(Error::RepliesLost {
                table: format!("{} {}", self.family, self.table),
            });
        }
        if replies.answers.len() < wire.msgs.len() {
            return Err(Error::Unexpected("fewer acknowledgements than messages"));
        }
        Ok(())
    }

    /// Names the operation (and element, when the kernel pointed at one) a refusal is about.
    fn describe(&self, wire: &Wire, reply: &ErrorReply) -> String {
        let table = format!("{} {}", self.family, self.table);
        let found = wire
            .msg(reply.seq)
            .and_then(|msg| Some((msg, self.ops.get(msg.op)?)));
        let Some((msg, op)) = found else {
            // An answer to the batch markers: the commit itself failed.
            return format!("the batch for table {table}");
        };
        let verb = match op.kind {
            OpKind::Add => "add to",
            OpKind::Delete => "delete from",
            OpKind::Flush => return format!("flush of set {table} {}", op.set),
        };
        let mut what = format!("{verb} set {table} {}", op.set);
        match reply.offset {
            Some(offset) => {
                // Outside the element list, the kernel blamed the table or set.
                let index = wire.element_at(msg, offset).map(|i| msg.first + i);
                if let Some((i, e)) = index.and_then(|i| Some((i, op.elements.get(i)?))) {
                    let _ = write!(what, ", element #{i} ({e})");
                }
            }
            None => {
                let next = wire
                    .msg(reply.seq.saturating_add(1))
                    .filter(|next| next.op == msg.op);
                let end = next.map_or(op.elements.len(), |next| next.first);
                let _ = write!(what, ", one of elements #{}..#{}", msg.first, end - 1);
            }
        }
        what
    }
}

/// Lists the elements of set (or map) `set` of table `family table`, sorted by key.
pub fn list_elements(family: Family, table: &str, set: &str) -> Result<Vec<Element>, NftError> {
    let name = format!("{family} {table} {set}");
    let request = Wire::dump_request(family, table, set)?;
    for _ in 0..DUMP_TRIES {
        if let Some(mut elements) = dump(&request, &name)? {
            elements.sort_unstable_by(|a, b| a.key.cmp(&b.key));
            // A set holds a key once: a repeat means the dump was torn by a table resize.
            if !elements.windows(2).any(|w| w[0].key == w[1].key) {
                return Ok(elements);
            }
        }
    }
    Err(Error::Inconsistent { set: name }.into())
}

/// Runs one dump; `None` when it was torn by a commit.
fn dump(request: &Wire, name: &str) -> Result<Option<Vec<Element>>, Error> {
    let socket = open()?;
    socket
        .send(&request.bytes, 0)
        .map_err(sock_err("send the dump request"))?;
    let refused = |errno, message| Error::Refused {
        what: format!("listing set {name}"),
        errno,
        message,
        more: 0,
    };
    let mut buf = vec![0u8; RECV_BUF_LEN];
    let mut elements = Vec::new();
    let mut interrupted = false;
    let mut generation = None;
    loop {
        let len = receive(&socket, &mut buf, 0)?;
        for msg in Messages::new(&buf[..len]) {
            let msg = msg?;
            // The kernel does not flag torn set dumps (6.18), but every part carries the
            // ruleset generation it was read in.
            interrupted |= msg.flags & wire::NLM_F_DUMP_INTR != 0;
            match msg.kind {
                wire::NLMSG_DONE => {
                    let errno = wire::done_errno(&msg);
                    if errno != 0 {
                        return Err(refused(errno, None));
                    }
                    return Ok((!interrupted).then_some(elements));
                }
                wire::NLMSG_ERROR => {
                    let reply = ErrorReply::parse(&msg)?;
                    if reply.errno != 0 {
                        return Err(refused(reply.errno, reply.message));
                    }
                }
                _ => {
                    let part = wire::generation(&msg);
                    interrupted |= *generation.get_or_insert(part) != part;
                    wire::parse_elements(&msg, &mut elements, name)?;
                }
            }
        }
    }
}

/// The answers to a batch.
#[derive(Debug, Default)]
struct Replies {
    /// Acknowledgements (errno 0) and refusals, in the order they came.
    answers: Vec<ErrorReply>,
    /// The receive buffer overflowed and answers were dropped.
    lost: bool,
}

/// Reads what the kernel queued while it processed the batch (it does so inside `send`).
fn read_replies(socket: &Socket) -> Result<Replies, Error> {
    let mut buf = vec![0u8; RECV_BUF_LEN];
    let mut replies = Replies::default();
    loop {
        let len = match receive(socket, &mut buf, libc::MSG_DONTWAIT) {
            Ok(len) => len,
            Err(Error::Socket { source, .. }) if source.kind() == io::ErrorKind::WouldBlock => {
                return Ok(replies)
            }
            Err(Error::Socket { source, .. }) if source.raw_os_error() == Some(libc::ENOBUFS) => {
                replies.lost = true;
                continue;
            }
            Err(e) => return Err(e),
        };
        for msg in Messages::new(&buf[..len]) {
            let msg: Message = msg?;
            if msg.kind == wire::NLMSG_ERROR {
                replies.answers.push(ErrorReply::parse(&msg)?);
            }
        }
    }
}

/// A socket for nf_tables in the calling thread's namespace, with capped, extended acks.
/// A netfilter netlink socket for several batches, in the network namespace of the thread
/// that opened it. Keeping one matters: closing a socket right after a commit that deleted
/// elements waits for the kernel to free them (nf_tables flushes its destroy work on the
/// socket's release, an RCU grace period: ~7 ms on a 2-core VM, most of a small change's
/// time).
pub struct Conn {
    socket: Socket,
    netns: Option<(u64, u64)>,
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn").field("netns", &self.netns).finish()
    }
}

impl Conn {
    /// A socket in the calling thread's network namespace.
    pub fn open() -> Result<Conn, NftError> {
        Ok(Conn {
            socket: open()?,
            netns: thread_netns(),
        })
    }

    /// Whether the calling thread is in the namespace this socket talks to.
    pub fn here(&self) -> bool {
        self.netns.is_some() && self.netns == thread_netns()
    }
}

/// The calling thread's network namespace (device and inode of its nsfs file).
fn thread_netns() -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata("/proc/thread-self/ns/net").ok()?;
    Some((m.dev(), m.ino()))
}

fn open() -> Result<Socket, Error> {
    let err = sock_err("open a netfilter netlink socket");
    let mut socket = Socket::new(NETLINK_NETFILTER).map_err(&err)?;
    socket.bind_auto().map_err(&err)?;
    socket.connect(&SocketAddr::new(0, 0)).map_err(&err)?;
    // Refusals without a copy of the refused (up to 64 KiB) message, but with offsets.
    socket.set_cap_ack(true).map_err(&err)?;
    socket.set_ext_ack(true).map_err(&err)?;
    Ok(socket)
}

/// One datagram into `buf`; refuses to truncate.
fn receive(socket: &Socket, buf: &mut [u8], flags: libc::c_int) -> Result<usize, Error> {
    let len = socket
        .recv(&mut &mut buf[..], flags | libc::MSG_TRUNC)
        .map_err(sock_err("receive"))?;
    if len > buf.len() {
        return Err(Error::Unexpected(
            "a datagram larger than the receive buffer",
        ));
    }
    Ok(len)
}

fn sock_err<E: Into<io::Error>>(what: &'static str) -> impl Fn(E) -> Error {
    move |source| Error::Socket {
        what,
        source: source.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concat_pads_every_field_to_four_bytes() {
        let key = Concat::new()
            .ipv4(Ipv4Addr::new(10, 96, 0, 1))
            .proto(6)
            .port(80)
            .host_u32(3)
            .build();
        let mut want = vec![10, 96, 0, 1, 6, 0, 0, 0, 0, 80, 0, 0];
        want.extend_from_slice(&3u32.to_ne_bytes());
        assert_eq!(key, want);
        let v6 = Concat::new()
            .ip("fd00::1".parse().expect("address"))
            .build();
        assert_eq!(v6.len(), 16);
    }

    #[test]
    fn ops_count_elements_and_merge_consecutive_calls() {
        let mut batch = Batch::new(Family::Inet, "t");
        assert!(batch.is_empty());
        batch.add(
            "a",
            [Element {
                key: vec![1; 4],
                data: None,
            }],
        );
        batch.add(
            "a",
            [Element {
                key: vec![2; 4],
                data: None,
            }],
        );
        batch.delete("a", [vec![3; 4]]);
        batch.flush("b");
        assert_eq!(batch.ops(), 4);
        assert_eq!(batch.ops.len(), 3);
    }

    #[test]
    fn elements_display_as_hex_fields_and_data() {
        let element = Element {
            key: vec![10, 96, 0, 1, 6, 0, 0, 0],
            data: Some(Data::Goto("svc".into())),
        };
        assert_eq!(element.to_string(), "0a600001.06000000 : goto svc");
    }
}
