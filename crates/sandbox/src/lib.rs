//! Pieces of the podnet sandbox that stand on their own: EndpointSlices derived from Services
//! and Pods the way kube-controller-manager does, the built-in server of a pod, and the probe
//! that tells whether one pod reaches another.

pub mod endpoints;
pub mod probe;
pub mod serve;
