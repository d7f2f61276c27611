//! The podnet service proxy: what kube-proxy does, on nftables, flat in the number of Services.
//!
//! - [`select`]: Services and EndpointSlices → service ports with merged endpoints, and which
//!   endpoints each kind of traffic may use on this node (ready, else serving+terminating;
//!   local for the `Local` policies; topology hints).
//! - [`compile`]: service ports + node facts → the desired [`State`] (a pure function).
//! - [`state`]: the table as data — a fixed skeleton, set elements, shared dispatch chains —
//!   its nft rendering and the [`Plan`] between two states.
//! - [`trace`]: follows a packet through a state (the unit tests' packet tracer).
//! - [`apply`]: writes plans in single transactions, only the difference after the first.

pub mod apply;
pub mod compile;
pub mod incremental;
pub mod select;
pub mod state;
pub mod trace;

pub use apply::{Applier, ApplyError, SyncStats};
pub use compile::{compile, Compiled, HealthCheck};
pub use incremental::{Compiler, Update};
pub use select::{service_ports, NodeFacts, Problem, Proto, ServicePort};
pub use state::{Frontend, Plan, State, TABLE};
pub use trace::{trace, Packet, Verdict};
