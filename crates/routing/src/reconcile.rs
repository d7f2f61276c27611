use podnet_netdev::{NetdevError, Netlink, RouteSpec, PODNET_ROUTE_PROTO};

/// Routing failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RoutingError {
    /// Listing, adding or removing a route failed.
    #[error("netlink: {0}")]
    Netlink(#[from] NetdevError),
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
/// is written.
pub fn reconcile(nl: &mut Netlink, desired: &[RouteSpec]) -> Result<Plan, RoutingError> {
    let main = u32::from(254u8);
    let have: Vec<RouteSpec> = nl
        .routes()?
        .into_iter()
        .filter(|r| r.protocol == PODNET_ROUTE_PROTO && r.gw.is_some() && r.table == Some(main))
        .collect();
    let mut plan = Plan::default();
    for r in have.iter().filter(|h| !desired.iter().any(|d| same(d, h))) {
        // A changed next hop is replaced below; only routes nobody wants are deleted.
        if !desired.iter().any(|d| d.dst == r.dst) {
            nl.delete_route(r)?;
            plan.removed.push(r.clone());
        }
    }
    for d in desired.iter().filter(|d| !have.iter().any(|h| same(d, h))) {
        nl.replace_route(d)?;
        plan.added.push(d.clone());
    }
    Ok(plan)
}
