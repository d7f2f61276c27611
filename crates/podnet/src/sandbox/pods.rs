//! Pods: a network namespace wired by the real podnet-cni with the node's config (as kubelet
//! would call it), a resolv.conf for the cluster DNS, and the pod's processes.

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use k8s_openapi::api::core::v1::{Container, Pod};
use podnet_netdev::NetNs;
use serde_json::{json, Value};

use crate::sandbox::net::{add_netns, alive, remove_netns, spawn_in, stop_group};
use crate::sandbox::state::{ns_name, PodRec, Sandbox};
use podnet::cni_exec::{invoke, sibling, Call};

/// The cluster DNS Service address.
pub const DNS_IP: &str = "10.96.0.10";

/// `ns/name` of a pod.
pub fn key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

/// The declared ports of a pod: (port, protocol upper-case).
pub fn declared_ports(pod: &Pod) -> Vec<(u16, String)> {
    let mut out = Vec::new();
    for c in pod.spec.iter().flat_map(|s| s.containers.iter()) {
        for p in c.ports.iter().flatten() {
            let proto = p.protocol.clone().unwrap_or_else(|| "TCP".into());
            if let Ok(port) = u16::try_from(p.container_port) {
                out.push((port, proto));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The pod's first IP.
pub fn pod_ip(rec: &PodRec) -> Option<IpAddr> {
    rec.pod.status.as_ref()?.pod_ip.as_ref()?.parse().ok()
}

fn netns_path(ns: &str) -> PathBuf {
    PathBuf::from("/run/netns").join(ns)
}

/// The plugin config kubelet would pass for the node: the conflist's first plugin with the
/// list's name and version.
fn plugin_config(conflist: &Path) -> Result<Value> {
    let text = std::fs::read(conflist).with_context(|| {
        format!(
            "the node's CNI config {} (is its agent running?)",
            conflist.display()
        )
    })?;
    let list: Value = serde_json::from_slice(&text).context("CNI config is not JSON")?;
    let mut conf = list["plugins"][0].clone();
    if !conf.is_object() {
        bail!("{} has no plugins", conflist.display());
    }
    conf["name"] = list["name"].clone();
    conf["cniVersion"] = list["cniVersion"].clone();
    Ok(conf)
}

fn cni(
    sb: &Sandbox,
    node: &str,
    command: &str,
    container_id: &str,
    netns: &str,
    pod: &Pod,
) -> Result<Value> {
    let plugin = sibling("podnet-cni")?;
    let node_rec = sb
        .state
        .nodes
        .iter()
        .find(|n| n.name == node)
        .ok_or_else(|| anyhow!("no node {node}"))?;
    let node_ns = NetNs::open(netns_path(&node_rec.netns))?;
    let conf = plugin_config(&sb.paths.conflist(node))?;
    let mut call = Call::attachment(command, container_id, &netns_path(netns));
    call.args = Some(format!(
        "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={container_id};K8S_POD_UID={}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or_default(),
        pod.metadata.uid.as_deref().unwrap_or_default(),
    ));
    let reply = invoke(&plugin, &node_ns, &call, &serde_json::to_vec(&conf)?)?;
    if !reply.ok() {
        bail!("podnet-cni {command} failed: {}", reply.stdout.trim());
    }
    Ok(reply.json)
}

fn resolv_conf(namespace: &str) -> String {
    format!(
        "search {namespace}.svc.cluster.local svc.cluster.local cluster.local\nnameserver {DNS_IP}\noptions ndots:5\n"
    )
}

fn container_args(c: &Container, pod_name: &str) -> Option<(PathBuf, Vec<String>)> {
    if let Some(cmd) = c.command.as_ref().filter(|c| !c.is_empty()) {
        let mut args: Vec<String> = cmd[1..].to_vec();
        args.extend(c.args.iter().flatten().cloned());
        return Some((PathBuf::from(&cmd[0]), args));
    }
    let ports = c.ports.as_ref().filter(|p| !p.is_empty())?;
    let exe = std::env::current_exe().ok()?;
    let mut args = vec![
        "sandbox".to_string(),
        "serve-pod".into(),
        "--pod".into(),
        pod_name.into(),
    ];
    for p in ports {
        let flag = if p.protocol.as_deref() == Some("UDP") {
            "--udp"
        } else {
            "--tcp"
        };
        args.push(flag.into());
        args.push(p.container_port.to_string());
    }
    Some((exe, args))
}

/// Chooses a node: `spec.nodeName` if set (must exist), else the one with fewest pods.
pub fn schedule(sb: &Sandbox, pod: &Pod) -> Result<String> {
    if let Some(n) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) {
        if !sb.state.nodes.iter().any(|x| x.name == n) {
            bail!(
                "pod {}: spec.nodeName {n:?} is not a node of this sandbox",
                key(pod)
            );
        }
        return Ok(n);
    }
    let count = |n: &str| sb.state.pods.values().filter(|p| p.node == n).count();
    sb.state
        .nodes
        .iter()
        .min_by_key(|n| count(&n.name))
        .map(|n| n.name.clone())
        .ok_or_else(|| anyhow!("the sandbox has no nodes"))
}

/// Creates a pod: namespace, CNI ADD, resolv.conf, processes. On failure, nothing is left.
pub fn create(sb: &mut Sandbox, mut pod: Pod) -> Result<()> {
    let node = schedule(sb, &pod)?;
    let n = sb.state.next();
    let netns = ns_name(&sb.state.name, &format!("pod-{n}"));
    let container_id = format!("{}-pod-{n}", sb.state.name);
    if pod.metadata.uid.is_none() {
        pod.metadata.uid = Some(format!("00000000-0000-4000-8000-{n:012x}"));
    }
    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.node_name = Some(node.clone());
    add_netns(&netns)?;
    let made = (|| -> Result<PodRec> {
        let namespace = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let etc = Path::new("/etc/netns").join(&netns);
        std::fs::create_dir_all(&etc)?;
        std::fs::write(etc.join("resolv.conf"), resolv_conf(&namespace))?;
        let result = cni(sb, &node, "ADD", &container_id, &netns, &pod)?;
        let ips: Vec<String> = result["ips"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["address"].as_str())
            .filter_map(|a| a.split('/').next())
            .map(str::to_string)
            .collect();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let mut pids = Vec::new();
        for c in pod.spec.iter().flat_map(|s| s.containers.iter()) {
            if let Some((prog, args)) = container_args(c, &name) {
                let log = sb
                    .paths
                    .logs()
                    .join(format!("pod-{namespace}-{name}-{}.log", c.name));
                pids.push(spawn_in(&netns, &prog, &args, &log)?);
            }
        }
        let host_ip = sb
            .state
            .nodes
            .iter()
            .find(|x| x.name == node)
            .map(|x| x.address.clone())
            .unwrap_or_default();
        let now = k8s_openapi::jiff::Timestamp::now();
        let status = json!({
            "phase": "Running",
            "hostIP": host_ip, "hostIPs": [{"ip": host_ip}],
            "podIP": ips.first(), "podIPs": ips.iter().map(|i| json!({"ip": i})).collect::<Vec<_>>(),
            "startTime": now.to_string(),
            "qosClass": "BestEffort",
        });
        pod.status = Some(serde_json::from_value(status)?);
        Ok(PodRec {
            pod: pod.clone(),
            netns: netns.clone(),
            container_id: container_id.clone(),
            node: node.clone(),
            pids,
            ready: false,
            terminating: false,
        })
    })();
    match made {
        Ok(rec) => {
            sb.state.pods.insert(key(&rec.pod), rec);
            Ok(())
        }
        Err(e) => {
            let _ = cni(sb, &node, "DEL", &container_id, &netns, &pod);
            remove_netns(&netns);
            Err(e.context(format!("creating pod {}", key(&pod))))
        }
    }
}

/// Tears a pod down: processes, CNI DEL, namespace.
pub fn destroy(sb: &Sandbox, rec: &PodRec) -> Result<()> {
    for &pid in &rec.pids {
        stop_group(pid, Duration::from_secs(1));
    }
    let r = cni(
        sb,
        &rec.node,
        "DEL",
        &rec.container_id,
        &rec.netns,
        &rec.pod,
    );
    remove_netns(&rec.netns);
    r.map(|_| ())
}

/// Whether every declared port of the pod accepts connections (TCP: a connect from inside
/// the pod's namespace to its IP; UDP: an answer from the built-in server, other UDP ports
/// count once the process runs).
pub fn check_ready(rec: &PodRec) -> bool {
    if rec.terminating || rec.pids.iter().any(|&p| !alive(p)) {
        return false;
    }
    let Some(ip) = pod_ip(rec) else {
        return false;
    };
    let Ok(ns) = NetNs::open(netns_path(&rec.netns)) else {
        return false;
    };
    let builtin = rec
        .pod
        .spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .all(|c| c.command.as_ref().is_none_or(|c| c.is_empty()));
    declared_ports(&rec.pod).into_iter().all(|(port, proto)| {
        let addr = SocketAddr::new(ip, port);
        match proto.as_str() {
            "TCP" => ns
                .run(|| TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok())
                .unwrap_or(false),
            "UDP" if builtin => ns
                .run(|| {
                    matches!(
                        podnet_sandbox::probe::probe(
                            addr,
                            podnet_sandbox::probe::Proto::Udp,
                            Duration::from_millis(300)
                        ),
                        podnet_sandbox::probe::Outcome::Allow { .. }
                    )
                })
                .unwrap_or(false),
            _ => true,
        }
    })
}

/// Re-checks readiness of every pod; updates the Ready condition; returns whether anything
/// changed. Waits up to `wait` for pods that are not ready yet.
pub fn refresh_readiness(sb: &mut Sandbox, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    let mut changed = false;
    loop {
        let mut pending = false;
        for rec in sb.state.pods.values_mut() {
            let ready = check_ready(rec);
            if ready != rec.ready
                || rec
                    .pod
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_none()
            {
                rec.ready = ready;
                set_conditions(&mut rec.pod, ready);
                changed = true;
            }
            pending |= !ready && !rec.terminating;
        }
        if !pending || Instant::now() >= deadline {
            return changed;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn set_conditions(pod: &mut Pod, ready: bool) {
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let r = if ready { "True" } else { "False" };
    let conds = json!([
        {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": now},
        {"type": "Initialized", "status": "True", "lastTransitionTime": now},
        {"type": "Ready", "status": r, "lastTransitionTime": now},
        {"type": "ContainersReady", "status": r, "lastTransitionTime": now},
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
    ]);
    if let Some(status) = pod.status.as_mut() {
        status.conditions = serde_json::from_value(conds).ok();
    }
}
