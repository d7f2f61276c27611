//! apply / delete: objects from YAML into the sandbox's state, pods made real, and the
//! manifests the agents read (including the EndpointSlices the sandbox derives).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use podnet_cluster::manifests::parse_file;
use podnet_cluster::AnyObject;
use podnet_sandbox::endpoints::{endpoint_slices, PodView};

use crate::sandbox::pods;
use crate::sandbox::state::{node_objects, write_atomic_if_changed, yaml_docs, Sandbox, State};

/// `name` → `default/name`; `ns/name` unchanged.
pub fn qualify(s: &str) -> String {
    if s.contains('/') {
        s.to_string()
    } else {
        format!("default/{s}")
    }
}

fn obj_key(o: &AnyObject) -> String {
    let (_, ns, name) = o.key();
    if ns.is_empty() {
        name
    } else {
        format!("{ns}/{name}")
    }
}

/// The namespaces every cluster has.
pub fn default_namespaces(sb: &mut Sandbox) {
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let mut n = Namespace::default();
        n.metadata.name = Some(ns.into());
        n.metadata.labels =
            Some([("kubernetes.io/metadata.name".to_string(), ns.to_string())].into());
        sb.state.namespaces.insert(ns.into(), n);
    }
}

/// Reads files and directories (their .yaml/.yml/.json files, sorted); all must parse.
pub fn load(files: &[PathBuf]) -> Result<Vec<AnyObject>> {
    let mut paths = Vec::new();
    for f in files {
        if f.is_dir() {
            let mut inner: Vec<PathBuf> = std::fs::read_dir(f)
                .with_context(|| format!("reading {}", f.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.extension()
                        .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
                })
                .collect();
            inner.sort();
            paths.extend(inner);
        } else {
            paths.push(f.clone());
        }
    }
    let mut out = Vec::new();
    for p in paths {
        let text =
            std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
        out.extend(parse_file(&p, &text)?);
    }
    Ok(out)
}

const SERVICE_NET: (Ipv4Addr, u32) = (Ipv4Addr::new(10, 96, 0, 0), 12);

fn in_service_net(ip: Ipv4Addr) -> bool {
    let mask = u32::MAX << (32 - SERVICE_NET.1);
    u32::from(ip) & mask == u32::from(SERVICE_NET.0)
}

/// Validates and defaults a Service the way the API server does; allocates its ClusterIP
/// and node ports.
fn admit_service(sb: &Sandbox, mut svc: Service) -> Result<Service> {
    let key = format!(
        "{}/{}",
        svc.metadata.namespace.as_deref().unwrap_or("default"),
        svc.metadata.name.as_deref().unwrap_or_default()
    );
    let old = sb.state.services.get(&key);
    let spec = svc.spec.get_or_insert_with(Default::default);
    let ty = spec.type_.clone().unwrap_or_else(|| "ClusterIP".into());
    if !matches!(
        ty.as_str(),
        "ClusterIP" | "NodePort" | "LoadBalancer" | "ExternalName"
    ) {
        bail!("service {key}: unsupported type {ty:?}");
    }
    spec.type_ = Some(ty.clone());
    let ports = spec.ports.get_or_insert_with(Vec::new);
    let headless = spec.cluster_ip.as_deref() == Some("None");
    if ports.is_empty() && !headless && ty != "ExternalName" {
        bail!("service {key}: spec.ports: Required value");
    }
    let mut names = BTreeSet::new();
    let used_node_ports: BTreeSet<i32> = sb
        .state
        .services
        .iter()
        .filter(|(k, _)| **k != key)
        .flat_map(|(_, s)| s.spec.iter().flat_map(|s| s.ports.iter().flatten()))
        .filter_map(|p| p.node_port)
        .collect();
    let mut next_node_port = 30000;
    let count = ports.len();
    for p in ports.iter_mut() {
        if !(1..=65535).contains(&p.port) {
            bail!("service {key}: port {} out of range", p.port);
        }
        let proto = p.protocol.clone().unwrap_or_else(|| "TCP".into());
        if !matches!(proto.as_str(), "TCP" | "UDP" | "SCTP") {
            bail!("service {key}: unsupported protocol {proto:?}");
        }
        p.protocol = Some(proto);
        if count > 1 && p.name.as_deref().unwrap_or("").is_empty() {
            bail!("service {key}: spec.ports: every port needs a name when there are several");
        }
        if !names.insert(p.name.clone().unwrap_or_default()) {
            bail!("service {key}: duplicate port name {:?}", p.name);
        }
        if p.target_port.is_none() {
            p.target_port =
                Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(p.port));
        }
        if matches!(ty.as_str(), "NodePort" | "LoadBalancer") && p.node_port.is_none() {
            let old_np = old
                .and_then(|o| o.spec.as_ref())
                .and_then(|s| s.ports.as_ref())
                .and_then(|ps| ps.iter().find(|q| q.name == p.name && q.port == p.port))
                .and_then(|q| q.node_port);
            p.node_port = match old_np {
                Some(np) => Some(np),
                None => {
                    while used_node_ports.contains(&next_node_port) {
                        next_node_port += 1;
                    }
                    next_node_port += 1;
                    Some(next_node_port - 1)
                }
            };
        }
    }
    let old_ip = old
        .and_then(|o| o.spec.as_ref())
        .and_then(|s| s.cluster_ip.clone());
    let wanted = spec.cluster_ip.clone().filter(|s| !s.is_empty());
    let ip = match (wanted, old_ip) {
        (Some(w), Some(o)) if w != o => {
            bail!("service {key}: spec.clusterIP: field is immutable ({o})")
        }
        (_, Some(o)) => o,
        (Some(w), None) if w == "None" => w,
        (Some(w), None) => {
            let ip: Ipv4Addr = w
                .parse()
                .map_err(|_| anyhow!("service {key}: bad clusterIP {w:?}"))?;
            if !in_service_net(ip) {
                bail!("service {key}: clusterIP {ip} is not in the service range 10.96.0.0/12");
            }
            if sb
                .state
                .services
                .values()
                .any(|s| s.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some(&w))
            {
                bail!("service {key}: clusterIP {ip} is already allocated");
            }
            w
        }
        (None, None) => allocate_ip(sb, &key)?,
    };
    spec.cluster_ip = Some(ip.clone());
    spec.cluster_ips = Some(vec![ip]);
    spec.ip_families.get_or_insert_with(|| vec!["IPv4".into()]);
    spec.ip_family_policy
        .get_or_insert_with(|| "SingleStack".into());
    spec.session_affinity.get_or_insert_with(|| "None".into());
    spec.internal_traffic_policy
        .get_or_insert_with(|| "Cluster".into());
    if matches!(ty.as_str(), "NodePort" | "LoadBalancer") {
        spec.external_traffic_policy
            .get_or_insert_with(|| "Cluster".into());
    }
    if svc.metadata.uid.is_none() {
        svc.metadata.uid = old.and_then(|o| o.metadata.uid.clone());
    }
    Ok(svc)
}

fn allocate_ip(sb: &Sandbox, key: &str) -> Result<String> {
    let dns = Ipv4Addr::new(10, 96, 0, 10);
    if key == "kube-system/kube-dns" {
        return Ok(dns.to_string());
    }
    let used: BTreeSet<String> = sb
        .state
        .services
        .values()
        .filter_map(|s| s.spec.as_ref()?.cluster_ip.clone())
        .collect();
    let base = u32::from(SERVICE_NET.0);
    (1..(1u32 << (32 - SERVICE_NET.1)) - 1)
        .map(|i| Ipv4Addr::from(base + i))
        .find(|ip| *ip != dns && !used.contains(&ip.to_string()))
        .map(|ip| ip.to_string())
        .ok_or_else(|| anyhow!("the service range 10.96.0.0/12 is full"))
}

/// Applies files: every document is parsed and checked before anything changes.
pub fn apply_files(name: &str, files: &[PathBuf]) -> Result<()> {
    let objects = load(files)?;
    let mut sb = Sandbox::open(name)?;
    let mut namespaces: BTreeSet<String> = sb.state.namespaces.keys().cloned().collect();
    for o in &objects {
        match o {
            AnyObject::Namespace(n) => {
                namespaces.insert(n.metadata.name.clone().unwrap_or_default());
            }
            AnyObject::Node(_) | AnyObject::EndpointSlice(_) => {
                bail!(
                    "{} {}: managed by the sandbox, not applied",
                    o.kind(),
                    obj_key(o)
                )
            }
            _ => {}
        }
    }
    for o in &objects {
        let (_, ns, _) = o.key();
        if o.kind().namespaced() && !namespaces.contains(&ns) {
            bail!("{} {}: namespaces \"{ns}\" not found", o.kind(), obj_key(o));
        }
        if let AnyObject::Pod(p) = o {
            check_pod(&sb, p)?;
        }
    }
    let mut report = Vec::new();
    let mut new_pods = Vec::new();
    for o in objects {
        let key = obj_key(&o);
        match o {
            AnyObject::Namespace(n) => {
                let verb = verb(sb.state.namespaces.get(&key), &n);
                sb.state.namespaces.insert(key.clone(), n);
                report.push(format!("namespace/{key} {verb}"));
            }
            AnyObject::Service(s) => {
                let s = admit_service(&sb, s)?;
                let verb = verb(sb.state.services.get(&key), &s);
                sb.state.services.insert(key.clone(), s);
                report.push(format!("service/{key} {verb}"));
            }
            AnyObject::NetworkPolicy(p) => {
                let verb = verb(sb.state.policies.get(&key), &p);
                sb.state.policies.insert(key.clone(), p);
                report.push(format!("networkpolicy/{key} {verb}"));
            }
            AnyObject::Pod(p) => match sb.state.pods.get_mut(&key) {
                Some(rec) => {
                    let changed = rec.pod.metadata.labels != p.metadata.labels
                        || rec.pod.metadata.annotations != p.metadata.annotations;
                    rec.pod.metadata.labels = p.metadata.labels;
                    rec.pod.metadata.annotations = p.metadata.annotations;
                    report.push(format!(
                        "pod/{key} {}",
                        if changed { "configured" } else { "unchanged" }
                    ));
                }
                None => new_pods.push(p),
            },
            AnyObject::Node(_) | AnyObject::EndpointSlice(_) => {}
        }
    }
    for p in new_pods {
        let key = pods::key(&p);
        if let Err(e) = pods::create(&mut sb, p) {
            // Keep what was made so far consistent before failing.
            sync_manifests(&sb)?;
            sb.save()?;
            return Err(e);
        }
        report.push(format!("pod/{key} created"));
    }
    pods::refresh_readiness(&mut sb, Duration::from_secs(10));
    sync_manifests(&sb)?;
    sb.save()?;
    for line in report {
        println!("{line}");
    }
    Ok(())
}

fn verb<T: PartialEq>(old: Option<&T>, new: &T) -> &'static str {
    match old {
        None => "created",
        Some(o) if o == new => "unchanged",
        Some(_) => "configured",
    }
}

/// A pod's spec may not change once created (only labels and annotations).
fn check_pod(sb: &Sandbox, p: &Pod) -> Result<()> {
    let key = pods::key(p);
    let spec = p
        .spec
        .as_ref()
        .ok_or_else(|| anyhow!("pod {key}: spec: Required value"))?;
    if spec.containers.is_empty() {
        bail!("pod {key}: spec.containers: Required value");
    }
    for c in &spec.containers {
        for port in c.ports.iter().flatten() {
            if !(1..=65535).contains(&port.container_port) {
                bail!(
                    "pod {key}: containerPort {} out of range",
                    port.container_port
                );
            }
            if let Some(proto) = &port.protocol {
                if !matches!(proto.as_str(), "TCP" | "UDP" | "SCTP") {
                    bail!("pod {key}: unsupported protocol {proto:?}");
                }
            }
        }
    }
    if let Some(rec) = sb.state.pods.get(&key) {
        let mut want = spec.clone();
        let have = rec.pod.spec.clone().unwrap_or_default();
        if want.node_name.is_none() {
            want.node_name = have.node_name.clone();
        }
        if want != have {
            bail!("pod {key}: pod updates may not change fields other than labels and annotations (delete and re-create it)");
        }
    }
    if let Some(n) = &spec.node_name {
        if !sb.state.nodes.iter().any(|x| &x.name == n) {
            bail!("pod {key}: spec.nodeName {n:?} is not a node of this sandbox");
        }
    }
    Ok(())
}

/// Deletes the objects of `files`, or `KIND NS/NAME`.
pub fn delete(name: &str, files: &[PathBuf], target: &[String]) -> Result<()> {
    let mut keys: Vec<(String, String)> = Vec::new();
    if !files.is_empty() {
        for o in load(files)? {
            keys.push((o.kind().name().to_lowercase(), obj_key(&o)));
        }
    }
    match target {
        [] => {}
        [kind, obj] => {
            let kind = match kind.as_str() {
                "pod" | "pods" | "po" => "pod",
                "service" | "services" | "svc" => "service",
                "networkpolicy" | "networkpolicies" | "netpol" => "networkpolicy",
                "namespace" | "namespaces" | "ns" => "namespace",
                k => bail!("cannot delete {k:?}: use pod, service, networkpolicy or namespace"),
            };
            let obj = if kind == "namespace" {
                obj.clone()
            } else {
                qualify(obj)
            };
            keys.push((kind.into(), obj));
        }
        _ => bail!("usage: delete -f FILE... | delete KIND NS/NAME"),
    }
    if keys.is_empty() {
        bail!("nothing to delete: give -f FILE or KIND NS/NAME");
    }
    let mut sb = Sandbox::open(name)?;
    let mut doomed = Vec::new();
    for (kind, key) in &keys {
        let found = match kind.as_str() {
            "pod" => {
                let hit = sb.state.pods.contains_key(key);
                if hit {
                    doomed.push(key.clone());
                }
                hit
            }
            "service" => sb.state.services.remove(key).is_some(),
            "networkpolicy" => sb.state.policies.remove(key).is_some(),
            "namespace" => {
                let prefix = format!("{key}/");
                sb.state.services.retain(|k, _| !k.starts_with(&prefix));
                sb.state.policies.retain(|k, _| !k.starts_with(&prefix));
                doomed.extend(
                    sb.state
                        .pods
                        .keys()
                        .filter(|k| k.starts_with(&prefix))
                        .cloned(),
                );
                sb.state.namespaces.remove(key).is_some()
            }
            _ => false,
        };
        if found {
            println!("{kind}/{key} deleted");
        } else {
            eprintln!("{kind}/{key} not found");
        }
    }
    // Pods pass through terminating: their endpoints turn not-ready/terminating first.
    if !doomed.is_empty() {
        let now = k8s_openapi::jiff::Timestamp::now();
        for k in &doomed {
            if let Some(rec) = sb.state.pods.get_mut(k) {
                rec.terminating = true;
                rec.pod.metadata.deletion_timestamp =
                    Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now));
            }
        }
        sync_manifests(&sb)?;
        sb.save()?;
        std::thread::sleep(Duration::from_millis(300));
        let mut first_err = None;
        for k in &doomed {
            if let Some(rec) = sb.state.pods.remove(k) {
                if let Err(e) = pods::destroy(&sb, &rec) {
                    first_err.get_or_insert(e);
                }
            }
        }
        sync_manifests(&sb)?;
        sb.save()?;
        if let Some(e) = first_err {
            return Err(e);
        }
    } else {
        sync_manifests(&sb)?;
        sb.save()?;
    }
    Ok(())
}

/// Re-checks pod readiness (waiting up to `wait` for pods not ready yet) and, when that
/// changed anything, writes the manifests and the state.
pub fn refresh(sb: &mut Sandbox, wait: Duration) -> Result<()> {
    if pods::refresh_readiness(sb, wait) {
        sync_manifests(sb)?;
        sb.save()?;
    }
    Ok(())
}

/// The EndpointSlices of the sandbox's Services, derived from its Pods.
pub fn derived_slices(st: &State) -> Vec<EndpointSlice> {
    let views: Vec<PodView<'_>> = st
        .pods
        .values()
        .map(|r| PodView {
            pod: &r.pod,
            ready: r.ready,
            terminating: r.terminating,
        })
        .collect();
    let services: Vec<Service> = st.services.values().cloned().collect();
    endpoint_slices(&services, &views)
}

/// Writes the manifests the agents read (only files whose content changed).
pub fn sync_manifests(sb: &Sandbox) -> Result<()> {
    let dir = sb.paths.manifests();
    let st = &sb.state;
    let services: Vec<Service> = st.services.values().cloned().collect();
    let files: [(&str, String); 6] = [
        ("nodes.yaml", yaml_docs(node_objects(st))?),
        ("namespaces.yaml", yaml_docs(st.namespaces.values())?),
        ("services.yaml", yaml_docs(&services)?),
        ("pods.yaml", yaml_docs(st.pods.values().map(|r| &r.pod))?),
        ("networkpolicies.yaml", yaml_docs(st.policies.values())?),
        ("endpointslices.yaml", yaml_docs(derived_slices(st))?),
    ];
    for (file, text) in files {
        write_atomic_if_changed(&dir.join(file), text.as_bytes())?;
    }
    Ok(())
}
