//! The bytes: nfnetlink batches of `*SETELEM` messages out, acknowledgements and dumps in.
//! Pure functions, no socket.

use std::fmt::Write as _;

use super::{Data, Element, Error, Family, Op, OpKind};

/// Attribute numbers from `linux/netfilter/nf_tables.h` and `linux/netlink.h` that `libc`
/// does not carry.
mod attr {
    pub const SET_ELEM_LIST_TABLE: u16 = 1;
    pub const SET_ELEM_LIST_SET: u16 = 2;
    pub const SET_ELEM_LIST_ELEMENTS: u16 = 3;
    pub const LIST_ELEM: u16 = 1;
    pub const SET_ELEM_KEY: u16 = 1;
    pub const SET_ELEM_DATA: u16 = 2;
    pub const SET_ELEM_FLAGS: u16 = 3;
    pub const SET_ELEM_KEY_END: u16 = 10;
    pub const DATA_VALUE: u16 = 1;
    pub const DATA_VERDICT: u16 = 2;
    pub const VERDICT_CODE: u16 = 1;
    pub const VERDICT_CHAIN: u16 = 2;
    pub const NLMSGERR_MSG: u16 = 1;
    pub const NLMSGERR_OFFS: u16 = 2;
}

const NLMSG_HDR_LEN: usize = 16;
const NFGENMSG_LEN: usize = 4;
const HEADERS_LEN: usize = NLMSG_HDR_LEN + NFGENMSG_LEN;
/// Budget for one message's element list (its attribute length is a u16).
const MAX_ELEMENTS_LEN: usize = 63 * 1024;

const NLM_F_REQUEST: u16 = libc::NLM_F_REQUEST as u16;
const NLM_F_ACK: u16 = libc::NLM_F_ACK as u16;
const NLM_F_CREATE: u16 = libc::NLM_F_CREATE as u16;
const NLM_F_DUMP: u16 = libc::NLM_F_DUMP as u16;
pub(super) const NLM_F_DUMP_INTR: u16 = libc::NLM_F_DUMP_INTR as u16;
const NLM_F_CAPPED: u16 = libc::NLM_F_CAPPED as u16;
const NLM_F_ACK_TLVS: u16 = libc::NLM_F_ACK_TLVS as u16;
const NLA_F_NESTED: u16 = libc::NLA_F_NESTED as u16;
const NLA_TYPE_MASK: u16 = libc::NLA_TYPE_MASK as u16;
const NFNL_SUBSYS_NFTABLES: u16 = libc::NFNL_SUBSYS_NFTABLES as u16;
pub(super) const NLMSG_ERROR: u16 = libc::NLMSG_ERROR as u16;
pub(super) const NLMSG_DONE: u16 = libc::NLMSG_DONE as u16;

/// Sequence number of the batch's begin marker; its messages follow from `BEGIN_SEQ + 1`.
const BEGIN_SEQ: u32 = 1;

fn nft_msg(kind: libc::c_int) -> u16 {
    (NFNL_SUBSYS_NFTABLES << 8) | kind as u16
}

/// Where a message sits in the batch and which elements it carries.
#[derive(Debug)]
pub(super) struct MsgInfo {
    /// Index of its operation in the batch.
    pub op: usize,
    /// Index of its first element in the operation.
    pub first: usize,
    /// Byte offset of the message in the batch.
    pub start: usize,
}

/// The header fields of one `*SETELEM` message.
struct MsgHead<'a> {
    kind: u16,
    flags: u16,
    family: Family,
    table: &'a str,
    set: &'a str,
}

/// An encoded batch or request.
#[derive(Debug, Default)]
pub(super) struct Wire {
    pub bytes: Vec<u8>,
    /// The `*SETELEM` messages of a batch, in order.
    pub msgs: Vec<MsgInfo>,
}

impl Wire {
    /// `BATCH_BEGIN`, a message per operation (several for large ones, each with
    /// `NLM_F_ACK`), `BATCH_END`.
    pub fn batch(family: Family, table: &str, ops: &[Op]) -> Result<Wire, Error> {
        let mut wire = Wire::default();
        wire.batch_marker(libc::NFNL_MSG_BATCH_BEGIN as u16, BEGIN_SEQ);
        for (index, op) in ops.iter().enumerate() {
            let (kind, flags) = match op.kind {
                OpKind::Add => (libc::NFT_MSG_NEWSETELEM, NLM_F_CREATE),
                OpKind::Delete | OpKind::Flush => (libc::NFT_MSG_DELSETELEM, 0),
            };
            let head = MsgHead {
                kind: nft_msg(kind),
                flags: NLM_F_REQUEST | NLM_F_ACK | flags,
                family,
                table,
                set: &op.set,
            };
            if op.kind == OpKind::Flush {
                // A DELSETELEM without an element list empties the set.
                let start = wire.open_batched(&head, index, 0)?;
                wire.close(start);
                continue;
            }
            let mut first = 0;
            while first < op.elements.len() {
                let start = wire.open_batched(&head, index, first)?;
                first = wire.put_elements(&op.elements, first, start, head.set)?;
            }
        }
        let end_seq = BEGIN_SEQ + wire.msgs.len() as u32 + 1;
        wire.batch_marker(libc::NFNL_MSG_BATCH_END as u16, end_seq);
        Ok(wire)
    }

    /// A `GETSETELEM` dump request.
    pub fn dump_request(family: Family, table: &str, set: &str) -> Result<Wire, Error> {
        let mut wire = Wire::default();
        let head = MsgHead {
            kind: nft_msg(libc::NFT_MSG_GETSETELEM),
            flags: NLM_F_REQUEST | NLM_F_DUMP,
            family,
            table,
            set,
        };
        let start = wire.open(&head, BEGIN_SEQ)?;
        wire.close(start);
        Ok(wire)
    }

    /// The message a reply with sequence number `seq` answers.
    pub fn msg(&self, seq: u32) -> Option<&MsgInfo> {
        let index = seq.checked_sub(BEGIN_SEQ + 1)?;
        self.msgs.get(index as usize)
    }

    /// The index (in its message) of the element whose attributes hold byte `offset` of
    /// message `msg`, as the kernel's extended ack points at it.
    pub fn element_at(&self, msg: &MsgInfo, offset: u32) -> Option<usize> {
        element_at(self.bytes.get(msg.start..)?, offset)
    }

    /// Starts the next message of a batch, carrying `op`'s elements from `first` on.
    fn open_batched(&mut self, head: &MsgHead, op: usize, first: usize) -> Result<usize, Error> {
        let seq = BEGIN_SEQ + self.msgs.len() as u32 + 1;
        let start = self.open(head, seq)?;
        self.msgs.push(MsgInfo { op, first, start });
        Ok(start)
    }

    /// `NFNL_MSG_BATCH_BEGIN` / `_END`: nfgenmsg with res_id = NFNL_SUBSYS_NFTABLES (be16).
    fn batch_marker(&mut self, kind: u16, seq: u32) {
        let start = self.header(kind, NLM_F_REQUEST, seq);
        self.bytes.push(libc::AF_UNSPEC as u8);
        self.bytes.push(libc::NFNETLINK_V0 as u8);
        self.bytes
            .extend_from_slice(&NFNL_SUBSYS_NFTABLES.to_be_bytes());
        self.close(start);
    }

    /// Starts a message with its table and set attributes; returns where it starts.
    fn open(&mut self, head: &MsgHead, seq: u32) -> Result<usize, Error> {
        let start = self.header(head.kind, head.flags, seq);
        self.bytes.push(head.family.code());
        self.bytes.push(libc::NFNETLINK_V0 as u8);
        self.bytes.extend_from_slice(&[0, 0]);
        self.string(attr::SET_ELEM_LIST_TABLE, head.table)?;
        self.string(attr::SET_ELEM_LIST_SET, head.set)?;
        Ok(start)
    }

    /// Writes the element list of the message opened at `start` with as many of
    /// `elements[first..]` as fit, closes the message and returns the index of the first
    /// element left over.
    fn put_elements(
        &mut self,
        elements: &[Element],
        first: usize,
        start: usize,
        set: &str,
    ) -> Result<usize, Error> {
        let list = self.nest(attr::SET_ELEM_LIST_ELEMENTS);
        let mut next = first;
        for element in &elements[first..] {
            let before = self.bytes.len();
            self.element(element)?;
            if self.bytes.len() - list > MAX_ELEMENTS_LEN {
                self.bytes.truncate(before);
                if next == first {
                    return Err(Error::TooLarge {
                        what: format!("element #{next} of set {set}"),
                    });
                }
                break;
            }
            next += 1;
        }
        self.end_nest(list)?;
        self.close(start);
        Ok(next)
    }

    fn element(&mut self, element: &Element) -> Result<(), Error> {
        let item = self.nest(attr::LIST_ELEM);
        let key = self.nest(attr::SET_ELEM_KEY);
        self.attr(attr::DATA_VALUE, &element.key)?;
        self.end_nest(key)?;
        if let Some(data) = &element.data {
            let nested = self.nest(attr::SET_ELEM_DATA);
            match data {
                Data::Bytes(value) => self.attr(attr::DATA_VALUE, value)?,
                Data::Goto(chain) => self.verdict(libc::NFT_GOTO, Some(chain))?,
                Data::Jump(chain) => self.verdict(libc::NFT_JUMP, Some(chain))?,
                Data::Accept => self.verdict(libc::NF_ACCEPT, None)?,
                Data::Drop => self.verdict(libc::NF_DROP, None)?,
            }
            self.end_nest(nested)?;
        }
        self.end_nest(item)
    }

    fn verdict(&mut self, code: i32, chain: Option<&str>) -> Result<(), Error> {
        let verdict = self.nest(attr::DATA_VERDICT);
        self.attr(attr::VERDICT_CODE, &code.to_be_bytes())?;
        if let Some(chain) = chain {
            self.string(attr::VERDICT_CHAIN, chain)?;
        }
        self.end_nest(verdict)
    }

    fn header(&mut self, kind: u16, flags: u16, seq: u32) -> usize {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(&0u32.to_ne_bytes());
        self.bytes.extend_from_slice(&kind.to_ne_bytes());
        self.bytes.extend_from_slice(&flags.to_ne_bytes());
        self.bytes.extend_from_slice(&seq.to_ne_bytes());
        self.bytes.extend_from_slice(&0u32.to_ne_bytes());
        start
    }

    /// Writes the length of the message that begins at `start`.
    fn close(&mut self, start: usize) {
        let len = (self.bytes.len() - start) as u32;
        self.bytes[start..start + 4].copy_from_slice(&len.to_ne_bytes());
    }

    fn attr(&mut self, kind: u16, value: &[u8]) -> Result<(), Error> {
        let len = u16::try_from(4 + value.len()).map_err(|_| Error::TooLarge {
            what: format!("an attribute of {} bytes", value.len()),
        })?;
        self.bytes.extend_from_slice(&len.to_ne_bytes());
        self.bytes.extend_from_slice(&kind.to_ne_bytes());
        self.bytes.extend_from_slice(value);
        self.bytes.resize(align4(self.bytes.len()), 0);
        Ok(())
    }

    /// A NUL-terminated string attribute, as nft sends them.
    fn string(&mut self, kind: u16, value: &str) -> Result<(), Error> {
        let mut bytes = Vec::with_capacity(value.len() + 1);
        bytes.extend_from_slice(value.as_bytes());
        bytes.push(0);
        self.attr(kind, &bytes)
    }

    fn nest(&mut self, kind: u16) -> usize {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(&0u16.to_ne_bytes());
        self.bytes
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        start
    }

    fn end_nest(&mut self, start: usize) -> Result<(), Error> {
        let len = u16::try_from(self.bytes.len() - start).map_err(|_| Error::TooLarge {
            what: "a nested attribute".to_string(),
        })?;
        self.bytes[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        Ok(())
    }
}

/// Index of the element of a `*SETELEM` message whose attribute holds byte `offset`.
fn element_at(msg: &[u8], offset: u32) -> Option<usize> {
    let offset = offset as usize;
    let len = msg.get(..4).map(|b| read_u32_ne(b) as usize)?;
    let mut at = HEADERS_LEN;
    for attr in Attrs::new(msg.get(HEADERS_LEN..len)?) {
        let (kind, list) = attr.ok()?;
        let list_at = at + 4;
        at += align4(4 + list.len());
        if kind != attr::SET_ELEM_LIST_ELEMENTS {
            continue;
        }
        let mut item_at = list_at;
        for (index, item) in Attrs::new(list).enumerate() {
            let (_, item) = item.ok()?;
            let end = item_at + align4(4 + item.len());
            if (item_at..end).contains(&offset) {
                return Some(index);
            }
            item_at = end;
        }
    }
    None
}

/// One `NLMSG_ERROR`: an acknowledgement when `errno` is 0.
#[derive(Debug)]
pub(super) struct ErrorReply {
    pub errno: i32,
    /// Sequence number of the message it answers.
    pub seq: u32,
    /// The kernel's extended-ack message.
    pub message: Option<String>,
    /// Offset of the attribute the kernel blamed, from the start of the refused message.
    pub offset: Option<u32>,
}

impl ErrorReply {
    /// Reads an `NLMSG_ERROR`, capped or not, with or without extended-ack attributes.
    pub fn parse(msg: &Message) -> Result<ErrorReply, Error> {
        let short = Error::Unexpected("short NLMSG_ERROR");
        let head = msg.payload.get(..4 + NLMSG_HDR_LEN).ok_or(short)?;
        let mut reply = ErrorReply {
            errno: (read_u32_ne(&head[..4]) as i32).wrapping_neg(),
            seq: read_u32_ne(&head[12..16]),
            message: None,
            offset: None,
        };
        if msg.flags & NLM_F_ACK_TLVS == 0 {
            return Ok(reply);
        }
        let tlvs_at = if msg.flags & NLM_F_CAPPED != 0 {
            head.len()
        } else {
            4 + align4(read_u32_ne(&head[4..8]) as usize)
        };
        for attr in Attrs::new(msg.payload.get(tlvs_at..).unwrap_or_default()) {
            match attr? {
                (attr::NLMSGERR_MSG, text) => reply.message = Some(c_string(text)),
                (attr::NLMSGERR_OFFS, offs) => reply.offset = offs.get(..4).map(read_u32_ne),
                _ => {}
            }
        }
        Ok(reply)
    }
}

/// The errno an `NLMSG_DONE` carries (0 when the dump went well).
pub(super) fn done_errno(msg: &Message) -> i32 {
    msg.payload
        .get(..4)
        .map_or(0, |b| (read_u32_ne(b) as i32).wrapping_neg())
}

/// The low 16 bits of the ruleset generation a dump message was read in (nfgenmsg res_id).
pub(super) fn generation(msg: &Message) -> Option<u16> {
    let res_id = msg.payload.get(2..4)?;
    Some(u16::from_be_bytes([res_id[0], res_id[1]]))
}

/// Appends the elements of one `NEWSETELEM` dump message of set `name`.
pub(super) fn parse_elements(
    msg: &Message,
    out: &mut Vec<Element>,
    name: &str,
) -> Result<(), Error> {
    let attrs = msg
        .payload
        .get(NFGENMSG_LEN..)
        .ok_or(Error::Unexpected("short nfgenmsg"))?;
    for attr in Attrs::new(attrs) {
        let (kind, list) = attr?;
        if kind != attr::SET_ELEM_LIST_ELEMENTS {
            continue;
        }
        for item in Attrs::new(list) {
            let (kind, item) = item?;
            if kind == attr::LIST_ELEM {
                out.push(parse_element(item, name)?);
            }
        }
    }
    Ok(())
}

fn parse_element(item: &[u8], name: &str) -> Result<Element, Error> {
    let unsupported = |what| Error::Unsupported {
        set: name.to_string(),
        what,
    };
    let mut key = None;
    let mut data = None;
    for attr in Attrs::new(item) {
        match attr? {
            (attr::SET_ELEM_KEY, nested) => key = Some(parse_value(nested)?),
            (attr::SET_ELEM_DATA, nested) => data = Some(parse_data(nested)?),
            (attr::SET_ELEM_KEY_END, _) => return Err(unsupported("interval elements")),
            (attr::SET_ELEM_FLAGS, flags) => {
                let flags = flags.get(..4).map_or(0, read_u32_be);
                if flags & libc::NFT_SET_ELEM_INTERVAL_END as u32 != 0 {
                    return Err(unsupported("interval elements"));
                }
            }
            _ => {}
        }
    }
    let key = key.ok_or_else(|| unsupported("a catch-all element"))?;
    Ok(Element { key, data })
}

fn parse_value(nested: &[u8]) -> Result<Vec<u8>, Error> {
    for attr in Attrs::new(nested) {
        if let (attr::DATA_VALUE, value) = attr? {
            return Ok(value.to_vec());
        }
    }
    Err(Error::Unexpected("a key without NFTA_DATA_VALUE"))
}

fn parse_data(nested: &[u8]) -> Result<Data, Error> {
    for attr in Attrs::new(nested) {
        match attr? {
            (attr::DATA_VALUE, value) => return Ok(Data::Bytes(value.to_vec())),
            (attr::DATA_VERDICT, verdict) => return parse_verdict(verdict),
            _ => {}
        }
    }
    Err(Error::Unexpected("element data without value or verdict"))
}

fn parse_verdict(nested: &[u8]) -> Result<Data, Error> {
    let mut code = None;
    let mut chain = None;
    for attr in Attrs::new(nested) {
        match attr? {
            (attr::VERDICT_CODE, c) => code = c.get(..4).map(|b| read_u32_be(b) as i32),
            (attr::VERDICT_CHAIN, c) => chain = Some(c_string(c)),
            _ => {}
        }
    }
    match (code, chain) {
        (Some(libc::NFT_GOTO), Some(chain)) => Ok(Data::Goto(chain)),
        (Some(libc::NFT_JUMP), Some(chain)) => Ok(Data::Jump(chain)),
        (Some(libc::NF_ACCEPT), _) => Ok(Data::Accept),
        (Some(libc::NF_DROP), _) => Ok(Data::Drop),
        _ => Err(Error::Unexpected(
            "a verdict other than goto, jump, accept or drop",
        )),
    }
}

/// One netlink message of a datagram.
pub(super) struct Message<'a> {
    pub kind: u16,
    pub flags: u16,
    /// Everything after the netlink header.
    pub payload: &'a [u8],
}

/// The netlink messages of a datagram.
pub(super) struct Messages<'a> {
    rest: &'a [u8],
}

impl<'a> Messages<'a> {
    pub fn new(datagram: &'a [u8]) -> Messages<'a> {
        Messages { rest: datagram }
    }
}

impl<'a> Iterator for Messages<'a> {
    type Item = Result<Message<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let len = self.rest.get(..4).map(|b| read_u32_ne(b) as usize);
        let Some((head, payload)) = len.and_then(|len| {
            let head = self.rest.get(..NLMSG_HDR_LEN)?;
            Some((head, self.rest.get(NLMSG_HDR_LEN..len)?))
        }) else {
            self.rest = &[];
            return Some(Err(Error::Unexpected("a truncated netlink message")));
        };
        let msg = Message {
            kind: u16::from_ne_bytes([head[4], head[5]]),
            flags: u16::from_ne_bytes([head[6], head[7]]),
            payload,
        };
        let len = NLMSG_HDR_LEN + payload.len();
        self.rest = self.rest.get(align4(len)..).unwrap_or_default();
        Some(Ok(msg))
    }
}

/// The attributes of a buffer: `(type without flags, payload)`.
struct Attrs<'a> {
    rest: &'a [u8],
}

impl<'a> Attrs<'a> {
    fn new(buf: &'a [u8]) -> Attrs<'a> {
        Attrs { rest: buf }
    }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Result<(u16, &'a [u8]), Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([self.rest[0], self.rest[1]]) as usize;
        let kind = u16::from_ne_bytes([self.rest[2], self.rest[3]]) & NLA_TYPE_MASK;
        let Some(payload) = self.rest.get(4..len.max(4)).filter(|_| len >= 4) else {
            self.rest = &[];
            return Some(Err(Error::Unexpected("a truncated attribute")));
        };
        self.rest = self.rest.get(align4(len)..).unwrap_or_default();
        Some(Ok((kind, payload)))
    }
}

fn align4(len: usize) -> usize {
    (len + 3) & !3
}

/// The first 4 bytes (callers check there are 4).
fn read_u32_ne(b: &[u8]) -> u32 {
    u32::from_ne_bytes([b[0], b[1], b[2], b[3]])
}

fn read_u32_be(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// A string attribute without its terminating NUL.
fn c_string(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// Value bytes as hex, 4-byte fields separated by dots (`0a600001.06000000`).
pub(super) fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 9 / 4);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 && i % 4 == 0 {
            out.push('.');
        }
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::netlink::Concat;

    fn element(i: u32) -> Element {
        Element {
            key: Concat::new()
                .ipv4(Ipv4Addr::from(i))
                .proto(6)
                .port(80)
                .host_u32(i)
                .build(),
            data: Some(Data::Goto(format!("chain-{i}"))),
        }
    }

    fn op(kind: OpKind, elements: Vec<Element>) -> Op {
        Op {
            kind,
            set: "s".to_string(),
            elements,
        }
    }

    fn parse(wire: &Wire) -> Vec<Message<'_>> {
        Messages::new(&wire.bytes)
            .collect::<Result<_, _>>()
            .expect("own encoding parses")
    }

    #[test]
    fn batches_are_framed_by_markers_naming_the_nftables_subsystem() {
        let ops = [
            op(OpKind::Add, vec![element(1)]),
            op(OpKind::Flush, Vec::new()),
        ];
        let wire = Wire::batch(Family::Inet, "t", &ops).expect("encodes");
        let msgs = parse(&wire);
        assert_eq!(msgs.len(), 4);
        assert_eq!(msgs[0].kind, 0x10);
        // res_id = NFNL_SUBSYS_NFTABLES in network byte order.
        assert_eq!(msgs[0].payload, &[0, 0, 0, 10]);
        assert_eq!(msgs[1].kind, (10 << 8) | 12);
        assert_eq!(msgs[1].flags, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE);
        assert_eq!(&msgs[1].payload[..4], &[1, 0, 0, 0]);
        // The flush: a DELSETELEM with table and set only.
        assert_eq!(msgs[2].kind, (10 << 8) | 14);
        assert_eq!(msgs[2].payload.len(), 4 + 8 + 8);
        assert_eq!(msgs[3].kind, 0x11);
        assert!(wire.msg(2).is_some_and(|m| m.op == 0));
        assert!(wire.msg(3).is_some_and(|m| m.op == 1));
        assert!(wire.msg(1).is_none() && wire.msg(4).is_none());
    }

    #[test]
    fn large_operations_split_into_messages_under_64k_that_parse_back() {
        let keys = (0..10).map(|i| Element {
            key: element(i).key,
            data: None,
        });
        let ops = [
            op(OpKind::Add, (0..5000).map(element).collect()),
            op(OpKind::Delete, keys.clone().collect()),
        ];
        let wire = Wire::batch(Family::Ip, "t", &ops).expect("encodes");
        let msgs = parse(&wire);
        assert!(msgs.len() > 6, "{} messages", msgs.len());
        let mut back = Vec::new();
        for msg in &msgs[1..msgs.len() - 1] {
            assert!(msg.payload.len() < 64 * 1024);
            parse_elements(msg, &mut back, "s").expect("parses");
        }
        let mut want: Vec<_> = (0..5000).map(element).collect();
        want.extend(keys);
        assert_eq!(back, want);
    }

    #[test]
    fn error_offsets_point_back_to_elements() {
        let head = MsgHead {
            kind: 0,
            flags: 0,
            family: Family::Inet,
            table: "t",
            set: "s",
        };
        let mut wire = Wire::default();
        let start = wire.open(&head, 2).expect("opens");
        let list = wire.nest(attr::SET_ELEM_LIST_ELEMENTS);
        let mut offsets = Vec::new();
        for i in 0..3 {
            offsets.push((wire.bytes.len() - start) as u32);
            wire.element(&element(i)).expect("encodes");
        }
        wire.end_nest(list).expect("fits");
        wire.close(start);
        let msg = MsgInfo {
            op: 0,
            first: 0,
            start,
        };
        for (i, at) in offsets.iter().enumerate() {
            // The kernel points at the element or at an attribute inside it.
            assert_eq!(wire.element_at(&msg, *at), Some(i));
            assert_eq!(wire.element_at(&msg, *at + 8), Some(i));
        }
        // The table attribute.
        assert_eq!(wire.element_at(&msg, HEADERS_LEN as u32), None);
        assert_eq!(wire.element_at(&msg, wire.bytes.len() as u32), None);
    }

    #[test]
    fn verdicts_and_values_parse_back() {
        for data in [
            Data::Goto("lb".into()),
            Data::Jump("x".into()),
            Data::Accept,
            Data::Drop,
            Data::Bytes(vec![1, 2, 3, 4]),
        ] {
            let mut wire = Wire::default();
            let element = Element {
                key: vec![0; 4],
                data: Some(data),
            };
            wire.element(&element).expect("encodes");
            let (_, item) = Attrs::new(&wire.bytes)
                .next()
                .expect("one item")
                .expect("parses");
            assert_eq!(parse_element(item, "s").expect("parses"), element);
        }
    }

    #[test]
    fn capped_errors_with_extended_acks_parse() {
        let mut payload = (-libc::ENOENT).to_ne_bytes().to_vec();
        let mut orig = vec![0u8; NLMSG_HDR_LEN];
        orig[8..12].copy_from_slice(&7u32.to_ne_bytes());
        payload.extend_from_slice(&orig);
        let mut tlvs = Wire::default();
        tlvs.attr(attr::NLMSGERR_OFFS, &40u32.to_ne_bytes())
            .expect("fits");
        tlvs.string(attr::NLMSGERR_MSG, "nope").expect("fits");
        payload.extend_from_slice(&tlvs.bytes);
        let msg = Message {
            kind: NLMSG_ERROR,
            flags: NLM_F_CAPPED | NLM_F_ACK_TLVS,
            payload: &payload,
        };
        let reply = ErrorReply::parse(&msg).expect("parses");
        assert_eq!(reply.errno, libc::ENOENT);
        assert_eq!(reply.seq, 7);
        assert_eq!(reply.offset, Some(40));
        assert_eq!(reply.message.as_deref(), Some("nope"));
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let wire =
            Wire::batch(Family::Inet, "t", &[op(OpKind::Add, vec![element(1)])]).expect("encodes");
        for cut in 0..wire.bytes.len() {
            let _ = Messages::new(&wire.bytes[..cut]).count();
            for msg in Messages::new(&wire.bytes[..cut]).flatten() {
                let _ = parse_elements(&msg, &mut Vec::new(), "s");
                let _ = ErrorReply::parse(&msg);
            }
        }
        let mut bad = wire.bytes.clone();
        bad[0..4].copy_from_slice(&3u32.to_ne_bytes());
        assert!(Messages::new(&bad).next().is_some_and(|m| m.is_err()));
    }
}
