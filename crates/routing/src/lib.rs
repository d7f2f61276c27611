//! Node-to-node pod routing. A pure function computes the routes this node needs from the
//! list of nodes; a reconciler diffs them against the kernel's routes tagged with podnet's
//! protocol number and applies only the difference. Foreign routes are never touched.
//!
//! This first cut does `host-gw` (a route to each other node's pod CIDRs via its address);
//! VXLAN builds on the same desired-state/reconcile split.

mod desired;
mod reconcile;

pub use desired::{desired_routes, NodeInfo};
pub use reconcile::{reconcile, Plan, RoutingError};
