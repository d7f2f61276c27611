//! The podnet node agent.
//!
//! It keeps a [`ClusterView`] fed from the Kubernetes API or a manifests directory, waits for
//! the Node list (the synced barrier), and then reconciles this node: routes to the other
//! nodes' pod CIDRs (host-gw or VXLAN), masquerade of pod traffic leaving the cluster, and
//! the node's CNI config. Each reconcile compares the whole desired state with the kernel
//! (a full resync) and writes only the difference; it runs at start, on every change of the
//! Node list, periodically, and after an error with backoff.

pub mod cniconf;
pub mod masq;
pub mod metrics;
pub mod node;
pub mod proxy;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use podnet_cluster::kube_source::{self, SourceError};
use podnet_cluster::manifests::{self, ManifestError};
use podnet_cluster::{ClusterView, Kind};
use podnet_netdev::{Link, NetdevError, Netlink};
use podnet_routing::{
    desired_routes, reconcile_vxlan, vtep_mac, NodeInfo, RoutingError, VxlanConfig, VXLAN_OVERHEAD,
};

use crate::cniconf::CniConfOptions;
use crate::metrics::{Health, Metrics};
use crate::node::{node_info, VTEP_MAC_ANNOTATION};

/// How pod traffic reaches other nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoutingMode {
    /// A route per remote pod CIDR via the node's address (one L2 segment).
    HostGw,
    /// A VXLAN overlay.
    Vxlan,
}

impl std::str::FromStr for RoutingMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "host-gw" => Ok(RoutingMode::HostGw),
            "vxlan" => Ok(RoutingMode::Vxlan),
            _ => Err(format!("unknown routing mode {s:?} (host-gw or vxlan)")),
        }
    }
}

/// Where the agent reads the cluster.
#[derive(Debug, Clone)]
pub enum Source {
    /// The Kubernetes API (`None`: in-cluster config).
    Kube {
        /// The kubeconfig file.
        kubeconfig: Option<PathBuf>,
    },
    /// A directory of manifests.
    Manifests(PathBuf),
}

/// The agent's settings.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// This node's name.
    pub node: String,
    /// Where to read the cluster.
    pub source: Source,
    /// Routing mode.
    pub routing: RoutingMode,
    /// VXLAN settings (the underlay MTU is read from the node's interface).
    pub vxlan: VxlanConfig,
    /// Period of the full resync.
    pub resync: Duration,
    /// Where to serve metrics and health.
    pub metrics_addr: Option<SocketAddr>,
    /// Where and how to write the CNI config.
    pub cni: Option<CniConfOptions>,
    /// Whether to masquerade pod traffic leaving the cluster.
    pub masquerade: bool,
    /// Destinations besides the nodes' pod CIDRs that are not masqueraded (cluster and
    /// service CIDRs).
    pub no_masquerade: Vec<IpNet>,
    /// The service proxy (`None`: off).
    pub proxy: Option<proxy::ProxyOptions>,
}

/// What stops the agent.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The API source.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The manifests source.
    #[error(transparent)]
    Manifests(#[from] ManifestError),
    /// A source ended.
    #[error(transparent)]
    SourceGone(#[from] podnet_cluster::view::SourceGone),
    /// Netlink.
    #[error("netlink: {0}")]
    Netlink(#[from] NetdevError),
    /// Routing.
    #[error(transparent)]
    Routing(#[from] RoutingError),
    /// The masquerade table.
    #[error("masquerade table: {0}")]
    Nft(#[from] podnet_nft::NftError),
    /// The CNI config file.
    #[error("CNI config {path}: {source}")]
    CniConf {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The metrics listener.
    #[error("metrics address {addr}: {source}")]
    Metrics {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A reconcile failed in part.
    #[error(transparent)]
    Reconcile(Box<ReconcileError>),
    /// The reconcile task panicked or was cancelled.
    #[error("reconcile task: {0}")]
    Task(String),
}

/// What one reconcile did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Kernel objects (and files) written or deleted.
    pub writes: usize,
    /// Routes to remote pod CIDRs podnet keeps.
    pub routes: usize,
    /// Remote nodes routed to.
    pub peers: usize,
    /// Whether this node was in the view (needed for VXLAN, masquerade and the CNI config).
    pub me_known: bool,
    /// The pod MTU.
    pub pod_mtu: u32,
}

/// The link holding `addr`, if any.
fn link_with_address(
    nl: &mut Netlink,
    addr: std::net::IpAddr,
) -> Result<Option<Link>, NetdevError> {
    let found = nl
        .addresses(0)?
        .into_iter()
        .find(|(_, net)| net.addr() == addr)
        .map(|(idx, _)| idx);
    match found {
        Some(idx) => nl.link_by_index(idx),
        None => Ok(None),
    }
}

/// What the agent remembers between reconciles.
#[derive(Debug, Clone, Default)]
pub struct Memory {
    /// The marker of the masquerade table this process applied or verified.
    pub masq: Option<String>,
}

/// Programs this node for `nodes` (blocking: netlink and nft). Writes nothing when the kernel
/// already matches. Routes, neighbours and FDB entries are always compared with the kernel;
/// the masquerade table only on a `full` resync or when its content changes (reading it
/// means running `nft`).
pub fn reconcile(
    cfg: &AgentConfig,
    nodes: &[NodeInfo],
    memory: &mut Memory,
    full: bool,
) -> Result<Outcome, AgentError> {
    if full {
        memory.masq = None;
    }
    let mut out = Outcome::default();
    let me = nodes.iter().find(|n| n.name == cfg.node);
    out.me_known = me.is_some();
    let mut nl = Netlink::new()?;
    let underlay = match me.and_then(|m| m.address(true).or_else(|| m.address(false))) {
        Some(a) => link_with_address(&mut nl, a)?,
        None => None,
    };
    let underlay_mtu = underlay.map(|l| l.mtu).unwrap_or(1500);
    let peers: Vec<&NodeInfo> = nodes
        .iter()
        .filter(|n| n.name != cfg.node && !n.addresses.is_empty() && !n.pod_cidrs.is_empty())
        .collect();
    out.peers = peers.len();
    // Routing, masquerade and the CNI config are independent: a failure in one does not
    // stop the others; the first failure is reported after all were tried.
    let mut first_error: Option<AgentError> = None;
    match cfg.routing {
        RoutingMode::HostGw => {
            let want = desired_routes(&cfg.node, nodes);
            out.routes = want.len();
            out.pod_mtu = underlay_mtu;
            match podnet_routing::reconcile(&mut nl, &want) {
                Ok(plan) => out.writes += plan.operations(),
                Err(RoutingError::Incomplete {
                    failed,
                    first,
                    plan,
                }) => {
                    out.writes += plan.operations();
                    first_error = Some(
                        RoutingError::Incomplete {
                            failed,
                            first,
                            plan,
                        }
                        .into(),
                    );
                }
                Err(e) => first_error = Some(e.into()),
            }
        }
        RoutingMode::Vxlan => {
            out.pod_mtu = underlay_mtu - VXLAN_OVERHEAD;
            if let Some(me) = me {
                let vc = VxlanConfig {
                    underlay_mtu,
                    ..cfg.vxlan.clone()
                };
                out.routes = peers
                    .iter()
                    .filter(|p| p.address(true).is_some())
                    .map(|p| p.pod_cidrs.len())
                    .sum();
                match reconcile_vxlan(&mut nl, &vc, me, nodes) {
                    Ok(plan) => out.writes += plan.operations(),
                    Err(e) => first_error = Some(e.into()),
                }
            }
        }
    }
    if let Some(me) = me.filter(|m| !m.pod_cidrs.is_empty()) {
        if cfg.masquerade {
            let mut cluster: Vec<IpNet> = nodes
                .iter()
                .flat_map(|n| n.pod_cidrs.iter().copied())
                .collect();
            cluster.extend(cfg.no_masquerade.iter().copied());
            cluster.sort();
            cluster.dedup();
            let spec = masq::MasqSpec {
                pod_cidrs: me.pod_cidrs.clone(),
                cluster,
            };
            match masq::reconcile(&spec, memory.masq.as_deref()) {
                Ok((wrote, marker)) => {
                    out.writes += usize::from(wrote);
                    memory.masq = Some(marker);
                }
                Err(e) => {
                    memory.masq = None;
                    first_error.get_or_insert(e.into());
                }
            }
        }
        if let Some(opts) = &cfg.cni {
            let conf = cniconf::render(opts, &me.pod_cidrs, out.pod_mtu);
            match cniconf::write(&opts.path, &conf) {
                Ok(wrote) => out.writes += usize::from(wrote),
                Err(source) => {
                    first_error.get_or_insert(AgentError::CniConf {
                        path: opts.path.clone(),
                        source,
                    });
                }
            }
        }
    }
    match first_error {
        None => Ok(out),
        Some(e) => Err(AgentError::Reconcile(Box::new(ReconcileError {
            outcome: out,
            error: e,
        }))),
    }
}

/// A reconcile that failed in part: what was done, and the first failure.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct ReconcileError {
    /// What was done anyway.
    pub outcome: Outcome,
    /// The first failure.
    pub error: AgentError,
}

/// Runs the agent until the source ends or a fatal error.
pub async fn run(cfg: AgentConfig) -> Result<(), AgentError> {
    let metrics = Arc::new(Metrics::default());
    let health = Arc::new(Health::new(cfg.resync));
    if let Some(addr) = cfg.metrics_addr {
        let server = metrics::serve(addr, metrics.clone(), health.clone())
            .await
            .map_err(|source| AgentError::Metrics { addr, source })?;
        tokio::spawn(server);
    }
    let (view, writer) = ClusterView::new();
    let mut client = None;
    match &cfg.source {
        Source::Manifests(dir) => {
            // A missing directory is an error at start, not a warning forever.
            std::fs::read_dir(dir).map_err(|source| ManifestError::Dir {
                path: dir.clone(),
                source,
            })?;
            let m = metrics.clone();
            let dir = dir.clone();
            tokio::spawn(async move {
                let r = manifests::run(dir, writer, move |e| {
                    tracing::warn!(error = %e, "manifests: keeping the last good state of this file");
                    m.source_errors.inc();
                })
                .await;
                if let Err(e) = r {
                    tracing::error!(error = %e, "manifests source stopped");
                }
            });
        }
        Source::Kube { kubeconfig } => {
            let c = kube_source::client(kubeconfig.as_deref()).await?;
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            kube_source::spawn(c.clone(), writer, tx);
            let m = metrics.clone();
            tokio::spawn(async move {
                while let Some(e) = rx.recv().await {
                    m.source_errors.inc();
                    if e.is_forbidden() {
                        tracing::error!(error = %e, "RBAC");
                    }
                }
            });
            client = Some(c);
        }
    }
    tracing::info!(node = %cfg.node, "waiting for the full Node list");
    view.synced(&[Kind::Node]).await?;
    if let Some(opts) = cfg.proxy.clone() {
        tokio::spawn(proxy::run(
            opts,
            cfg.node.clone(),
            view.clone(),
            metrics.clone(),
            cfg.resync,
        ));
    }
    let cfg = Arc::new(cfg);
    let mut changes = view.changes(Kind::Node);
    let mut backoff = Duration::from_millis(250);
    let mut published: Option<String> = None;
    let mut memory = Memory::default();
    // Full resync at start, after an error and when the periodic timer fires.
    let mut full = true;
    loop {
        health.beat();
        let nodes: Vec<NodeInfo> = view.nodes.state().iter().map(|n| node_info(n)).collect();
        metrics
            .nodes
            .set(i64::try_from(nodes.len()).unwrap_or(i64::MAX));
        let me = nodes.iter().find(|n| n.name == cfg.node).cloned();
        let started = Instant::now();
        let c = cfg.clone();
        let mut mem = std::mem::take(&mut memory);
        let (result, mem) = tokio::task::spawn_blocking(move || {
            let r = reconcile(&c, &nodes, &mut mem, full);
            (r, mem)
        })
        .await
        .map_err(|e| AgentError::Task(e.to_string()))?;
        memory = mem;
        metrics.syncs.inc();
        metrics
            .sync_duration
            .observe(started.elapsed().as_secs_f64());
        let (wait, failed) = match result {
            Ok(o) => {
                metrics.kernel_writes.inc_by(o.writes as u64);
                metrics.routes.set(o.routes as i64);
                metrics.peers.set(o.peers as i64);
                if o.writes > 0 {
                    tracing::info!(
                        writes = o.writes,
                        routes = o.routes,
                        peers = o.peers,
                        "node programmed"
                    );
                }
                if o.me_known {
                    health.set_ready();
                } else {
                    tracing::warn!(node = %cfg.node, "this node is not in the view (yet)");
                }
                backoff = Duration::from_millis(250);
                (cfg.resync, false)
            }
            Err(e) => {
                if let AgentError::Reconcile(r) = &e {
                    metrics.kernel_writes.inc_by(r.outcome.writes as u64);
                    metrics.routes.set(r.outcome.routes as i64);
                    metrics.peers.set(r.outcome.peers as i64);
                }
                metrics.netlink_errors.inc();
                let wait = backoff;
                backoff = (backoff * 2).min(cfg.resync);
                tracing::warn!(error = %e, retry_in = ?wait, "reconcile failed; full resync after backoff");
                (wait, true)
            }
        };
        if let (Some(client), Some(me), RoutingMode::Vxlan) = (&client, &me, cfg.routing) {
            // A Node without the annotation gets the MAC derived from its name, once.
            if me.vtep_mac.is_none() && published.is_none() {
                let mac = podnet_netdev::format_mac(&vtep_mac(me));
                match kube_source::annotate_node(
                    client.clone(),
                    &cfg.node,
                    &[(VTEP_MAC_ANNOTATION, &mac)],
                )
                .await
                {
                    Ok(()) => published = Some(mac),
                    Err(e) => tracing::warn!(error = %e, "cannot publish the VTEP MAC"),
                }
            }
        }
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    return Err(podnet_cluster::view::SourceGone(Kind::Node).into());
                }
                full = failed;
            }
            _ = tokio::time::sleep(wait) => full = true,
        }
    }
}
