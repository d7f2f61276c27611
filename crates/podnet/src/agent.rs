//! `podnet agent`: flags, logging, runtime and signals around `podnet_agent::run`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use ipnet::IpNet;
use podnet_agent::cniconf::CniConfOptions;
use podnet_agent::proxy::ProxyOptions;
use podnet_agent::{AgentConfig, RoutingMode, Source};
use podnet_routing::VxlanConfig;

/// `podnet agent` flags.
#[derive(Args, Debug)]
pub struct AgentArgs {
    /// This node's name.
    #[arg(long, env = "NODE_NAME")]
    node: String,
    /// Read the cluster from the API with this kubeconfig (default: in-cluster config).
    #[arg(long, conflicts_with = "manifests")]
    kubeconfig: Option<PathBuf>,
    /// Read the cluster from the Kubernetes YAML files in this directory instead of the API.
    #[arg(long)]
    manifests: Option<PathBuf>,
    /// `host-gw` (nodes on one L2 segment) or `vxlan`.
    #[arg(long, default_value = "vxlan")]
    routing: RoutingMode,
    /// Serve /metrics, /healthz and /readyz here.
    #[arg(long)]
    metrics_addr: Option<SocketAddr>,
    /// Full resync period, e.g. `60s`, `500ms`, `5m`.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    resync: Duration,
    /// Write the node's CNI network config here.
    #[arg(long, default_value = "/etc/cni/net.d/10-podnet.conflist")]
    cni_conf: PathBuf,
    /// Do not write a CNI config.
    #[arg(long)]
    no_cni_conf: bool,
    /// CNI network name.
    #[arg(long, default_value = "podnet")]
    cni_network: String,
    /// Pod wiring: `bridge` or `ptp`.
    #[arg(long, default_value = "bridge")]
    cni_mode: String,
    /// The node bridge (bridge mode).
    #[arg(long, default_value = "podnet0")]
    cni_bridge: String,
    /// IPAM state directory written into the CNI config (default: podnet-ipam's).
    #[arg(long)]
    cni_data_dir: Option<PathBuf>,
    /// Do not masquerade pod traffic leaving the cluster.
    #[arg(long)]
    no_masquerade: bool,
    /// Cluster CIDR (not masqueraded); repeatable. The nodes' pod CIDRs are always included.
    #[arg(long)]
    cluster_cidr: Vec<IpNet>,
    /// Service CIDR (not masqueraded); repeatable.
    #[arg(long, default_value = "10.96.0.0/12")]
    service_cidr: Vec<IpNet>,
    /// Do not run the service proxy (nftables table `inet podnet-proxy`).
    #[arg(long)]
    no_proxy: bool,
    /// Serve NodePorts on the node's addresses in these CIDRs (repeatable); default: the
    /// node's primary address of each family.
    #[arg(long)]
    nodeport_addresses: Vec<IpNet>,
    /// VXLAN network identifier.
    #[arg(long, default_value_t = 1)]
    vxlan_vni: u32,
    /// VXLAN UDP port.
    #[arg(long, default_value_t = 8472)]
    vxlan_port: u16,
}

pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map(|i| s.split_at(i))
        .unwrap_or((s, "s"));
    let n: u64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => return Err(format!("bad duration {s:?} (use ms, s, m or h)")),
    };
    if d.is_zero() {
        return Err("duration must be positive".into());
    }
    Ok(d)
}

impl AgentArgs {
    fn config(self) -> AgentConfig {
        let source = match self.manifests {
            Some(dir) => Source::Manifests(dir),
            None => Source::Kube {
                kubeconfig: self.kubeconfig,
            },
        };
        let proxy = (!self.no_proxy).then(|| ProxyOptions {
            table: podnet_proxy::TABLE.to_string(),
            cluster_cidrs: self.cluster_cidr.clone(),
            service_cidrs: self.service_cidr.clone(),
            nodeport_cidrs: self.nodeport_addresses,
        });
        let mut no_masquerade = self.cluster_cidr;
        no_masquerade.extend(self.service_cidr);
        AgentConfig {
            node: self.node,
            source,
            routing: self.routing,
            vxlan: VxlanConfig {
                vni: self.vxlan_vni,
                port: self.vxlan_port,
                ..VxlanConfig::default()
            },
            resync: self.resync,
            metrics_addr: self.metrics_addr,
            cni: (!self.no_cni_conf).then_some(CniConfOptions {
                path: self.cni_conf,
                network: self.cni_network,
                mode: self.cni_mode,
                bridge: self.cni_bridge,
                data_dir: self.cni_data_dir,
            }),
            masquerade: !self.no_masquerade,
            no_masquerade,
            proxy,
        }
    }
}

/// Runs the agent until SIGTERM/SIGINT (routes stay in place, so pods keep talking while
/// the agent restarts).
pub fn run(args: AgentArgs) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cfg = args.config();
    let node = cfg.node.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    rt.block_on(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("SIGTERM handler")?;
        tokio::select! {
            r = podnet_agent::run(cfg) => r.with_context(|| format!("agent for node {node}")),
            _ = term.recv() => Ok(()),
            _ = tokio::signal::ctrl_c() => Ok(()),
        }
    })
}
