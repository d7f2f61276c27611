use std::collections::HashMap;

use ipnet::IpNet;
use podnet_netdev::{NetdevError, Netlink, RouteSpec, PODNET_ROUTE_PROTO};

/// Routing failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RoutingError {
    /// Listing, adding or removing a route failed.
    #[error("netlink: {0}")]
    Netlink(#[from] NetdevError),
    /// Some routes could not be written; every other change was made.
    #[error("{failed} route change(s) failed, the rest applied; first: {first}")]
    Incomplete {
        /// How many failed.
        failed: usize,
        /// The first failure.
        first: NetdevError,
        /// What was changed.
        plan: Plan,
    },
}

/// What a reconcile changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Routes added (or replaced because their next hop changed).
    pub added: Vec<RouteSpec>,
    /// podnet routes removed because no node wants them any more.
    pub removed: Vec<RouteSpec>,
}

impl Plan {
    /// Number of kernel writes.
    pub fn operations(&self) -> usize {
        self.added.len() + self.removed.len()
    }
}

fn same(a: &RouteSpec, b: &RouteSpec) -> bool {
    a.dst == b.dst && a.gw == b.gw
}

/// Brings the main table's podnet routes (protocol [`PODNET_ROUTE_PROTO`], with a gateway)
/// to `desired`. Routes of other protocols are never touched; with nothing to change, nothing
/// is written. A route that cannot be written (say, an unreachable next hop) does not stop
/// the others: they are all tried, then [`RoutingError::Incomplete`] reports the failures.
pub fn reconcile(nl: &mut Netlink, desired: &[RouteSpec]) -> Result<Plan, RoutingError> {
    let main = u32::from(254u8);
    let have: HashMap<IpNet, RouteSpec> = nl
        .routes()?
        .into_iter()
        .filter(|r| r.protocol == PODNET_ROUTE_PROTO && r.gw.is_some() && r.table == Some(main))
        .map(|r| (r.dst, r))
        .collect();
    let want: HashMap<IpNet, &RouteSpec> = desired.iter().map(|d| (d.dst, d)).collect();
    let mut plan = Plan::default();
    let mut failed = 0;
    let mut first = None;
    let mut note = |e: NetdevError| {
        failed += 1;
        first.get_or_insert(e);
    };
    // A changed next hop is replaced below; only routes nobody wants are deleted.
    let mut gone: Vec<&RouteSpec> = have
        .values()
        .filter(|h| !want.contains_key(&h.dst))
        .collect();
    gone.sort_by_key(|r| r.dst);
    for r in gone {
        match nl.delete_route(r) {
            Ok(_) => plan.removed.push(r.clone()),
            Err(e) => note(e),
        }
    }
    for d in desired {
        if have.get(&d.dst).is_some_and(|h| same(d, h)) {
            continue;
        }
        match nl.replace_route(d) {
            Ok(()) => plan.added.push(d.clone()),
            Err(e) => note(e),
        }
    }
    match first {
        None => Ok(plan),
        Some(first) => Err(RoutingError::Incomplete {
            failed,
            first,
            plan,
        }),
    }
}
