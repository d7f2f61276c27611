//! EndpointSlices derived from Services and Pods the way kube-controller-manager's
//! EndpointSlice controller derives them (`k8s.io/endpointslice`: `Reconciler.Reconcile`,
//! `podToEndpoint`, `getEndpointPorts`, `findPort`, `newEndpointSlice`,
//! `setEndpointSliceLabels`).
//!
//! [`endpoint_slices`] is pure and stateless: the same Services and Pods always give the same
//! slices, byte for byte once serialized (names included), so a writer diffing its previous
//! output against the new one writes nothing when nothing changed.
//!
//! What follows the controller:
//! - only Services with a non-empty `spec.selector` get slices, ExternalName Services none;
//! - a pod counts when it is in the Service's namespace, matches every selector pair, is bound
//!   to a node, has an IP and is not terminal (phase Succeeded or Failed); terminating pods
//!   stay, flagged `terminating`; host-network pods count with their (node) IP;
//! - one address type per Service IP family; an endpoint carries the pod IPs of that family,
//!   and a pod without one is left out of that family's slices;
//! - each Service port becomes an endpoint port named after it (`""` when unnamed, as the
//!   controller's `&servicePort.Name` gives), with its protocol (default TCP), appProtocol and
//!   the target port resolved per pod: a number as is, a name through the pod's container ports
//!   of that name and protocol (sidecar init containers included). A Service port a pod cannot
//!   resolve is dropped from that pod's port list, so pods are grouped by the port list they
//!   resolve to, one run of slices per distinct list;
//! - conditions: `serving` = pod ready, `terminating` = pod terminating, `ready` = serving and
//!   not terminating, or always true with `publishNotReadyAddresses` (serving stays the pod's
//!   readiness then);
//! - at most [`MAX_ENDPOINTS_PER_SLICE`] endpoints a slice;
//! - a family with no endpoint at all gets one placeholder slice without endpoints or ports;
//! - slice labels: the Service's own labels, the headless label for `clusterIP: None`,
//!   [`LABEL_SERVICE_NAME`] and [`LABEL_MANAGED_BY`]; the Service as controller owner;
//!   `generateName` `<service>-`.
//!
//! Where the sandbox has no live cluster to follow:
//! - names: the apiserver would complete `generateName` with 5 random characters; here they
//!   come from a hash of the Service, family, port list and slice index (same alphabet), so
//!   they are stable;
//! - packing: the controller fills existing slices as it goes; here each port group's
//!   endpoints, sorted by IP, are cut into consecutive slices of [`MAX_ENDPOINTS_PER_SLICE`];
//! - no zones or hints (the sandbox has no topology), no trigger-time annotation (it is a clock
//!   reading, and would break stability);
//! - defaulting the apiserver would have done: a missing namespace is `default`, missing
//!   `ipFamilies` come from the cluster IPs, else IPv4; a missing or zero target port is the
//!   port; a missing protocol is TCP;
//! - pods without `status.podIPs` fall back on `status.podIP`.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{ObjectReference, Pod, Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// The most endpoints one slice carries (kube-controller-manager's
/// `--max-endpoints-per-slice` default).
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;

/// Label naming the Service a slice belongs to.
pub const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";

/// Label naming the controller that manages a slice.
pub const LABEL_MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";

/// The [`LABEL_MANAGED_BY`] value of the slices made here: kube-controller-manager's, so
/// they look like a real cluster's.
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";

/// Label (with an empty value) on the slices of a headless Service (`clusterIP: None`).
pub const LABEL_HEADLESS: &str = "service.kubernetes.io/headless";

/// The namespace of an object that names none.
const DEFAULT_NAMESPACE: &str = "default";

/// The apiserver keeps this much of a `generateName` before its random suffix (63 - 5).
const MAX_GENERATED_NAME_LENGTH: usize = 58;

/// Length of the generated name suffix.
const SUFFIX_LEN: usize = 5;

/// The characters of a generated name suffix (the apiserver's `utilrand` alphabet: no vowels,
/// no look-alikes).
const SUFFIX_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// Pod readiness as the sandbox knows it.
#[derive(Debug, Clone, Copy)]
pub struct PodView<'a> {
    /// The pod.
    pub pod: &'a Pod,
    /// Whether the pod is Ready (its `Ready` condition): the endpoint's `serving`.
    pub ready: bool,
    /// Whether the pod is being deleted: the endpoint's `terminating`. A pod with
    /// `metadata.deletionTimestamp` set counts as terminating too.
    pub terminating: bool,
}

/// The EndpointSlices for all services (sorted deterministic output).
///
/// Slices come sorted by namespace, Service name, address type (IPv4 first), port list and
/// index within the port group; endpoints within a slice by IP. A Service appearing twice
/// (same namespace and name) counts once, the first time.
pub fn endpoint_slices(services: &[Service], pods: &[PodView<'_>]) -> Vec<EndpointSlice> {
    let mut ordered: Vec<&Service> = services.iter().collect();
    // Stable, so of two same-named Services the first given wins whatever the order of others.
    ordered.sort_by(|a, b| service_id(a).cmp(&service_id(b)));

    let mut seen: HashSet<(&str, &str)> = HashSet::new();
    let mut names = HashSet::new();
    let mut out = Vec::new();
    for svc in ordered {
        if seen.insert(service_id(svc)) {
            service_slices(svc, pods, &mut names, &mut out);
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.into_iter().map(|(_, slice)| slice).collect()
}

/// An IP family, in slice order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Family {
    V4,
    V6,
}

impl Family {
    /// The `addressType` of its slices (also its `spec.ipFamilies` spelling).
    fn address_type(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }

    /// A `spec.ipFamilies` entry.
    fn parse(family: &str) -> Option<Family> {
        match family {
            "IPv4" => Some(Family::V4),
            "IPv6" => Some(Family::V6),
            _ => None,
        }
    }

    /// The family of an address; IPv4-mapped IPv6 counts as IPv4, as with Go's `To4`.
    fn of(ip: &IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }
}

/// One resolved endpoint port; a pod's list of them is its port group.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct PortKey {
    name: String,
    protocol: String,
    port: i32,
    app_protocol: Option<String>,
}

impl PortKey {
    fn to_api(&self) -> EndpointPort {
        EndpointPort {
            app_protocol: self.app_protocol.clone(),
            name: Some(self.name.clone()),
            port: Some(self.port),
            protocol: Some(self.protocol.clone()),
        }
    }
}

/// Sort key of an output slice: namespace, Service, family, port list, index in the group.
type SliceKey = (String, String, Family, Vec<PortKey>, usize);

/// What every slice of one Service shares.
struct ServiceCtx<'a> {
    namespace: &'a str,
    name: &'a str,
    labels: BTreeMap<String, String>,
    owner: OwnerReference,
}

/// An endpoint with the key it is sorted (and de-duplicated) by: its first address, then the
/// pod's namespace and name.
struct Entry {
    key: (IpAddr, String, String),
    endpoint: Endpoint,
}

/// The slices of one Service, appended to `out`; `names` holds the slice names taken so far
/// (namespace, name).
fn service_slices(
    svc: &Service,
    pods: &[PodView<'_>],
    names: &mut HashSet<(String, String)>,
    out: &mut Vec<(SliceKey, EndpointSlice)>,
) {
    let Some(spec) = svc.spec.as_ref() else {
        return;
    };
    if spec.type_.as_deref() == Some("ExternalName") {
        return;
    }
    let Some(selector) = spec.selector.as_ref().filter(|s| !s.is_empty()) else {
        return;
    };
    let Some(name) = svc.metadata.name.as_deref().filter(|n| !n.is_empty()) else {
        return;
    };
    let namespace = namespace_of(&svc.metadata);
    let ctx = ServiceCtx {
        namespace,
        name,
        labels: slice_labels(svc, spec, name),
        owner: OwnerReference {
            api_version: "v1".to_string(),
            kind: "Service".to_string(),
            name: name.to_string(),
            uid: svc.metadata.uid.clone().unwrap_or_default(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        },
    };
    let service_ports = spec.ports.as_deref().unwrap_or_default();
    let publish_not_ready = spec.publish_not_ready_addresses == Some(true);

    let selected: Vec<&PodView<'_>> = pods
        .iter()
        .filter(|v| {
            namespace_of(&v.pod.metadata) == namespace
                && selects(selector, v.pod)
                && eligible(v.pod)
        })
        .collect();

    for family in service_families(spec) {
        let mut groups: BTreeMap<Vec<PortKey>, Vec<Entry>> = BTreeMap::new();
        for view in &selected {
            let addresses = pod_addresses(view.pod, family);
            let Some(first) = addresses.first().map(|(ip, _)| *ip) else {
                continue;
            };
            let ports = endpoint_ports(service_ports, view.pod);
            let endpoint = to_endpoint(
                view,
                &ctx,
                addresses.into_iter().map(|(_, text)| text).collect(),
                publish_not_ready,
            );
            let key = (
                first,
                namespace_of(&view.pod.metadata).to_string(),
                view.pod.metadata.name.clone().unwrap_or_default(),
            );
            groups
                .entry(ports)
                .or_default()
                .push(Entry { key, endpoint });
        }

        if groups.is_empty() {
            // The controller's placeholder: `endpointMeta{ports: []EndpointPort{}}`, no
            // endpoints, so the Service visibly has no endpoints.
            out.push(new_slice(&ctx, family, Vec::new(), 0, Vec::new(), names));
            continue;
        }
        for (ports, mut entries) in groups {
            entries.sort_by(|a, b| a.key.cmp(&b.key));
            // The same pod given twice counts once, as in the controller's EndpointSet.
            entries.dedup_by(|a, b| a.key == b.key);
            let mut endpoints: Vec<Endpoint> = entries.into_iter().map(|e| e.endpoint).collect();
            let mut index = 0;
            while !endpoints.is_empty() {
                let rest = endpoints.split_off(endpoints.len().min(MAX_ENDPOINTS_PER_SLICE));
                out.push(new_slice(
                    &ctx,
                    family,
                    ports.clone(),
                    index,
                    endpoints,
                    names,
                ));
                endpoints = rest;
                index += 1;
            }
        }
    }
}

/// A Service's (namespace, name), for ordering and de-duplication.
fn service_id(svc: &Service) -> (&str, &str) {
    (
        namespace_of(&svc.metadata),
        svc.metadata.name.as_deref().unwrap_or_default(),
    )
}

/// An object's namespace; none (or empty) means `default`, as the apiserver would fill in.
fn namespace_of(meta: &ObjectMeta) -> &str {
    meta.namespace
        .as_deref()
        .filter(|ns| !ns.is_empty())
        .unwrap_or(DEFAULT_NAMESPACE)
}

/// Whether the pod's labels hold every selector pair.
fn selects(selector: &BTreeMap<String, String>, pod: &Pod) -> bool {
    let labels = pod.metadata.labels.as_ref();
    selector
        .iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// `ShouldPodBeInEndpoints(pod, includeTerminating=true)`, plus a bound node: not terminal,
/// scheduled, and with an IP.
fn eligible(pod: &Pod) -> bool {
    let status = pod.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded" | "Failed")) {
        return false;
    }
    let node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
    if node.is_none_or(str::is_empty) {
        return false;
    }
    status.is_some_and(|s| {
        s.pod_ip.as_deref().is_some_and(|ip| !ip.is_empty())
            || s.pod_ips.as_ref().is_some_and(|ips| !ips.is_empty())
    })
}

/// The Service's IP families: `spec.ipFamilies`; without them (no apiserver defaulted
/// them), the families of its cluster IPs, else IPv4.
fn service_families(spec: &ServiceSpec) -> BTreeSet<Family> {
    let declared: BTreeSet<Family> = spec
        .ip_families
        .iter()
        .flatten()
        .filter_map(|f| Family::parse(f))
        .collect();
    if !declared.is_empty() {
        return declared;
    }
    let from_ips: BTreeSet<Family> = spec
        .cluster_ips
        .iter()
        .flatten()
        .chain(spec.cluster_ip.iter())
        .filter_map(|ip| ip.parse::<IpAddr>().ok())
        .map(|ip| Family::of(&ip))
        .collect();
    if !from_ips.is_empty() {
        return from_ips;
    }
    BTreeSet::from([Family::V4])
}

/// The pod's IPs of `family`, parsed and as written: `status.podIPs`, or `status.podIP`
/// when that list is empty. Unparseable entries are skipped.
fn pod_addresses(pod: &Pod, family: Family) -> Vec<(IpAddr, String)> {
    let Some(status) = pod.status.as_ref() else {
        return Vec::new();
    };
    let listed: Vec<&str> = status
        .pod_ips
        .iter()
        .flatten()
        .map(|p| p.ip.as_str())
        .filter(|ip| !ip.is_empty())
        .collect();
    let ips = if listed.is_empty() {
        status
            .pod_ip
            .as_deref()
            .filter(|ip| !ip.is_empty())
            .into_iter()
            .collect()
    } else {
        listed
    };
    ips.into_iter()
        .filter_map(|text| {
            let ip = text.parse::<IpAddr>().ok()?;
            (Family::of(&ip) == family).then(|| (ip, text.to_string()))
        })
        .collect()
}

/// `getEndpointPorts`: the Service ports this pod resolves, in Service order.
fn endpoint_ports(service_ports: &[ServicePort], pod: &Pod) -> Vec<PortKey> {
    service_ports
        .iter()
        .filter_map(|sp| {
            let protocol = sp.protocol.clone().unwrap_or_else(|| "TCP".to_string());
            let port = match &sp.target_port {
                // Unset, 0 and "" are what the apiserver defaults to `port`.
                None | Some(IntOrString::Int(0)) => sp.port,
                Some(IntOrString::String(s)) if s.is_empty() => sp.port,
                Some(IntOrString::Int(n)) => *n,
                Some(IntOrString::String(name)) => find_named_port(pod, name, &protocol)?,
            };
            Some(PortKey {
                name: sp.name.clone().unwrap_or_default(),
                protocol,
                port,
                app_protocol: sp.app_protocol.clone(),
            })
        })
        .collect()
}

/// `findPort` for a named target port: the first container port with that name and protocol,
/// in the containers, then in sidecars (init containers with `restartPolicy: Always`).
fn find_named_port(pod: &Pod, name: &str, protocol: &str) -> Option<i32> {
    let spec = pod.spec.as_ref()?;
    let sidecars = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| c.restart_policy.as_deref() == Some("Always"));
    spec.containers
        .iter()
        .chain(sidecars)
        .flat_map(|c| c.ports.iter().flatten())
        .find(|p| {
            p.name.as_deref() == Some(name) && p.protocol.as_deref().unwrap_or("TCP") == protocol
        })
        .map(|p| p.container_port)
}

/// `podToEndpoint`.
fn to_endpoint(
    view: &PodView<'_>,
    ctx: &ServiceCtx<'_>,
    addresses: Vec<String>,
    publish_not_ready: bool,
) -> Endpoint {
    let pod = view.pod;
    let serving = view.ready;
    let terminating = view.terminating || pod.metadata.deletion_timestamp.is_some();
    // "ready" is never true for a terminating pod, unless publishNotReadyAddresses is set.
    let ready = publish_not_ready || (serving && !terminating);
    let spec = pod.spec.as_ref();
    // ShouldSetHostname: a hostname, and the pod's subdomain is this Service (same namespace,
    // which selection already ensures).
    let hostname = spec
        .and_then(|s| s.hostname.as_ref())
        .filter(|h| !h.is_empty())
        .filter(|_| spec.and_then(|s| s.subdomain.as_deref()) == Some(ctx.name))
        .cloned();
    Endpoint {
        addresses,
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        hostname,
        node_name: spec
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty()),
        target_ref: Some(ObjectReference {
            kind: Some("Pod".to_string()),
            namespace: Some(namespace_of(&pod.metadata).to_string()),
            name: pod.metadata.name.clone().filter(|n| !n.is_empty()),
            uid: pod.metadata.uid.clone().filter(|u| !u.is_empty()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `setEndpointSliceLabels`: the Service's labels minus the reserved ones, the headless label
/// for `clusterIP: None`, then the service-name and managed-by labels.
fn slice_labels(svc: &Service, spec: &ServiceSpec, name: &str) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = svc
        .metadata
        .labels
        .iter()
        .flatten()
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                LABEL_SERVICE_NAME | LABEL_MANAGED_BY | LABEL_HEADLESS
            )
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    // The controller tests `!isServiceIPSet` (also true for an empty clusterIP), but outside
    // ExternalName Services an empty clusterIP only means "not allocated yet" here, and the
    // headless label makes service proxies ignore the slices.
    if spec.cluster_ip.as_deref() == Some("None") {
        labels.insert(LABEL_HEADLESS.to_string(), String::new());
    }
    labels.insert(LABEL_SERVICE_NAME.to_string(), name.to_string());
    labels.insert(LABEL_MANAGED_BY.to_string(), CONTROLLER_NAME.to_string());
    labels
}

/// `newEndpointSlice`, with a stable name in place of the apiserver's random one.
fn new_slice(
    ctx: &ServiceCtx<'_>,
    family: Family,
    ports: Vec<PortKey>,
    index: usize,
    endpoints: Vec<Endpoint>,
    names: &mut HashSet<(String, String)>,
) -> (SliceKey, EndpointSlice) {
    let generate_name = format!("{}-", ctx.name);
    let name = slice_name(ctx, &generate_name, family, &ports, index, names);
    let slice = EndpointSlice {
        address_type: family.address_type().to_string(),
        endpoints: Some(endpoints),
        metadata: ObjectMeta {
            name: Some(name),
            generate_name: Some(generate_name),
            namespace: Some(ctx.namespace.to_string()),
            labels: Some(ctx.labels.clone()),
            owner_references: Some(vec![ctx.owner.clone()]),
            ..Default::default()
        },
        ports: Some(ports.iter().map(PortKey::to_api).collect()),
    };
    let key = (
        ctx.namespace.to_string(),
        ctx.name.to_string(),
        family,
        ports,
        index,
    );
    (key, slice)
}

/// The name the apiserver would make of `generate_name` (at most 58 characters of it, then 5
/// of suffix), the suffix hashed from the slice's identity; on the (unlikely) clash with a
/// name already taken in the namespace, hashed again with a counter.
fn slice_name(
    ctx: &ServiceCtx<'_>,
    generate_name: &str,
    family: Family,
    ports: &[PortKey],
    index: usize,
    names: &mut HashSet<(String, String)>,
) -> String {
    let mut cut = generate_name.len().min(MAX_GENERATED_NAME_LENGTH);
    while !generate_name.is_char_boundary(cut) {
        cut -= 1;
    }
    let base = &generate_name[..cut];

    let mut hasher = Fnv::new();
    hasher.str(ctx.namespace);
    hasher.str(ctx.name);
    hasher.str(family.address_type());
    hasher.u64(ports.len() as u64);
    for p in ports {
        hasher.str(&p.name);
        hasher.str(&p.protocol);
        hasher.bytes(&p.port.to_le_bytes());
        match &p.app_protocol {
            Some(a) => {
                hasher.u64(1);
                hasher.str(a);
            }
            None => hasher.u64(0),
        }
    }
    hasher.u64(index as u64);

    let mut attempt: u64 = 0;
    loop {
        let mut h = hasher.clone();
        h.u64(attempt);
        let name = format!("{base}{}", suffix(h.finish()));
        if names.insert((ctx.namespace.to_string(), name.clone())) {
            return name;
        }
        attempt += 1;
    }
}

/// [`SUFFIX_LEN`] characters of [`SUFFIX_ALPHABET`] from a hash.
fn suffix(mut h: u64) -> String {
    let radix = SUFFIX_ALPHABET.len() as u64;
    (0..SUFFIX_LEN)
        .map(|_| {
            let c = SUFFIX_ALPHABET[(h % radix) as usize];
            h /= radix;
            char::from(c)
        })
        .collect()
}

/// 64-bit FNV-1a over length-prefixed fields, finished with a SplitMix64 mix: fixed across
/// platforms and Rust versions (unlike `DefaultHasher`), which stable names need.
#[derive(Clone)]
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn bytes(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }

    fn str(&mut self, s: &str) {
        self.u64(s.len() as u64);
        self.bytes(s.as_bytes());
    }

    fn finish(&self) -> u64 {
        let mut z = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use k8s_openapi::api::core::v1::{Container, ContainerPort, PodIP, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn port(name: Option<&str>, port: i32, target: Option<IntOrString>) -> ServicePort {
        ServicePort {
            name: name.map(str::to_string),
            port,
            target_port: target,
            ..Default::default()
        }
    }

    fn svc(ns: &str, name: &str, selector: &[(&str, &str)], ports: Vec<ServicePort>) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some(ns.to_string()),
                uid: Some(format!("uid-svc-{ns}-{name}")),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                selector: Some(labels(selector)),
                ports: Some(ports),
                cluster_ip: Some("10.96.0.10".to_string()),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn web(ns: &str) -> Service {
        svc(
            ns,
            "web",
            &[("app", "web")],
            vec![port(Some("http"), 80, Some(IntOrString::Int(8080)))],
        )
    }

    fn pod(ns: &str, name: &str, lbls: &[(&str, &str)], ips: &[&str]) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some(ns.to_string()),
                uid: Some(format!("uid-{name}")),
                labels: Some(labels(lbls)),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some("node-1".to_string()),
                containers: vec![Container {
                    name: "main".to_string(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some("Running".to_string()),
                pod_ip: ips.first().map(|s| s.to_string()),
                pod_ips: Some(ips.iter().map(|ip| PodIP { ip: ip.to_string() }).collect()),
                ..Default::default()
            }),
        }
    }

    fn web_pod(name: &str, ip: &str) -> Pod {
        pod("default", name, &[("app", "web")], &[ip])
    }

    fn with_container_ports(mut p: Pod, ports: &[(&str, i32, Option<&str>)]) -> Pod {
        let spec = p.spec.as_mut().unwrap();
        spec.containers[0].ports = Some(
            ports
                .iter()
                .map(|(name, number, proto)| ContainerPort {
                    name: Some(name.to_string()),
                    container_port: *number,
                    protocol: proto.map(str::to_string),
                    ..Default::default()
                })
                .collect(),
        );
        p
    }

    fn ready(pods: &[Pod]) -> Vec<PodView<'_>> {
        pods.iter()
            .map(|pod| PodView {
                pod,
                ready: true,
                terminating: false,
            })
            .collect()
    }

    fn eps(slice: &EndpointSlice) -> &[Endpoint] {
        slice.endpoints.as_deref().unwrap()
    }

    fn ips(slice: &EndpointSlice) -> Vec<&str> {
        eps(slice)
            .iter()
            .flat_map(|e| e.addresses.iter().map(String::as_str))
            .collect()
    }

    fn port_numbers(slice: &EndpointSlice) -> Vec<i32> {
        slice
            .ports
            .as_deref()
            .unwrap()
            .iter()
            .map(|p| p.port.unwrap())
            .collect()
    }

    fn conditions(e: &Endpoint) -> (bool, bool, bool) {
        let c = e.conditions.as_ref().unwrap();
        (c.ready.unwrap(), c.serving.unwrap(), c.terminating.unwrap())
    }

    fn is_placeholder(slice: &EndpointSlice) -> bool {
        slice.endpoints == Some(Vec::new()) && slice.ports == Some(Vec::new())
    }

    #[test]
    fn selector_must_match_every_pair() {
        let pods = vec![
            pod(
                "default",
                "a",
                &[("app", "web"), ("tier", "fe")],
                &["10.0.0.1"],
            ),
            pod("default", "b", &[("app", "web")], &["10.0.0.2"]),
            pod(
                "default",
                "c",
                &[("app", "db"), ("tier", "fe")],
                &["10.0.0.3"],
            ),
            pod("default", "d", &[("tier", "fe")], &["10.0.0.4"]),
            pod(
                "default",
                "e",
                &[("app", "web"), ("tier", "fe"), ("x", "y")],
                &["10.0.0.5"],
            ),
        ];
        let s = svc(
            "default",
            "web",
            &[("app", "web"), ("tier", "fe")],
            vec![port(None, 80, None)],
        );
        let out = endpoint_slices(&[s], &ready(&pods));
        assert_eq!(out.len(), 1);
        assert_eq!(ips(&out[0]), ["10.0.0.1", "10.0.0.5"]);
    }

    #[test]
    fn other_namespaces_are_excluded() {
        let pods = vec![
            pod("default", "a", &[("app", "web")], &["10.0.0.1"]),
            pod("other", "b", &[("app", "web")], &["10.0.0.2"]),
        ];
        let out = endpoint_slices(&[web("other")], &ready(&pods));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].metadata.namespace.as_deref(), Some("other"));
        assert_eq!(ips(&out[0]), ["10.0.0.2"]);
        let target = eps(&out[0])[0].target_ref.as_ref().unwrap();
        assert_eq!(target.namespace.as_deref(), Some("other"));
    }

    #[test]
    fn missing_namespace_means_default() {
        let mut s = web("default");
        s.metadata.namespace = None;
        let mut p = web_pod("a", "10.0.0.1");
        p.metadata.namespace = None;
        let q = pod("kube-system", "b", &[("app", "web")], &["10.0.0.2"]);
        let pods = [p, q];
        let out = endpoint_slices(&[s], &ready(&pods));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].metadata.namespace.as_deref(), Some("default"));
        assert_eq!(ips(&out[0]), ["10.0.0.1"]);
    }

    #[test]
    fn unscheduled_ipless_and_terminal_pods_are_excluded() {
        let mut unscheduled = web_pod("unscheduled", "10.0.0.1");
        unscheduled.spec.as_mut().unwrap().node_name = None;
        let ipless = pod("default", "ipless", &[("app", "web")], &[]);
        let mut succeeded = web_pod("succeeded", "10.0.0.3");
        succeeded.status.as_mut().unwrap().phase = Some("Succeeded".to_string());
        let mut failed = web_pod("failed", "10.0.0.4");
        failed.status.as_mut().unwrap().phase = Some("Failed".to_string());
        let mut pending = web_pod("pending", "10.0.0.5");
        pending.status.as_mut().unwrap().phase = Some("Pending".to_string());
        let mut host_net = web_pod("hostnet", "192.168.1.10");
        host_net.spec.as_mut().unwrap().host_network = Some(true);
        let pods = [unscheduled, ipless, succeeded, failed, pending, host_net];
        let out = endpoint_slices(&[web("default")], &ready(&pods));
        assert_eq!(out.len(), 1);
        assert_eq!(ips(&out[0]), ["10.0.0.5", "192.168.1.10"]);
    }

    #[test]
    fn pod_ip_alone_is_enough() {
        let mut p = web_pod("a", "10.0.0.1");
        p.status.as_mut().unwrap().pod_ips = None;
        let pods = [p];
        let out = endpoint_slices(&[web("default")], &ready(&pods));
        assert_eq!(ips(&out[0]), ["10.0.0.1"]);
    }

    #[test]
    fn named_target_port_resolved_per_pod_gives_one_slice_per_port_list() {
        let s = svc(
            "default",
            "web",
            &[("app", "web")],
            vec![port(
                Some("http"),
                80,
                Some(IntOrString::String("web".to_string())),
            )],
        );
        let pods = [
            with_container_ports(web_pod("a", "10.0.0.1"), &[("web", 8080, None)]),
            with_container_ports(web_pod("b", "10.0.0.2"), &[("web", 9090, Some("TCP"))]),
            with_container_ports(
                web_pod("c", "10.0.0.3"),
                &[("metrics", 9100, None), ("web", 8080, None)],
            ),
        ];
        let out = endpoint_slices(&[s], &ready(&pods));
        assert_eq!(out.len(), 2);
        let by_port: BTreeMap<i32, Vec<&str>> = out
            .iter()
            .map(|sl| (port_numbers(sl)[0], ips(sl)))
            .collect();
        assert_eq!(by_port[&8080], ["10.0.0.1", "10.0.0.3"]);
        assert_eq!(by_port[&9090], ["10.0.0.2"]);
        for sl in &out {
            let p = &sl.ports.as_ref().unwrap()[0];
            assert_eq!(p.name.as_deref(), Some("http"));
            assert_eq!(p.protocol.as_deref(), Some("TCP"));
        }
        assert_ne!(out[0].metadata.name, out[1].metadata.name);
    }

    #[test]
    fn pod_without_the_named_port_is_not_in_that_port_set() {
        // Single port: the pod resolves nothing, so it lands in a port-less group of its own.
        let single = svc(
            "default",
            "web",
            &[("app", "web")],
            vec![port(None, 80, Some(IntOrString::String("web".to_string())))],
        );
        let pods = [
            with_container_ports(web_pod("a", "10.0.0.1"), &[("web", 8080, None)]),
            with_container_ports(web_pod("b", "10.0.0.2"), &[("other", 8080, None)]),
        ];
        let out = endpoint_slices(&[single], &ready(&pods));
        assert_eq!(out.len(), 2);
        let with_port: Vec<_> = out.iter().filter(|s| port_numbers(s) == [8080]).collect();
        assert_eq!(with_port.len(), 1);
        assert_eq!(ips(with_port[0]), ["10.0.0.1"]);
        let without: Vec<_> = out.iter().filter(|s| port_numbers(s).is_empty()).collect();
        assert_eq!(without.len(), 1);
        assert_eq!(ips(without[0]), ["10.0.0.2"]);

        // Two ports: the pod keeps the port it does resolve.
        let double = svc(
            "default",
            "web",
            &[("app", "web")],
            vec![
                port(
                    Some("http"),
                    80,
                    Some(IntOrString::String("web".to_string())),
                ),
                port(Some("admin"), 81, Some(IntOrString::Int(9000))),
            ],
        );
        let out = endpoint_slices(&[double], &ready(&pods));
        assert_eq!(out.len(), 2);
        let full: Vec<_> = out
            .iter()
            .filter(|s| port_numbers(s) == [8080, 9000])
            .collect();
        assert_eq!(ips(full[0]), ["10.0.0.1"]);
        let partial: Vec<_> = out.iter().filter(|s| port_numbers(s) == [9000]).collect();
        assert_eq!(ips(partial[0]), ["10.0.0.2"]);
        assert_eq!(
            partial[0].ports.as_ref().unwrap()[0].name.as_deref(),
            Some("admin")
        );
    }

    #[test]
    fn named_port_protocol_must_match() {
        let mut sp = port(
            Some("dns"),
            53,
            Some(IntOrString::String("dns".to_string())),
        );
        sp.protocol = Some("UDP".to_string());
        let s = svc("default", "dns", &[("app", "web")], vec![sp]);
        let pods = [
            with_container_ports(web_pod("tcp-only", "10.0.0.1"), &[("dns", 5353, None)]),
            with_container_ports(
                web_pod("both", "10.0.0.2"),
                &[("dns", 5353, Some("TCP")), ("dns", 5354, Some("UDP"))],
            ),
        ];
        let out = endpoint_slices(&[s], &ready(&pods));
        let udp: Vec<_> = out.iter().filter(|s| port_numbers(s) == [5354]).collect();
        assert_eq!(udp.len(), 1);
        assert_eq!(ips(udp[0]), ["10.0.0.2"]);
        assert_eq!(
            udp[0].ports.as_ref().unwrap()[0].protocol.as_deref(),
            Some("UDP")
        );
        assert!(out
            .iter()
            .any(|s| port_numbers(s).is_empty() && ips(s) == ["10.0.0.1"]));
    }

    #[test]
    fn named_port_of_a_sidecar_counts_but_not_of_a_plain_init_container() {
        let s = svc(
            "default",
            "web",
            &[("app", "web")],
            vec![port(
                None,
                80,
                Some(IntOrString::String("proxy".to_string())),
            )],
        );
        let init = |name: &str, restart: Option<&str>| Container {
            name: name.to_string(),
            restart_policy: restart.map(str::to_string),
            ports: Some(vec![ContainerPort {
                name: Some("proxy".to_string()),
                container_port: 15001,
                ..Default::default()
            }]),
            ..Default::default()
        };
        let mut sidecar = web_pod("sidecar", "10.0.0.1");
        sidecar.spec.as_mut().unwrap().init_containers = Some(vec![init("envoy", Some("Always"))]);
        let mut plain = web_pod("plain", "10.0.0.2");
        plain.spec.as_mut().unwrap().init_containers = Some(vec![init("setup", None)]);
        let pods = [sidecar, plain];
        let out = endpoint_slices(&[s], &ready(&pods));
        let resolved: Vec<_> = out.iter().filter(|s| port_numbers(s) == [15001]).collect();
        assert_eq!(ips(resolved[0]), ["10.0.0.1"]);
        assert!(out
            .iter()
            .any(|s| port_numbers(s).is_empty() && ips(s) == ["10.0.0.2"]));
    }

    #[test]
    fn port_defaults() {
        let mut sp = port(None, 443, None);
        sp.app_protocol = Some("kubernetes.io/h2c".to_string());
        let zero = ServicePort {
            name: Some("zero".to_string()),
            port: 444,
            target_port: Some(IntOrString::Int(0)),
            protocol: Some("SCTP".to_string()),
            ..Default::default()
        };
        let s = svc("default", "web", &[("app", "web")], vec![sp, zero]);
        let pods = [web_pod("a", "10.0.0.1")];
        let out = endpoint_slices(&[s], &ready(&pods));
        assert_eq!(out.len(), 1);
        let ports = out[0].ports.as_ref().unwrap();
        assert_eq!(
            ports[0],
            EndpointPort {
                name: Some(String::new()),
                port: Some(443),
                protocol: Some("TCP".to_string()),
                app_protocol: Some("kubernetes.io/h2c".to_string()),
            }
        );
        assert_eq!(
            ports[1],
            EndpointPort {
                name: Some("zero".to_string()),
                port: Some(444),
                protocol: Some("SCTP".to_string()),
                app_protocol: None,
            }
        );
    }

    #[test]
    fn headless_service_without_ports_gets_portless_slice() {
        let mut s = svc("default", "db", &[("app", "web")], Vec::new());
        s.spec.as_mut().unwrap().cluster_ip = Some("None".to_string());
        let pods = [web_pod("a", "10.0.0.1")];
        let out = endpoint_slices(&[s], &ready(&pods));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].ports, Some(Vec::new()));
        assert_eq!(ips(&out[0]), ["10.0.0.1"]);
        let labels = out[0].metadata.labels.as_ref().unwrap();
        assert_eq!(labels.get(LABEL_HEADLESS).map(String::as_str), Some(""));
    }

    #[test]
    fn conditions_follow_readiness_and_termination() {
        let pods = [
            web_pod("ready", "10.0.0.1"),
            web_pod("unready", "10.0.0.2"),
            web_pod("ready-term", "10.0.0.3"),
            web_pod("unready-term", "10.0.0.4"),
        ];
        let views = [
            PodView {
                pod: &pods[0],
                ready: true,
                terminating: false,
            },
            PodView {
                pod: &pods[1],
                ready: false,
                terminating: false,
            },
            PodView {
                pod: &pods[2],
                ready: true,
                terminating: true,
            },
            PodView {
                pod: &pods[3],
                ready: false,
                terminating: true,
            },
        ];
        let out = endpoint_slices(&[web("default")], &views);
        assert_eq!(out.len(), 1);
        let got: Vec<_> = eps(&out[0]).iter().map(conditions).collect();
        // (ready, serving, terminating)
        assert_eq!(
            got,
            [
                (true, true, false),
                (false, false, false),
                (false, true, true),
                (false, false, true),
            ]
        );
    }

    #[test]
    fn deletion_timestamp_means_terminating() {
        let mut p = web_pod("a", "10.0.0.1");
        p.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
        let pods = [p];
        let out = endpoint_slices(&[web("default")], &ready(&pods));
        assert_eq!(conditions(&eps(&out[0])[0]), (false, true, true));
    }

    #[test]
    fn publish_not_ready_addresses_forces_ready_only() {
        let mut s = web("default");
        s.spec.as_mut().unwrap().publish_not_ready_addresses = Some(true);
        let pods = [
            web_pod("ready", "10.0.0.1"),
            web_pod("unready", "10.0.0.2"),
            web_pod("ready-term", "10.0.0.3"),
            web_pod("unready-term", "10.0.0.4"),
        ];
        let views: Vec<_> = pods
            .iter()
            .zip([(true, false), (false, false), (true, true), (false, true)])
            .map(|(pod, (ready, terminating))| PodView {
                pod,
                ready,
                terminating,
            })
            .collect();
        let out = endpoint_slices(&[s], &views);
        let got: Vec<_> = eps(&out[0]).iter().map(conditions).collect();
        assert_eq!(
            got,
            [
                (true, true, false),
                (true, false, false),
                (true, true, true),
                (true, false, true),
            ]
        );
    }

    #[test]
    fn many_pods_are_split_into_slices_of_at_most_100() {
        let pods: Vec<Pod> = (0..250)
            .map(|i| web_pod(&format!("p{i}"), &format!("10.0.{}.{}", i / 200, i % 200)))
            .collect();
        let out = endpoint_slices(&[web("default")], &ready(&pods));
        assert_eq!(out.len(), 3);
        let sizes: Vec<usize> = out.iter().map(|s| eps(s).len()).collect();
        assert_eq!(sizes, [100, 100, 50]);
        assert!(sizes.iter().all(|n| *n <= MAX_ENDPOINTS_PER_SLICE));
        // Sorted numerically across the run of slices, each IP exactly once.
        let all: Vec<IpAddr> = out
            .iter()
            .flat_map(|s| ips(s))
            .map(|ip| ip.parse().unwrap())
            .collect();
        assert_eq!(all.len(), 250);
        assert!(all.windows(2).all(|w| w[0] < w[1]));
        let names: HashSet<_> = out.iter().map(|s| s.metadata.name.clone()).collect();
        assert_eq!(names.len(), 3);
    }

    #[test]
    fn endpoints_are_sorted_by_ip_numerically() {
        let pods = [
            web_pod("a", "10.0.0.10"),
            web_pod("b", "10.0.0.9"),
            web_pod("c", "10.0.0.100"),
        ];
        let out = endpoint_slices(&[web("default")], &ready(&pods));
        assert_eq!(ips(&out[0]), ["10.0.0.9", "10.0.0.10", "10.0.0.100"]);
    }

    #[test]
    fn same_pod_twice_counts_once() {
        let pods = [web_pod("a", "10.0.0.1")];
        let views = [ready(&pods)[0], ready(&pods)[0]];
        let out = endpoint_slices(&[web("default")], &views);
        assert_eq!(ips(&out[0]), ["10.0.0.1"]);
    }

    #[test]
    fn ipv6_family_carries_only_ipv6_addresses() {
        let mut s = web("default");
        s.spec.as_mut().unwrap().ip_families = Some(vec!["IPv6".to_string()]);
        let pods = [
            pod(
                "default",
                "dual",
                &[("app", "web")],
                &["10.0.0.1", "fd00::1"],
            ),
            web_pod("v4only", "10.0.0.2"),
        ];
        let out = endpoint_slices(&[s], &ready(&pods));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].address_type, "IPv6");
        assert_eq!(ips(&out[0]), ["fd00::1"]);
    }

    #[test]
    fn dual_stack_service_gets_a_slice_per_family() {
        let mut s = web("default");
        s.spec.as_mut().unwrap().ip_families = Some(vec!["IPv6".to_string(), "IPv4".to_string()]);
        let pods = [
            pod(
                "default",
                "dual",
                &[("app", "web")],
                &["10.0.0.1", "fd00::1"],
            ),
            web_pod("v4only", "10.0.0.2"),
        ];
        let out = endpoint_slices(&[s.clone()], &ready(&pods));
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].address_type, "IPv4");
        assert_eq!(ips(&out[0]), ["10.0.0.1", "10.0.0.2"]);
        assert_eq!(out[1].address_type, "IPv6");
        assert_eq!(ips(&out[1]), ["fd00::1"]);

        // No IPv6 endpoint at all: the IPv6 family gets its own placeholder.
        let pods = [web_pod("v4only", "10.0.0.2")];
        let out = endpoint_slices(&[s], &ready(&pods));
        assert_eq!(out.len(), 2);
        assert_eq!(ips(&out[0]), ["10.0.0.2"]);
        assert_eq!(out[1].address_type, "IPv6");
        assert!(is_placeholder(&out[1]));
    }

    #[test]
    fn families_default_from_cluster_ips_then_ipv4() {
        let pods = [pod(
            "default",
            "dual",
            &[("app", "web")],
            &["10.0.0.1", "fd00::1"],
        )];
        let mut v6 = web("default");
        v6.spec.as_mut().unwrap().cluster_ip = Some("fd00:96::10".to_string());
        let out = endpoint_slices(&[v6], &ready(&pods));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].address_type, "IPv6");

        let mut unallocated = web("default");
        unallocated.spec.as_mut().unwrap().cluster_ip = None;
        let out = endpoint_slices(&[unallocated], &ready(&pods));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].address_type, "IPv4");
        let labels = out[0].metadata.labels.as_ref().unwrap();
        assert!(!labels.contains_key(LABEL_HEADLESS));
    }

    #[test]
    fn hostname_only_when_subdomain_is_the_service() {
        let mut inside = web_pod("inside", "10.0.0.1");
        let spec = inside.spec.as_mut().unwrap();
        spec.hostname = Some("web-0".to_string());
        spec.subdomain = Some("web".to_string());
        let mut elsewhere = web_pod("elsewhere", "10.0.0.2");
        let spec = elsewhere.spec.as_mut().unwrap();
        spec.hostname = Some("web-1".to_string());
        spec.subdomain = Some("other".to_string());
        let mut no_subdomain = web_pod("nosub", "10.0.0.3");
        no_subdomain.spec.as_mut().unwrap().hostname = Some("web-2".to_string());
        let pods = [inside, elsewhere, no_subdomain];
        let out = endpoint_slices(&[web("default")], &ready(&pods));
        let hostnames: Vec<Option<&str>> =
            eps(&out[0]).iter().map(|e| e.hostname.as_deref()).collect();
        assert_eq!(hostnames, [Some("web-0"), None, None]);
    }

    #[test]
    fn endpoint_fields() {
        let pods = [web_pod("a", "10.0.0.1")];
        let out = endpoint_slices(&[web("default")], &ready(&pods));
        let e = &eps(&out[0])[0];
        assert_eq!(
            *e,
            Endpoint {
                addresses: vec!["10.0.0.1".to_string()],
                conditions: Some(EndpointConditions {
                    ready: Some(true),
                    serving: Some(true),
                    terminating: Some(false),
                }),
                node_name: Some("node-1".to_string()),
                target_ref: Some(ObjectReference {
                    kind: Some("Pod".to_string()),
                    namespace: Some("default".to_string()),
                    name: Some("a".to_string()),
                    uid: Some("uid-a".to_string()),
                    ..Default::default()
                }),
                ..Default::default()
            }
        );
    }

    #[test]
    fn slice_metadata() {
        let mut s = web("default");
        s.metadata.labels = Some(labels(&[
            ("team", "blue"),
            (LABEL_SERVICE_NAME, "spoofed"),
            (LABEL_MANAGED_BY, "me"),
            (LABEL_HEADLESS, "x"),
        ]));
        let pods = [web_pod("a", "10.0.0.1")];
        let out = endpoint_slices(&[s], &ready(&pods));
        let meta = &out[0].metadata;
        let name = meta.name.as_deref().unwrap();
        assert!(name.starts_with("web-"));
        assert_eq!(name.len(), "web-".len() + SUFFIX_LEN);
        assert!(name["web-".len()..]
            .bytes()
            .all(|b| SUFFIX_ALPHABET.contains(&b)));
        assert_eq!(meta.generate_name.as_deref(), Some("web-"));
        assert_eq!(meta.namespace.as_deref(), Some("default"));
        assert_eq!(
            meta.labels.as_ref().unwrap(),
            &labels(&[
                ("team", "blue"),
                (LABEL_SERVICE_NAME, "web"),
                (LABEL_MANAGED_BY, CONTROLLER_NAME),
            ])
        );
        assert_eq!(
            meta.owner_references.as_deref().unwrap(),
            [OwnerReference {
                api_version: "v1".to_string(),
                kind: "Service".to_string(),
                name: "web".to_string(),
                uid: "uid-svc-default-web".to_string(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]
        );
        assert_eq!(meta.annotations, None);
        assert_eq!(meta.resource_version, None);
    }

    #[test]
    fn long_service_name_is_cut_like_generate_name() {
        let long = "s".repeat(63);
        let s = svc(
            "default",
            &long,
            &[("app", "web")],
            vec![port(None, 80, None)],
        );
        let pods = [web_pod("a", "10.0.0.1")];
        let out = endpoint_slices(&[s], &ready(&pods));
        let name = out[0].metadata.name.as_deref().unwrap();
        assert_eq!(name.len(), 63);
        assert!(name.starts_with(&long[..MAX_GENERATED_NAME_LENGTH]));
        assert_eq!(
            out[0].metadata.generate_name.as_deref(),
            Some(format!("{long}-").as_str())
        );
    }

    #[test]
    fn derivation_is_deterministic_and_order_independent() {
        let mut pods: Vec<Pod> = (0..130)
            .map(|i| {
                with_container_ports(
                    web_pod(&format!("p{i}"), &format!("10.1.0.{}", i + 1)),
                    &[("web", if i % 2 == 0 { 8080 } else { 9090 }, None)],
                )
            })
            .collect();
        pods.push(pod("other", "x", &[("app", "web")], &["10.2.0.1"]));
        let named = svc(
            "default",
            "web",
            &[("app", "web")],
            vec![port(None, 80, Some(IntOrString::String("web".to_string())))],
        );
        let mut services = vec![named, web("other"), web("empty")];
        let views = ready(&pods);

        let first = endpoint_slices(&services, &views);
        let second = endpoint_slices(&services, &views);
        assert_eq!(first, second);
        let bytes = |slices: &[EndpointSlice]| k8s_openapi::serde_json::to_vec(slices).unwrap();
        assert_eq!(bytes(&first), bytes(&second));

        services.reverse();
        let mut reversed_views = views.clone();
        reversed_views.reverse();
        let third = endpoint_slices(&services, &reversed_views);
        assert_eq!(bytes(&first), bytes(&third));

        // Sorted by (namespace, service, family, ports, index), names unique.
        let order: Vec<(&str, &str)> = first
            .iter()
            .map(|s| {
                (
                    s.metadata.namespace.as_deref().unwrap(),
                    s.metadata.labels.as_ref().unwrap()[LABEL_SERVICE_NAME].as_str(),
                )
            })
            .collect();
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(order, sorted);
        let names: HashSet<_> = first.iter().map(|s| s.metadata.name.clone()).collect();
        assert_eq!(names.len(), first.len());
        // web: 8080 group 65 pods (1 slice), 9090 group 65 pods (1 slice); other: 1; empty: 1.
        assert_eq!(first.len(), 4);
    }

    #[test]
    fn names_stay_when_endpoints_change() {
        let pods_a = [web_pod("a", "10.0.0.1")];
        let pods_b = [web_pod("a", "10.0.0.1"), web_pod("b", "10.0.0.2")];
        let a = endpoint_slices(&[web("default")], &ready(&pods_a));
        let b = endpoint_slices(&[web("default")], &ready(&pods_b));
        assert_eq!(a[0].metadata.name, b[0].metadata.name);
    }

    #[test]
    fn placeholder_for_a_service_matching_no_pods() {
        let pods = [pod("default", "db", &[("app", "db")], &["10.0.0.1"])];
        let out = endpoint_slices(&[web("default")], &ready(&pods));
        assert_eq!(out.len(), 1);
        let slice = &out[0];
        assert!(is_placeholder(slice));
        assert_eq!(slice.address_type, "IPv4");
        assert_eq!(slice.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(
            slice.metadata.labels.as_ref().unwrap()[LABEL_SERVICE_NAME],
            "web"
        );
        assert_eq!(slice.metadata.owner_references.as_ref().unwrap().len(), 1);
        // Serialized, the empty lists are present (as the controller's create request has them).
        let json = k8s_openapi::serde_json::to_value(slice).unwrap();
        assert_eq!(json["endpoints"], k8s_openapi::serde_json::json!([]));
        assert_eq!(json["ports"], k8s_openapi::serde_json::json!([]));
        assert_eq!(json["kind"], "EndpointSlice");
        assert_eq!(json["apiVersion"], "discovery.k8s.io/v1");

        // Selected pods that are all unusable also leave just the placeholder.
        let mut done = web_pod("done", "10.0.0.2");
        done.status.as_mut().unwrap().phase = Some("Succeeded".to_string());
        let pods = [done];
        let out = endpoint_slices(&[web("default")], &ready(&pods));
        assert_eq!(out.len(), 1);
        assert!(is_placeholder(&out[0]));
    }

    #[test]
    fn services_without_selector_or_external_name_get_nothing() {
        let pods = [web_pod("a", "10.0.0.1")];
        let mut none = web("default");
        none.spec.as_mut().unwrap().selector = None;
        let mut empty = web("default");
        empty.metadata.name = Some("empty".to_string());
        empty.spec.as_mut().unwrap().selector = Some(BTreeMap::new());
        let mut external = web("default");
        external.metadata.name = Some("ext".to_string());
        let spec = external.spec.as_mut().unwrap();
        spec.type_ = Some("ExternalName".to_string());
        spec.external_name = Some("example.com".to_string());
        let mut specless = web("default");
        specless.metadata.name = Some("specless".to_string());
        specless.spec = None;
        let out = endpoint_slices(&[none, empty, external, specless], &ready(&pods));
        assert!(out.is_empty());
        assert!(endpoint_slices(&[], &ready(&pods)).is_empty());
    }

    #[test]
    fn duplicate_service_counts_once() {
        let pods = [web_pod("a", "10.0.0.1")];
        let out = endpoint_slices(&[web("default"), web("default")], &ready(&pods));
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn suffix_uses_the_generate_name_alphabet() {
        for h in [0, 1, u64::MAX, 0x1234_5678_9abc_def0] {
            let s = suffix(h);
            assert_eq!(s.len(), SUFFIX_LEN);
            assert!(s.bytes().all(|b| SUFFIX_ALPHABET.contains(&b)));
        }
    }
}
