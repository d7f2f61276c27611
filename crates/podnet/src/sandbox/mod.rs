//! `podnet sandbox`: a whole cluster's networking on one machine, in network namespaces:
//! an underlay bridge, node namespaces each running the real `podnet agent`, pods wired by the
//! real `podnet-cni`, all driven by ordinary Kubernetes YAML.

pub mod apply;
pub mod net;
pub mod pods;
pub mod report;
pub mod state;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};

use self::net::{add_netns, alive, ip, list_netns, remove_netns, spawn_in, stop_group};
use self::state::{ns_name, ns_prefix, NodeRec, Paths, Sandbox};

/// `podnet sandbox` flags.
#[derive(Args, Debug)]
pub struct SandboxArgs {
    /// The sandbox's name; two sandboxes with different names live side by side.
    #[arg(long, default_value = "podnet", global = true)]
    name: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Create the nodes (and apply files).
    Up {
        /// Number of nodes.
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// `host-gw` or `vxlan`.
        #[arg(long, default_value = "vxlan")]
        routing: String,
        /// Manifests to apply once the nodes are up.
        #[arg(short = 'f', long = "filename")]
        files: Vec<PathBuf>,
    },
    /// Create or update Namespaces, Pods, Services, NetworkPolicies.
    Apply {
        /// Files (or directories of .yaml files).
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
    },
    /// Delete the objects of files, or one object: `delete pod NS/NAME`.
    Delete {
        /// Files.
        #[arg(short = 'f', long = "filename")]
        files: Vec<PathBuf>,
        /// `KIND NS/NAME`.
        target: Vec<String>,
    },
    /// Show objects as the API server would.
    Get {
        /// nodes, pods, services, endpointslices, networkpolicies, namespaces.
        kind: Option<String>,
        /// `wide`, `yaml` or `json`.
        #[arg(short = 'o', long = "output")]
        output: Option<String>,
    },
    /// Run a command in a pod's network namespace, with its resolv.conf.
    Exec {
        /// `NS/POD`.
        pod: String,
        /// The command.
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
    /// Can pod NS/POD reach TARGET on PORT? Prints allow or deny (exit 0 / 1; 2: usage).
    Probe {
        /// `NS/POD`.
        from: String,
        /// `NS/POD`, an IP, or a DNS name resolved from inside the pod.
        target: String,
        /// `PORT[/tcp|/udp]`.
        port: String,
        /// Give up after this long.
        #[arg(long, default_value = "1s", value_parser = crate::agent::parse_duration)]
        timeout: Duration,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// The connectivity matrix of all pods on their declared ports.
    Check {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Remove everything the sandbox made (also after a crash).
    Down,
    /// up + apply examples + check, with a readable report.
    Demo {
        /// Leave the sandbox up afterwards.
        #[arg(long)]
        keep: bool,
        /// `host-gw` or `vxlan`.
        #[arg(long, default_value = "vxlan")]
        routing: String,
        /// The manifests to apply.
        #[arg(long, default_value = "examples")]
        examples: PathBuf,
    },
    /// (internal) The built-in server of a pod.
    #[command(hide = true)]
    ServePod {
        #[arg(long)]
        pod: String,
        #[arg(long)]
        tcp: Vec<u16>,
        #[arg(long)]
        udp: Vec<u16>,
    },
    /// (internal) A probe run inside a pod's namespace (DNS names resolve there).
    #[command(hide = true)]
    ProbeRaw {
        target: String,
        port: u16,
        proto: podnet_sandbox::probe::Proto,
        #[arg(long, value_parser = crate::agent::parse_duration)]
        timeout: Duration,
    },
}

/// Runs a sandbox command; returns the process exit code.
pub fn run(args: SandboxArgs) -> Result<i32> {
    let name = args.name;
    match args.cmd {
        Cmd::Up {
            nodes,
            routing,
            files,
        } => {
            let t = Instant::now();
            up(&name, nodes, &routing)?;
            if !files.is_empty() {
                apply::apply_files(&name, &files)?;
            }
            eprintln!(
                "sandbox {name}: {nodes} nodes up ({routing}) in {:.2}s",
                t.elapsed().as_secs_f64()
            );
            Ok(0)
        }
        Cmd::Apply { files } => apply::apply_files(&name, &files).map(|_| 0),
        Cmd::Delete { files, target } => apply::delete(&name, &files, &target).map(|_| 0),
        Cmd::Get { kind, output } => {
            report::get(&name, kind.as_deref(), output.as_deref()).map(|_| 0)
        }
        Cmd::Exec { pod, cmd } => exec(&name, &pod, &cmd),
        Cmd::Probe {
            from,
            target,
            port,
            timeout,
            json,
        } => report::probe_cmd(&name, &from, &target, &port, timeout, json),
        Cmd::Check { json } => report::check(&name, json),
        Cmd::Down => down(&name).map(|_| 0),
        Cmd::Demo {
            keep,
            routing,
            examples,
        } => report::demo(&name, &routing, &examples, keep),
        Cmd::ServePod { pod, tcp, udp } => serve_pod(pod, tcp, udp).map(|_| 0),
        Cmd::ProbeRaw {
            target,
            port,
            proto,
            timeout,
        } => Ok(report::probe_raw(&target, port, proto, timeout)),
    }
}

/// Creates the underlay, the nodes and their agents; waits until every agent has synced
/// (its CNI config exists).
pub fn up(name: &str, nodes: usize, routing: &str) -> Result<()> {
    if !(1..=250).contains(&nodes) {
        bail!("--nodes must be 1..250");
    }
    if !matches!(routing, "host-gw" | "vxlan") {
        bail!("--routing must be host-gw or vxlan");
    }
    if !list_netns(&ns_prefix(name)).is_empty() {
        bail!(
            "namespaces of sandbox {name:?} exist; run `podnet sandbox down --name {name}` first"
        );
    }
    let mut sb = Sandbox::create(name, routing)?;
    let made = build(&mut sb, nodes);
    if let Err(e) = made {
        drop(sb);
        let _ = down(name);
        return Err(e);
    }
    Ok(())
}

fn build(sb: &mut Sandbox, nodes: usize) -> Result<()> {
    let name = sb.state.name.clone();
    let ul = ns_name(&name, "ul");
    add_netns(&ul)?;
    ip(&["-n", &ul, "link", "add", "br0", "type", "bridge"])?;
    ip(&["-n", &ul, "link", "set", "br0", "up"])?;
    for i in 1..=nodes {
        let node = format!("node-{i}");
        let ns = ns_name(&name, &node);
        add_netns(&ns)?;
        let port = format!("n{i}");
        ip(&[
            "-n", &ul, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ])?;
        ip(&["-n", &ul, "link", "set", &port, "master", "br0", "up"])?;
        let address = format!("172.18.{}.{}", i / 250, i % 250 + 1);
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{address}/16"),
            "dev",
            "eth0",
        ])?;
        ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
        sb.state.nodes.push(NodeRec {
            name: node,
            netns: ns,
            address,
            pod_cidr: format!("10.244.{i}.0/24"),
            agent_pid: 0,
        });
    }
    apply::default_namespaces(sb);
    apply::sync_manifests(sb)?;
    let exe = std::env::current_exe().context("locating the podnet binary")?;
    for i in 0..sb.state.nodes.len() {
        let n = sb.state.nodes[i].clone();
        std::fs::create_dir_all(sb.paths.node(&n.name))?;
        let args: Vec<String> = [
            "agent",
            "--node",
            &n.name,
            "--routing",
            &sb.state.routing,
            "--metrics-addr",
            "127.0.0.1:9464",
            "--resync",
            "30s",
            "--cluster-cidr",
            "10.244.0.0/16",
            "--service-cidr",
            "10.96.0.0/12",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([
            "--manifests".into(),
            sb.paths.manifests().display().to_string(),
            "--cni-conf".into(),
            sb.paths.conflist(&n.name).display().to_string(),
            "--cni-data-dir".into(),
            sb.paths.node(&n.name).join("ipam").display().to_string(),
        ])
        .collect();
        let log = sb.paths.logs().join(format!("agent-{}.log", n.name));
        sb.state.nodes[i].agent_pid = spawn_in(&n.netns, &exe, &args, &log)?;
    }
    sb.save()?;
    let deadline = Instant::now() + Duration::from_secs(20);
    for n in &sb.state.nodes {
        while !sb.paths.conflist(&n.name).exists() {
            if !alive(n.agent_pid) || Instant::now() > deadline {
                let log =
                    std::fs::read_to_string(sb.paths.logs().join(format!("agent-{}.log", n.name)))
                        .unwrap_or_default();
                bail!("the agent of {} did not sync:\n{log}", n.name);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    Ok(())
}

/// Removes everything of sandbox `name`: processes, namespaces, state.
pub fn down(name: &str) -> Result<()> {
    state::check_name(name)?;
    let paths = Paths::of(name);
    if let Ok(text) = std::fs::read(paths.state()) {
        if let Ok(st) = serde_json::from_slice::<state::State>(&text) {
            for rec in st.pods.values() {
                for &pid in &rec.pids {
                    stop_group(pid, Duration::from_millis(200));
                }
            }
            for n in &st.nodes {
                if n.agent_pid != 0 {
                    stop_group(n.agent_pid, Duration::from_millis(500));
                }
            }
        }
    }
    // Pods first (their veths sit in node namespaces), then nodes, then the underlay.
    let mut all = list_netns(&ns_prefix(name));
    all.sort_by_key(|n| (!n.contains(".pod-"), n.ends_with(".ul")));
    for ns in &all {
        remove_netns(ns);
    }
    if let Ok(entries) = std::fs::read_dir("/etc/netns") {
        for e in entries.flatten() {
            if e.file_name()
                .to_string_lossy()
                .starts_with(&ns_prefix(name))
            {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    if paths.root.exists() {
        std::fs::remove_dir_all(&paths.root)
            .with_context(|| format!("removing {}", paths.root.display()))?;
    }
    Ok(())
}

fn exec(name: &str, pod: &str, cmd: &[String]) -> Result<i32> {
    let sb = Sandbox::open(name)?;
    let rec = sb
        .state
        .pods
        .get(&apply::qualify(pod))
        .ok_or_else(|| anyhow!("no pod {pod}"))?;
    let status = std::process::Command::new("ip")
        .args(["netns", "exec", &rec.netns])
        .args(cmd)
        .status()
        .with_context(|| format!("running {cmd:?}"))?;
    Ok(status.code().unwrap_or(1))
}

fn serve_pod(pod: String, tcp: Vec<u16>, udp: Vec<u16>) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let server = podnet_sandbox::serve::bind(podnet_sandbox::serve::ServeSpec {
            name: pod,
            tcp,
            udp,
        })
        .await?;
        server.run().await;
        Ok(())
    })
}
