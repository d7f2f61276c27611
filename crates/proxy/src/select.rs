//! From Service and EndpointSlice objects to service ports and the endpoints each kind of
//! traffic may use on this node (kube-proxy's categorisation: ready endpoints, serving and
//! terminating ones as the fallback, local-only for the `Local` traffic policies, topology
//! hints with fallback to all).

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The label tying an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The annotation of topology-aware routing (older form of `trafficDistribution`).
pub const TOPOLOGY_MODE_ANNOTATION: &str = "service.kubernetes.io/topology-mode";
/// The older spelling of [`TOPOLOGY_MODE_ANNOTATION`].
pub const TOPOLOGY_HINTS_ANNOTATION: &str = "service.kubernetes.io/topology-aware-hints";
/// kube-proxy's default sessionAffinity timeout (3 hours).
pub const DEFAULT_AFFINITY_TIMEOUT: u32 = 10_800;

/// A transport protocol a Service port can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Proto {
    /// The name nft uses.
    pub fn nft(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        }
    }
    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Proto::Tcp => 6,
            Proto::Udp => 17,
            Proto::Sctp => 132,
        }
    }
    /// From the IP protocol number.
    pub fn from_number(n: u8) -> Option<Proto> {
        match n {
            6 => Some(Proto::Tcp),
            17 => Some(Proto::Udp),
            132 => Some(Proto::Sctp),
            _ => None,
        }
    }
}

impl FromStr for Proto {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "TCP" => Ok(Proto::Tcp),
            "UDP" => Ok(Proto::Udp),
            "SCTP" => Ok(Proto::Sctp),
            _ => Err(format!("unknown protocol {s:?}")),
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.nft())
    }
}

/// Names one port of one Service.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortKey {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub name: String,
    /// The port's name ("" for a lone unnamed port).
    pub port_name: String,
    /// Its protocol.
    pub proto: Proto,
}

impl fmt::Display for PortKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)?;
        if !self.port_name.is_empty() {
            write!(f, ":{}", self.port_name)?;
        }
        write!(f, "/{}", self.proto)
    }
}

/// How endpoints are narrowed by topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    /// All endpoints.
    None,
    /// Endpoints hinted for this node's zone (`PreferClose`, `PreferSameZone`, topology-mode Auto).
    Zone,
    /// Endpoints hinted for this node (`PreferSameNode`), else by zone.
    Node,
}

/// One endpoint of a service port, merged over the Service's EndpointSlices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Where to send the traffic.
    pub addr: SocketAddr,
    /// Ready (`conditions.ready`, unset = true).
    pub ready: bool,
    /// Serving (`conditions.serving`, unset = ready).
    pub serving: bool,
    /// Terminating (`conditions.terminating`, unset = false).
    pub terminating: bool,
    /// The node it runs on.
    pub node: Option<String>,
    /// Zones it is hinted for (`None`: no zone hints).
    pub zones: Option<Vec<String>>,
    /// Nodes it is hinted for (`None`: no node hints).
    pub nodes: Option<Vec<String>>,
}

/// One port of a Service, with everything the proxy needs to program it.
#[derive(Debug, Clone, PartialEq)]
pub struct ServicePort {
    /// Which port of which Service.
    pub key: PortKey,
    /// The Service port.
    pub port: u16,
    /// ClusterIPs (one per family; empty for headless Services).
    pub cluster_ips: Vec<IpAddr>,
    /// The node port, for NodePort and LoadBalancer Services.
    pub node_port: Option<u16>,
    /// `spec.externalIPs`.
    pub external_ips: Vec<IpAddr>,
    /// Load-balancer ingress IPs (those not in `Proxy` ipMode).
    pub lb_ips: Vec<IpAddr>,
    /// `loadBalancerSourceRanges` (empty: everyone).
    pub source_ranges: Vec<IpNet>,
    /// ClientIP session affinity timeout in seconds.
    pub affinity: Option<u32>,
    /// externalTrafficPolicy Local.
    pub external_local: bool,
    /// internalTrafficPolicy Local.
    pub internal_local: bool,
    /// Topology narrowing.
    pub topology: Topology,
    /// The health-check node port (LoadBalancer with externalTrafficPolicy Local).
    pub health_check_node_port: Option<u16>,
    /// Endpoints from every slice of the Service, sorted by address.
    pub endpoints: Vec<Endpoint>,
}

/// This node, as the proxy sees it.
#[derive(Debug, Clone, Default)]
pub struct NodeFacts {
    /// The node's name (endpoints with this `nodeName` are local).
    pub name: String,
    /// Its zone (`topology.kubernetes.io/zone`).
    pub zone: Option<String>,
    /// Addresses on which NodePorts are served.
    pub nodeport_addresses: Vec<IpAddr>,
    /// The cluster's pod CIDRs (traffic from elsewhere to a ClusterIP is masqueraded).
    pub cluster_cidrs: Vec<IpNet>,
    /// The service CIDRs (addresses in them that are no ClusterIP are dropped).
    pub service_cidrs: Vec<IpNet>,
}

/// Something in a Service that the proxy skipped, said plainly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `namespace/name` of the Service.
    pub service: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "service {}: {}", self.service, self.message)
    }
}

/// The service ports of `services`, with the endpoints of `slices` (any order, any namespace).
/// The (namespace, Service name) an EndpointSlice belongs to, from its
/// `kubernetes.io/service-name` label.
pub fn slice_owner(slice: &EndpointSlice) -> Option<(&str, &str)> {
    let name = slice.metadata.labels.as_ref()?.get(SERVICE_NAME_LABEL)?;
    Some((
        slice.metadata.namespace.as_deref().unwrap_or_default(),
        name.as_str(),
    ))
}

pub fn service_ports<'a>(
    services: impl IntoIterator<Item = &'a Service>,
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
    problems: &mut Vec<Problem>,
) -> Vec<ServicePort> {
    let mut by_service: BTreeMap<(String, String), Vec<&EndpointSlice>> = BTreeMap::new();
    for slice in slices {
        let Some((ns, name)) = slice_owner(slice) else {
            continue;
        };
        by_service
            .entry((ns.to_string(), name.to_string()))
            .or_default()
            .push(slice);
    }
    let mut out = Vec::new();
    for svc in services {
        let ns = svc.metadata.namespace.clone().unwrap_or_default();
        let name = svc.metadata.name.clone().unwrap_or_default();
        let slices = by_service
            .get(&(ns.clone(), name.clone()))
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mut report = |message: String| {
            problems.push(Problem {
                service: format!("{ns}/{name}"),
                message,
            })
        };
        out.extend(ports_of(svc, slices, &mut report));
    }
    out
}

fn parse_ips(list: &[String], what: &str, report: &mut impl FnMut(String)) -> Vec<IpAddr> {
    let mut ips = Vec::new();
    for s in list {
        match s.parse::<IpAddr>() {
            Ok(ip) if !ips.contains(&ip) => ips.push(ip),
            Ok(_) => {}
            Err(_) => report(format!("{what} {s:?} is not an IP address; skipped")),
        }
    }
    ips
}

fn ports_of(
    svc: &Service,
    slices: &[&EndpointSlice],
    report: &mut impl FnMut(String),
) -> Vec<ServicePort> {
    let Some(spec) = svc.spec.as_ref() else {
        return Vec::new();
    };
    let ty = spec.type_.as_deref().unwrap_or("ClusterIP");
    if ty == "ExternalName" {
        return Vec::new();
    }
    let mut cluster_list: Vec<String> = spec.cluster_ips.clone().unwrap_or_default();
    if cluster_list.is_empty() {
        cluster_list.extend(spec.cluster_ip.clone());
    }
    cluster_list.retain(|ip| !ip.is_empty() && ip != "None");
    let cluster_ips = parse_ips(&cluster_list, "clusterIP", report);
    let external_ips = parse_ips(
        spec.external_ips.as_deref().unwrap_or_default(),
        "externalIP",
        report,
    );
    let lb_ips = if ty == "LoadBalancer" {
        let ingress: Vec<String> = svc
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .map(|ing| {
                ing.iter()
                    .filter(|i| i.ip_mode.as_deref() != Some("Proxy"))
                    .filter_map(|i| i.ip.clone())
                    .collect()
            })
            .unwrap_or_default();
        parse_ips(&ingress, "load-balancer ingress IP", report)
    } else {
        Vec::new()
    };
    let mut source_ranges = Vec::new();
    for r in spec.load_balancer_source_ranges.iter().flatten() {
        match r.trim().parse::<IpNet>() {
            Ok(net) => source_ranges.push(net.trunc()),
            Err(_) => report(format!(
                "loadBalancerSourceRange {r:?} is not a CIDR; skipped"
            )),
        }
    }
    // The firewall set is an interval set: overlapping ranges are merged.
    let source_ranges = IpNet::aggregate(&source_ranges);
    let affinity = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
        spec.session_affinity_config
            .as_ref()
            .and_then(|c| c.client_ip.as_ref())
            .and_then(|c| c.timeout_seconds)
            .and_then(|t| u32::try_from(t).ok())
            .filter(|t| *t > 0)
            .unwrap_or(DEFAULT_AFFINITY_TIMEOUT)
    });
    let external = ty == "NodePort" || ty == "LoadBalancer" || !external_ips.is_empty();
    let external_local = external && spec.external_traffic_policy.as_deref() == Some("Local");
    let internal_local = spec.internal_traffic_policy.as_deref() == Some("Local");
    let annotations = svc.metadata.annotations.as_ref();
    let topology_annotation = annotations
        .and_then(|a| {
            a.get(TOPOLOGY_MODE_ANNOTATION)
                .or_else(|| a.get(TOPOLOGY_HINTS_ANNOTATION))
        })
        .is_some_and(|v| v.eq_ignore_ascii_case("auto"));
    let topology = match spec.traffic_distribution.as_deref() {
        Some("PreferSameNode") => Topology::Node,
        Some("PreferClose") | Some("PreferSameZone") => Topology::Zone,
        _ if topology_annotation => Topology::Zone,
        _ => Topology::None,
    };
    let health_check_node_port = if ty == "LoadBalancer" && external_local {
        spec.health_check_node_port
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p > 0)
    } else {
        None
    };
    let namespace = svc.metadata.namespace.clone().unwrap_or_default();
    let name = svc.metadata.name.clone().unwrap_or_default();
    let mut out = Vec::new();
    for p in spec.ports.iter().flatten() {
        let proto = match p.protocol.as_deref().unwrap_or("TCP").parse::<Proto>() {
            Ok(proto) => proto,
            Err(e) => {
                report(format!("port {:?}: {e}; skipped", p.name));
                continue;
            }
        };
        let Ok(port) =
            u16::try_from(p.port).map_err(|_| ()).and_then(
                |v| {
                    if v == 0 {
                        Err(())
                    } else {
                        Ok(v)
                    }
                },
            )
        else {
            report(format!("port {} is out of range; skipped", p.port));
            continue;
        };
        let node_port = if ty == "NodePort" || ty == "LoadBalancer" {
            p.node_port
                .and_then(|np| u16::try_from(np).ok())
                .filter(|np| *np > 0)
        } else {
            None
        };
        let port_name = p.name.clone().unwrap_or_default();
        let endpoints = endpoints_for(slices, &port_name, proto);
        out.push(ServicePort {
            key: PortKey {
                namespace: namespace.clone(),
                name: name.clone(),
                port_name,
                proto,
            },
            port,
            cluster_ips: cluster_ips.clone(),
            node_port,
            external_ips: external_ips.clone(),
            lb_ips: lb_ips.clone(),
            source_ranges: source_ranges.clone(),
            affinity,
            external_local,
            internal_local,
            topology,
            health_check_node_port,
            endpoints,
        });
    }
    out
}

/// The endpoints of the slice port named `port_name` with `proto`, merged over `slices`: an
/// endpoint listed twice (a move between slices) counts with its best conditions.
fn endpoints_for(slices: &[&EndpointSlice], port_name: &str, proto: Proto) -> Vec<Endpoint> {
    let mut merged: BTreeMap<SocketAddr, Endpoint> = BTreeMap::new();
    for slice in slices {
        if !matches!(slice.address_type.as_str(), "IPv4" | "IPv6") {
            continue;
        }
        let Some(target) = slice.ports.iter().flatten().find_map(|sp| {
            let name_ok = sp.name.as_deref().unwrap_or("") == port_name;
            let proto_ok = sp.protocol.as_deref().unwrap_or("TCP").parse::<Proto>() == Ok(proto);
            if name_ok && proto_ok {
                sp.port
                    .and_then(|p| u16::try_from(p).ok())
                    .filter(|p| *p > 0)
            } else {
                None
            }
        }) else {
            continue;
        };
        for ep in slice.endpoints.iter().flatten() {
            let Some(ip) = ep.addresses.first().and_then(|a| a.parse::<IpAddr>().ok()) else {
                continue;
            };
            let cond = ep.conditions.as_ref();
            let ready = cond.and_then(|c| c.ready).unwrap_or(true);
            let serving = cond.and_then(|c| c.serving).unwrap_or(ready);
            let terminating = cond.and_then(|c| c.terminating).unwrap_or(false);
            let hints = ep.hints.as_ref();
            let endpoint = Endpoint {
                addr: SocketAddr::new(ip, target),
                ready,
                serving,
                terminating,
                node: ep.node_name.clone(),
                zones: hints
                    .and_then(|h| h.for_zones.as_ref())
                    .map(|z| z.iter().map(|z| z.name.clone()).collect()),
                nodes: hints
                    .and_then(|h| h.for_nodes.as_ref())
                    .map(|n| n.iter().map(|n| n.name.clone()).collect()),
            };
            merged
                .entry(endpoint.addr)
                .and_modify(|e| {
                    if endpoint.ready && !e.ready {
                        *e = endpoint.clone();
                    }
                })
                .or_insert(endpoint);
        }
    }
    merged.into_values().collect()
}

/// The endpoints of one family that each kind of traffic may use on this node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Cluster-wide: ready (narrowed by topology), else serving+terminating.
    pub cluster: Vec<SocketAddr>,
    /// On this node: ready, else serving+terminating.
    pub local: Vec<SocketAddr>,
}

impl Selection {
    /// What ClusterIP traffic uses (internalTrafficPolicy).
    pub fn internal<'a>(&'a self, sp: &ServicePort) -> &'a [SocketAddr] {
        if sp.internal_local {
            &self.local
        } else {
            &self.cluster
        }
    }
    /// What NodePort / external IP / load-balancer traffic uses (externalTrafficPolicy).
    pub fn external<'a>(&'a self, sp: &ServicePort) -> &'a [SocketAddr] {
        if sp.external_local {
            &self.local
        } else {
            &self.cluster
        }
    }
}

/// kube-proxy's endpoint categorisation for the endpoints of `sp` in the family of `v6`.
pub fn select(sp: &ServicePort, v6: bool, node: &NodeFacts) -> Selection {
    let eps: Vec<&Endpoint> = sp
        .endpoints
        .iter()
        .filter(|e| e.addr.is_ipv6() == v6)
        .collect();
    let is_local = |e: &Endpoint| e.node.as_deref() == Some(node.name.as_str());
    let hint = topology_filter(sp.topology, &eps, node);
    let pick = |f: &dyn Fn(&Endpoint) -> bool| -> Vec<SocketAddr> {
        eps.iter().filter(|e| f(e)).map(|e| e.addr).collect()
    };
    let mut cluster = pick(&|e| e.ready && hint(e));
    if cluster.is_empty() {
        cluster = pick(&|e| e.serving && e.terminating);
    }
    let mut local = pick(&|e| e.ready && is_local(e));
    if local.is_empty() {
        local = pick(&|e| e.serving && e.terminating && is_local(e));
    }
    Selection { cluster, local }
}

/// Which endpoints topology lets this node use: hints are used only when every ready endpoint
/// carries them and some point here; otherwise all.
fn topology_filter<'a>(
    mode: Topology,
    eps: &[&'a Endpoint],
    node: &NodeFacts,
) -> Box<dyn Fn(&Endpoint) -> bool + 'a> {
    let ready: Vec<&&Endpoint> = eps.iter().filter(|e| e.ready).collect();
    if mode == Topology::Node {
        let all_hinted = !ready.is_empty() && ready.iter().all(|e| e.nodes.is_some());
        let me = node.name.clone();
        let some_here = ready
            .iter()
            .any(|e| e.nodes.iter().flatten().any(|n| *n == me));
        if all_hinted && some_here {
            return Box::new(move |e| e.nodes.iter().flatten().any(|n| *n == me));
        }
    }
    if matches!(mode, Topology::Zone | Topology::Node) {
        if let Some(zone) = node.zone.clone() {
            let all_hinted = !ready.is_empty() && ready.iter().all(|e| e.zones.is_some());
            let some_here = ready
                .iter()
                .any(|e| e.zones.iter().flatten().any(|z| *z == zone));
            if all_hinted && some_here {
                return Box::new(move |e| e.zones.iter().flatten().any(|z| *z == zone));
            }
        }
    }
    Box::new(|_| true)
}
