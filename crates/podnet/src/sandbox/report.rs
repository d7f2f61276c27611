//! get, probe, check and demo: what the sandbox shows.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use podnet_netdev::NetNs;
use podnet_sandbox::probe::{probe, Outcome, Proto};
use serde_json::{json, Value};

use crate::sandbox::apply::qualify;
use crate::sandbox::pods::{declared_ports, pod_ip};
use crate::sandbox::state::{node_objects, PodRec, Sandbox};

fn list(items: Vec<Value>) -> Value {
    json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": items})
}

fn to_values<T: serde::Serialize>(items: impl IntoIterator<Item = T>) -> Vec<Value> {
    items
        .into_iter()
        .filter_map(|i| serde_json::to_value(i).ok())
        .collect()
}

fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, s)| format!("{s:<w$}", w = widths[i]))
            .collect();
        out.push_str(line.join("   ").trim_end());
        out.push('\n');
    }
    out
}

/// `get [KIND] [-o wide|yaml|json]`.
pub fn get(name: &str, kind: Option<&str>, output: Option<&str>) -> Result<()> {
    let mut sb = Sandbox::open(name)?;
    crate::sandbox::apply::refresh(&mut sb, Duration::ZERO)?;
    let st = &sb.state;
    let kind = match kind.unwrap_or("pods") {
        "node" | "nodes" | "no" => "nodes",
        "pod" | "pods" | "po" => "pods",
        "service" | "services" | "svc" => "services",
        "endpointslice" | "endpointslices" => "endpointslices",
        "networkpolicy" | "networkpolicies" | "netpol" => "networkpolicies",
        "namespace" | "namespaces" | "ns" => "namespaces",
        k => bail!("unknown kind {k:?} (nodes, pods, services, endpointslices, networkpolicies, namespaces)"),
    };
    let services: Vec<_> = st.services.values().cloned().collect();
    let slices = crate::sandbox::apply::derived_slices(st);
    let items = match kind {
        "nodes" => to_values(node_objects(st)),
        "pods" => to_values(st.pods.values().map(|r| &r.pod)),
        "services" => to_values(&services),
        "endpointslices" => to_values(&slices),
        "networkpolicies" => to_values(st.policies.values()),
        _ => to_values(st.namespaces.values()),
    };
    match output {
        Some("json") => println!("{}", serde_json::to_string_pretty(&list(items))?),
        Some("yaml") => print!("{}", serde_yaml::to_string(&list(items))?),
        Some("wide") | None => {
            let wide = output == Some("wide");
            let s = |v: &Value| v.as_str().unwrap_or("<none>").to_string();
            let mut rows = Vec::new();
            match kind {
                "nodes" => {
                    rows.push(vec![
                        "NAME".into(),
                        "STATUS".into(),
                        "INTERNAL-IP".into(),
                        "POD-CIDR".into(),
                        "ROUTING".into(),
                    ]);
                    for n in &st.nodes {
                        rows.push(vec![
                            n.name.clone(),
                            "Ready".into(),
                            n.address.clone(),
                            n.pod_cidr.clone(),
                            st.routing.clone(),
                        ]);
                    }
                }
                "pods" => {
                    let mut h = vec!["NAMESPACE", "NAME", "READY", "STATUS", "IP", "NODE"];
                    if wide {
                        h.push("NETNS");
                    }
                    rows.push(h.into_iter().map(String::from).collect());
                    for r in st.pods.values() {
                        let mut row = vec![
                            r.pod.metadata.namespace.clone().unwrap_or_default(),
                            r.pod.metadata.name.clone().unwrap_or_default(),
                            if r.ready { "1/1".into() } else { "0/1".into() },
                            if r.terminating {
                                "Terminating".into()
                            } else {
                                "Running".into()
                            },
                            pod_ip(r).map(|i| i.to_string()).unwrap_or_default(),
                            r.node.clone(),
                        ];
                        if wide {
                            row.push(r.netns.clone());
                        }
                        rows.push(row);
                    }
                }
                "services" => {
                    rows.push(
                        ["NAMESPACE", "NAME", "TYPE", "CLUSTER-IP", "PORT(S)"]
                            .map(String::from)
                            .to_vec(),
                    );
                    for v in &items {
                        let ports: Vec<String> = v["spec"]["ports"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|p| match p["nodePort"].as_i64() {
                                Some(np) => format!("{}:{np}/{}", p["port"], s(&p["protocol"])),
                                None => format!("{}/{}", p["port"], s(&p["protocol"])),
                            })
                            .collect();
                        rows.push(vec![
                            s(&v["metadata"]["namespace"]),
                            s(&v["metadata"]["name"]),
                            s(&v["spec"]["type"]),
                            s(&v["spec"]["clusterIP"]),
                            ports.join(","),
                        ]);
                    }
                }
                "endpointslices" => {
                    rows.push(
                        ["NAMESPACE", "NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS"]
                            .map(String::from)
                            .to_vec(),
                    );
                    for v in &items {
                        let ports: Vec<String> = v["ports"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|p| p["port"].to_string())
                            .collect();
                        let eps: Vec<String> = v["endpoints"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|e| {
                                let mut a = s(&e["addresses"][0]);
                                if e["conditions"]["ready"] != json!(true) {
                                    a.push_str(if e["conditions"]["terminating"] == json!(true) {
                                        "(terminating)"
                                    } else {
                                        "(not ready)"
                                    });
                                }
                                a
                            })
                            .collect();
                        rows.push(vec![
                            s(&v["metadata"]["namespace"]),
                            s(&v["metadata"]["name"]),
                            s(&v["addressType"]),
                            if ports.is_empty() {
                                "<unset>".into()
                            } else {
                                ports.join(",")
                            },
                            if eps.is_empty() {
                                "<none>".into()
                            } else {
                                eps.join(",")
                            },
                        ]);
                    }
                }
                "networkpolicies" => {
                    rows.push(
                        ["NAMESPACE", "NAME", "POD-SELECTOR"]
                            .map(String::from)
                            .to_vec(),
                    );
                    for v in &items {
                        rows.push(vec![
                            s(&v["metadata"]["namespace"]),
                            s(&v["metadata"]["name"]),
                            v["spec"]["podSelector"].to_string(),
                        ]);
                    }
                }
                _ => {
                    rows.push(vec!["NAME".into(), "STATUS".into()]);
                    for v in &items {
                        rows.push(vec![s(&v["metadata"]["name"]), "Active".into()]);
                    }
                }
            }
            print!("{}", table(&rows));
        }
        Some(o) => bail!("unknown output format {o:?} (wide, yaml, json)"),
    }
    Ok(())
}

/// `PORT[/tcp|/udp]`.
fn parse_port(s: &str) -> Option<(u16, Proto)> {
    let (p, proto) = s.split_once('/').unwrap_or((s, "tcp"));
    Some((p.parse().ok().filter(|p| *p != 0)?, proto.parse().ok()?))
}

/// Runs a probe from inside `rec`'s namespace.
fn probe_from(rec: &PodRec, addr: SocketAddr, proto: Proto, timeout: Duration) -> Result<Outcome> {
    let ns = NetNs::open(format!("/run/netns/{}", rec.netns))?;
    Ok(ns.run(|| probe(addr, proto, timeout))?)
}

fn outcome_json(o: &Outcome) -> Value {
    match o {
        Outcome::Allow {
            answer,
            elapsed,
            client,
        } => {
            json!({"result": "allow", "answer": answer, "client": client, "ms": elapsed.as_secs_f64() * 1000.0})
        }
        Outcome::Deny { reason } => json!({"result": "deny", "reason": reason}),
    }
}

/// `probe FROM TARGET PORT`: exit 0 allow, 1 deny, 2 usage.
pub fn probe_cmd(
    name: &str,
    from: &str,
    target: &str,
    port: &str,
    timeout: Duration,
    json_out: bool,
) -> Result<i32> {
    let usage = |msg: String| {
        eprintln!("probe: {msg}");
        Ok(2)
    };
    let Some((port, proto)) = parse_port(port) else {
        return usage(format!("bad port {port:?} (PORT, PORT/tcp or PORT/udp)"));
    };
    let sb = Sandbox::open(name)?;
    let Some(rec) = sb.state.pods.get(&qualify(from)) else {
        return usage(format!("no pod {from}"));
    };
    let outcome = if let Ok(ip) = target.parse::<IpAddr>() {
        probe_from(rec, SocketAddr::new(ip, port), proto, timeout)?
    } else if let Some(t) = target
        .contains('/')
        .then(|| sb.state.pods.get(target))
        .flatten()
    {
        let Some(ip) = pod_ip(t) else {
            return usage(format!("pod {target} has no IP"));
        };
        probe_from(rec, SocketAddr::new(ip, port), proto, timeout)?
    } else if target.contains('/') {
        return usage(format!("no pod {target}"));
    } else {
        // A DNS name: resolve and probe inside the pod (its resolv.conf applies there).
        let exe = std::env::current_exe()?;
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", &rec.netns])
            .arg(exe)
            .args([
                "sandbox",
                "probe-raw",
                target,
                &port.to_string(),
                &proto.to_string(),
            ])
            .args(["--timeout", &format!("{}ms", timeout.as_millis().max(1))])
            .output()
            .context("running the in-pod probe")?;
        let v: Value = serde_json::from_slice(&out.stdout).map_err(|_| {
            anyhow!(
                "in-pod probe failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
        if v["result"] == "allow" {
            Outcome::Allow {
                answer: v["answer"].as_str().unwrap_or_default().to_string(),
                elapsed: Duration::from_secs_f64(v["ms"].as_f64().unwrap_or(0.0) / 1000.0),
                client: v["client"].as_str().map(str::to_string),
            }
        } else {
            Outcome::Deny {
                reason: v["reason"].as_str().unwrap_or_default().to_string(),
            }
        }
    };
    let allow = matches!(outcome, Outcome::Allow { .. });
    if json_out {
        let mut v = outcome_json(&outcome);
        v["from"] = json!(qualify(from));
        v["target"] = json!(target);
        v["port"] = json!(port);
        v["protocol"] = json!(proto.to_string());
        println!("{v}");
    } else {
        println!("{}", if allow { "allow" } else { "deny" });
    }
    Ok(if allow { 0 } else { 1 })
}

/// The in-pod half of a probe to a DNS name: prints the outcome as JSON.
pub fn probe_raw(target: &str, port: u16, proto: Proto, timeout: Duration) -> i32 {
    let started = Instant::now();
    let outcome = match (target, port).to_socket_addrs().map(|mut a| a.next()) {
        Ok(Some(addr)) => probe(
            addr,
            proto,
            timeout
                .saturating_sub(started.elapsed())
                .max(Duration::from_millis(50)),
        ),
        Ok(None) => Outcome::Deny {
            reason: format!("{target}: no address"),
        },
        Err(e) => Outcome::Deny {
            reason: format!("cannot resolve {target}: {e}"),
        },
    };
    println!("{}", outcome_json(&outcome));
    0
}

/// One cell of the connectivity matrix.
struct Cell {
    from: String,
    from_node: String,
    to: String,
    to_node: String,
    port: u16,
    proto: String,
    outcome: Outcome,
}

fn matrix(sb: &Sandbox, timeout: Duration) -> Vec<Cell> {
    let pods: Vec<&PodRec> = sb.state.pods.values().filter(|r| !r.terminating).collect();
    let mut cells = Vec::new();
    std::thread::scope(|s| {
        let handles: Vec<_> = pods
            .iter()
            .map(|from| {
                let pods = &pods;
                s.spawn(move || {
                    let mut out = Vec::new();
                    for to in pods.iter() {
                        let Some(ip) = pod_ip(to) else { continue };
                        for (port, proto) in declared_ports(&to.pod) {
                            let p = match proto.as_str() {
                                "TCP" => Proto::Tcp,
                                "UDP" => Proto::Udp,
                                _ => continue,
                            };
                            let outcome = probe_from(from, SocketAddr::new(ip, port), p, timeout)
                                .unwrap_or_else(|e| Outcome::Deny {
                                    reason: e.to_string(),
                                });
                            out.push(Cell {
                                from: crate::sandbox::pods::key(&from.pod),
                                from_node: from.node.clone(),
                                to: crate::sandbox::pods::key(&to.pod),
                                to_node: to.node.clone(),
                                port,
                                proto: proto.to_lowercase(),
                                outcome,
                            });
                        }
                    }
                    out
                })
            })
            .collect();
        for h in handles {
            if let Ok(c) = h.join() {
                cells.extend(c);
            }
        }
    });
    cells
}

/// `check`: every pod to every pod's declared ports.
pub fn check(name: &str, json_out: bool) -> Result<i32> {
    let mut sb = Sandbox::open(name)?;
    crate::sandbox::apply::refresh(&mut sb, Duration::from_secs(2))?;
    let cells = matrix(&sb, Duration::from_secs(1));
    if json_out {
        let v: Vec<Value> = cells
            .iter()
            .map(|c| {
                let mut v = outcome_json(&c.outcome);
                v["from"] = json!(c.from);
                v["fromNode"] = json!(c.from_node);
                v["to"] = json!(c.to);
                v["toNode"] = json!(c.to_node);
                v["port"] = json!(c.port);
                v["protocol"] = json!(c.proto);
                v
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", render_matrix(&cells));
    }
    Ok(0)
}

fn render_matrix(cells: &[Cell]) -> String {
    let mut rows = vec![["FROM", "", "TO", "", "PORT", "RESULT", "ANSWER"]
        .map(String::from)
        .to_vec()];
    for c in cells {
        let (res, ans) = match &c.outcome {
            Outcome::Allow {
                answer, elapsed, ..
            } => (
                "allow",
                format!("{answer:?} in {:.1} ms", elapsed.as_secs_f64() * 1000.0),
            ),
            Outcome::Deny { reason } => ("deny", reason.clone()),
        };
        let across = if c.from_node == c.to_node {
            "same node"
        } else {
            "across nodes"
        };
        rows.push(vec![
            c.from.clone(),
            format!("({})", c.from_node),
            c.to.clone(),
            format!("({}, {across})", c.to_node),
            format!("{}/{}", c.port, c.proto),
            res.into(),
            ans,
        ]);
    }
    let allowed = cells
        .iter()
        .filter(|c| matches!(c.outcome, Outcome::Allow { .. }))
        .count();
    let across = cells
        .iter()
        .filter(|c| c.from_node != c.to_node && matches!(c.outcome, Outcome::Allow { .. }))
        .count();
    format!(
        "{}\n{allowed}/{} probes allowed ({across} of them across nodes)\n",
        table(&rows),
        cells.len()
    )
}

/// `demo`: up, apply the examples, show pods and the connectivity report.
/// Probes every ClusterIP port a dozen times from one client pod: which endpoints answered.
/// The agents program Services asynchronously, so the first probe of each port may wait up
/// to 5 s for an answer.
fn services_report(sb: &Sandbox) -> String {
    const TRIES: usize = 12;
    let client = sb
        .state
        .pods
        .get("default/client")
        .or_else(|| sb.state.pods.values().next());
    let Some(client) = client else {
        return "  (no pod to probe from)\n".into();
    };
    let mut out = String::new();
    for (key, svc) in &sb.state.services {
        let Some(spec) = svc.spec.as_ref() else {
            continue;
        };
        let Some(ip) = spec
            .cluster_ip
            .as_deref()
            .and_then(|ip| ip.parse::<IpAddr>().ok())
        else {
            continue;
        };
        for port in spec.ports.iter().flatten() {
            let proto: Proto = match port.protocol.as_deref().unwrap_or("TCP") {
                "UDP" => Proto::Udp,
                "TCP" => Proto::Tcp,
                _ => continue,
            };
            let Ok(p) = u16::try_from(port.port) else {
                continue;
            };
            let addr = SocketAddr::new(ip, p);
            let first_deadline = Instant::now() + Duration::from_secs(5);
            let mut answers: std::collections::BTreeMap<String, usize> = Default::default();
            let mut last_deny = String::new();
            let mut tries = 0;
            while tries < TRIES {
                match probe_from(client, addr, proto, Duration::from_secs(1)) {
                    Ok(Outcome::Allow { answer, .. }) => {
                        *answers.entry(answer).or_default() += 1;
                        tries += 1;
                    }
                    Ok(Outcome::Deny { reason })
                        if answers.is_empty() && Instant::now() < first_deadline =>
                    {
                        last_deny = reason;
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    Ok(Outcome::Deny { reason }) => {
                        last_deny = reason;
                        tries += 1;
                    }
                    Err(e) => {
                        last_deny = e.to_string();
                        tries += 1;
                    }
                }
            }
            let answered: usize = answers.values().sum();
            let spread = answers
                .iter()
                .map(|(who, n)| format!("{who} ×{n}"))
                .collect::<Vec<_>>()
                .join(", ");
            let _ = std::fmt::Write::write_fmt(
                &mut out,
                format_args!(
                    "  {key:<16} {addr}/{proto:<4} from {}: {answered}/{TRIES} answered{}{}\n",
                    client.pod.metadata.name.as_deref().unwrap_or("?"),
                    if spread.is_empty() {
                        String::new()
                    } else {
                        format!(" by {spread}")
                    },
                    if answered < TRIES {
                        format!(" (last: {last_deny})")
                    } else {
                        String::new()
                    },
                ),
            );
        }
    }
    out
}

pub fn demo(name: &str, routing: &str, examples: &Path, keep: bool) -> Result<i32> {
    let examples: PathBuf = examples.to_path_buf();
    if !examples.is_dir() {
        bail!(
            "examples directory {} not found (run from the repository root or pass --examples)",
            examples.display()
        );
    }
    println!(
        "== podnet sandbox demo: 3 nodes ({routing}), the manifests in {}\n",
        examples.display()
    );
    let t = Instant::now();
    crate::sandbox::up(name, 3, routing)?;
    let up_s = t.elapsed().as_secs_f64();
    let result = (|| -> Result<()> {
        crate::sandbox::apply::apply_files(name, std::slice::from_ref(&examples))?;
        println!(
            "\nup in {up_s:.2}s, all pods applied and Ready in {:.2}s\n",
            t.elapsed().as_secs_f64()
        );
        println!("-- nodes (each a network namespace running the real podnet agent)");
        get(name, Some("nodes"), None)?;
        println!("\n-- pods (each a network namespace wired by the real podnet-cni)");
        get(name, Some("pods"), None)?;
        println!("\n-- services and the EndpointSlices derived from them");
        get(name, Some("services"), None)?;
        get(name, Some("endpointslices"), None)?;
        println!("\n-- connectivity: every pod to every pod's declared ports (real packets)");
        let sb = Sandbox::open(name)?;
        let cells = matrix(&sb, Duration::from_secs(1));
        print!("{}", render_matrix(&cells));
        println!(
            "\n-- services: ClusterIPs through podnet's nftables service proxy (real packets)"
        );
        print!("{}", services_report(&sb));
        println!("\npodnet today: CNI (veth, IPAM, bridge), node routing ({routing}) by the agent, masquerade,");
        println!("EndpointSlices from Services, the service proxy. NetworkPolicy and cluster DNS: to come.");
        Ok(())
    })();
    if keep {
        println!("\nsandbox {name:?} kept: try `podnet sandbox exec default/web-1 -- ip addr`, then `podnet sandbox down --name {name}`");
    } else {
        crate::sandbox::down(name)?;
        println!("\nsandbox {name:?} removed (nothing left in the root namespace)");
    }
    result.map(|_| 0)
}
