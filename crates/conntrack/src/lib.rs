//! Deletes stale conntrack entries over ctnetlink (`NETLINK_NETFILTER`, subsystem
//! `NFNL_SUBSYS_CTNETLINK`).
//!
//! The service proxy calls [`delete_flows`] when a Service endpoint goes away: a UDP flow
//! (DNS is the classic case) keeps its NAT binding to the dead backend for as long as the
//! client keeps sending, because conntrack only consults the DNAT rule for a flow's first
//! packet. Deleting the entry makes the next packet a new flow, which the current rules
//! send to a live endpoint.
//!
//! One call dumps the whole table once (`IPCTNL_MSG_CT_GET` with `NLM_F_DUMP`, both address
//! families), matches every [`Flow`] in that one pass, and sends one `IPCTNL_MSG_CT_DELETE`
//! per match carrying the entry's `CTA_TUPLE_REPLY` as dumped, its `CTA_ZONE` when it has one,
//! and its `CTA_ID`. The kernel looks the entry up by that reply tuple, so a flow that was
//! recreated towards a new endpoint since the dump (a client that keeps sending does that at
//! once) is left alone; the original tuple would name the new entry too, and the id does not
//! tell them apart, as the kernel hashes only the entry's address and original tuple into it.
//!
//! Messages are encoded and decoded with rust-netlink's `netlink-packet-netfilter`, which
//! has the conntrack get/delete messages and tuple attributes; this crate only adds the
//! socket exchange and the matching. Everything runs in the calling thread's network
//! namespace and needs `CAP_NET_ADMIN` there.

mod ctnetlink;
mod entry;
mod error;
mod flow;

pub use entry::{Entry, Tuple};
pub use error::ConntrackError;
pub use flow::Flow;

use ctnetlink::Ctnetlink;
use flow::Matcher;

/// Every conntrack entry of the calling thread's network namespace, IPv4 and IPv6.
pub fn list() -> Result<Vec<Entry>, ConntrackError> {
    Ctnetlink::open()?.dump(|_| true)
}

/// Deletes one entry that [`list`] returned. `Ok(false)` when it is gone already; a newer
/// entry is deleted in its place only if both of its tuples are the same.
pub fn delete(entry: &Entry) -> Result<bool, ConntrackError> {
    Ctnetlink::open()?.delete(entry)
}

/// Deletes every conntrack entry of `flow.proto` whose original-direction destination is
/// `flow.orig_dst` and whose reply-direction source is `flow.reply_src` (address and port),
/// for all `flows` at once: the connections to a Service frontend that were DNATed to one
/// endpoint. Returns how many entries were deleted; an entry that vanished before its delete
/// is not counted and is not an error.
///
/// Every matching entry is tried; if some deletions fail, the error is
/// [`ConntrackError::Incomplete`] with the count of those that succeeded.
pub fn delete_flows(flows: &[Flow]) -> Result<usize, ConntrackError> {
    if flows.is_empty() {
        return Ok(0);
    }
    let matcher = Matcher::new(flows);
    let mut ct = Ctnetlink::open()?;
    let stale = ct.dump(|e| matcher.matches(e))?;
    let mut deleted = 0;
    let mut failures = Vec::new();
    for entry in &stale {
        match ct.delete(entry) {
            Ok(true) => deleted += 1,
            Ok(false) => {}
            Err(e) => failures.push(e),
        }
    }
    if failures.is_empty() {
        Ok(deleted)
    } else {
        Err(ConntrackError::Incomplete { deleted, failures })
    }
}
