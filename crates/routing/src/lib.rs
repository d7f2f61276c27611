//! Node-to-node pod routing. A pure function computes the routes this node needs from the
//! list of nodes; a reconciler diffs them against the kernel's routes tagged with podnet's
//! protocol number and applies only the difference. Foreign routes are never touched.
//!
//! `host-gw`: a route to each other node's pod CIDRs via its address. `vxlan`: a VXLAN device,
//! per remote node a permanent neighbour, an FDB entry and an on-link route.

mod desired;
mod reconcile;
mod vxlan;

pub use desired::{desired_routes, NodeInfo};
pub use reconcile::{reconcile, Plan, RoutingError};
pub use vxlan::{reconcile_vxlan, vtep_mac, VxlanConfig, VxlanPlan, VXLAN_OVERHEAD};
