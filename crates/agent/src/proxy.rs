//! The service proxy loop: Services, EndpointSlices and Nodes from the view → podnet's nftables
//! table (through [`podnet_proxy`]), stale UDP conntrack entries removed, health-check node
//! ports answered. Runs beside the routing loop; a change of any of the three kinds syncs at
//! once (changes arriving during a sync are taken together by the next one).

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use ipnet::IpNet;
use k8s_openapi::api::core::v1::Node;
use podnet_cluster::{ClusterView, Kind};
use podnet_proxy::state::SetKind;
use podnet_proxy::{Applier, Compiler, HealthCheck, NodeFacts};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::metrics::Metrics;
use crate::node::node_info;

/// The node label naming its zone.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// The service proxy's settings.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// podnet's table (family inet).
    pub table: String,
    /// Cluster CIDRs besides the nodes' pod CIDRs (traffic from elsewhere to a ClusterIP is
    /// masqueraded).
    pub cluster_cidrs: Vec<IpNet>,
    /// Service CIDRs (their unallocated addresses are dropped).
    pub service_cidrs: Vec<IpNet>,
    /// Node ports are served on the node's addresses in these CIDRs; empty: on its primary
    /// address of each family.
    pub nodeport_cidrs: Vec<IpNet>,
}

/// This node's facts for the proxy, from the Node list.
pub fn node_facts(opts: &ProxyOptions, me: &str, nodes: &[Arc<Node>]) -> NodeFacts {
    let mut facts = NodeFacts {
        name: me.to_string(),
        cluster_cidrs: opts.cluster_cidrs.clone(),
        service_cidrs: opts.service_cidrs.clone(),
        ..NodeFacts::default()
    };
    for node in nodes {
        let info = node_info(node);
        facts.cluster_cidrs.extend(info.pod_cidrs.iter().copied());
        if info.name != me {
            continue;
        }
        facts.zone = node
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(ZONE_LABEL))
            .cloned();
        facts.nodeport_addresses = if opts.nodeport_cidrs.is_empty() {
            [info.address(true), info.address(false)]
                .into_iter()
                .flatten()
                .collect()
        } else {
            info.addresses
                .iter()
                .copied()
                .filter(|a| opts.nodeport_cidrs.iter().any(|c| c.contains(a)))
                .collect()
        };
    }
    facts.cluster_cidrs.sort();
    facts.cluster_cidrs.dedup();
    facts
}

/// Runs the proxy until the view's source ends.
pub async fn run(
    opts: ProxyOptions,
    me: String,
    view: ClusterView,
    metrics: Arc<Metrics>,
    resync: Duration,
) {
    let kinds = [Kind::Service, Kind::EndpointSlice, Kind::Node];
    if view.synced(&kinds).await.is_err() {
        return;
    }
    let mut changes: Vec<_> = kinds.iter().map(|k| view.changes(*k)).collect();
    let (health_tx, health_rx) = watch::channel(BTreeMap::new());
    let mut servers = HealthServers::new(health_rx);
    let mut engine = Some((Applier::new(opts.table.clone()), Compiler::new()));
    let mut reported: BTreeSet<String> = BTreeSet::new();
    let mut backoff = Duration::from_millis(250);
    loop {
        for rx in &mut changes {
            rx.borrow_and_update();
        }
        let services = view.services.state();
        let slices = view.endpoint_slices.state();
        let facts = node_facts(&opts, &me, &view.nodes.state());
        let started = Instant::now();
        let Some((mut applier, mut compiler)) = engine.take() else {
            return;
        };
        let joined = tokio::task::spawn_blocking(move || {
            let update = compiler.update(&services, &slices, &facts);
            let result = applier.apply(&facts, compiler.state(), &update.plan);
            let flows: Vec<podnet_conntrack::Flow> = if result.is_ok() {
                update
                    .stale_udp
                    .iter()
                    .map(|(fe, b)| podnet_conntrack::Flow {
                        proto: fe.proto.number(),
                        orig_dst: SocketAddr::new(fe.addr, fe.port),
                        reply_src: *b,
                    })
                    .collect()
            } else {
                Vec::new()
            };
            let deleted = if flows.is_empty() {
                Ok(0)
            } else {
                podnet_conntrack::delete_flows(&flows)
            };
            (applier, compiler, result, deleted)
        })
        .await;
        let Ok((applier, compiler, result, deleted)) = joined else {
            tracing::error!("proxy sync task panicked");
            return;
        };
        metrics.proxy_syncs.inc();
        metrics
            .proxy_sync_duration
            .observe(started.elapsed().as_secs_f64());
        let now: BTreeSet<String> = compiler.problems().iter().map(|p| p.to_string()).collect();
        for p in now.difference(&reported) {
            tracing::warn!("{p}");
        }
        reported = now;
        match deleted {
            Ok(n) => {
                metrics.conntrack_deleted.inc_by(n as u64);
            }
            Err(e) => tracing::warn!(error = %e, "cannot remove stale UDP conntrack entries"),
        }
        let health = compiler.health();
        let wait = match result {
            Ok(stats) => {
                metrics.proxy_ops.inc_by(stats.ops as u64);
                let frontends = compiler
                    .state()
                    .sets
                    .iter()
                    .filter(|(id, _)| matches!(id.kind, SetKind::Frontends | SetKind::NoEndpoints))
                    .map(|(_, m)| m.len())
                    .sum::<usize>();
                metrics
                    .proxy_frontends
                    .set(i64::try_from(frontends).unwrap_or(i64::MAX));
                if stats.ops > 0 {
                    tracing::info!(
                        ops = stats.ops,
                        full = stats.full,
                        frontends,
                        micros = stats.micros,
                        "services programmed"
                    );
                }
                health_tx.send_replace(health.clone());
                servers.reconcile(&health).await;
                backoff = Duration::from_millis(250);
                resync
            }
            Err(e) => {
                metrics.proxy_errors.inc();
                tracing::warn!(error = %e, retry_in = ?backoff, "service proxy sync failed; adopting the table again next");
                let wait = backoff;
                backoff = (backoff * 2).min(resync);
                wait
            }
        };
        engine = Some((applier, compiler));
        let any_change =
            futures::future::select_all(changes.iter_mut().map(|rx| Box::pin(rx.changed())));
        tokio::select! {
            (changed, _, _) = any_change => {
                if changed.is_err() {
                    return;
                }
            }
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// The health-check node port servers, one per port.
struct HealthServers {
    checks: watch::Receiver<BTreeMap<u16, HealthCheck>>,
    running: BTreeMap<u16, tokio::task::JoinHandle<()>>,
}

impl HealthServers {
    fn new(checks: watch::Receiver<BTreeMap<u16, HealthCheck>>) -> HealthServers {
        HealthServers {
            checks,
            running: BTreeMap::new(),
        }
    }

    /// Starts servers for new ports and stops those of ports gone.
    async fn reconcile(&mut self, wanted: &BTreeMap<u16, HealthCheck>) {
        self.running.retain(|port, task| {
            let keep = wanted.contains_key(port);
            if !keep {
                task.abort();
            }
            keep
        });
        for port in wanted.keys() {
            if self.running.contains_key(port) {
                continue;
            }
            let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), *port);
            match TcpListener::bind(addr).await {
                Ok(listener) => {
                    let checks = self.checks.clone();
                    let port = *port;
                    self.running
                        .insert(port, tokio::spawn(serve_health(listener, port, checks)));
                }
                Err(e) => {
                    tracing::warn!(%addr, error = %e, "cannot serve a health-check node port")
                }
            }
        }
    }
}

/// kube-proxy's answer: 200 with the local endpoint count when there are local endpoints,
/// else 503.
pub fn health_answer(check: Option<&HealthCheck>) -> (StatusCode, String) {
    let Some(hc) = check else {
        return (StatusCode::NOT_FOUND, "no such service\n".into());
    };
    let (ns, name) = hc.service.split_once('/').unwrap_or(("", &hc.service));
    let body = serde_json::json!({
        "service": {"namespace": ns, "name": name},
        "localEndpoints": hc.local_endpoints,
        "serviceProxyHealthy": true,
    })
    .to_string();
    let code = if hc.local_endpoints > 0 {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, body)
}

async fn serve_health(
    listener: TcpListener,
    port: u16,
    checks: watch::Receiver<BTreeMap<u16, HealthCheck>>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let checks = checks.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |_req: Request<hyper::body::Incoming>| {
                let (code, body) = health_answer(checks.borrow().get(&port));
                let mut r = Response::new(Full::new(Bytes::from(body)));
                *r.status_mut() = code;
                r.headers_mut().insert(
                    hyper::header::CONTENT_TYPE,
                    hyper::header::HeaderValue::from_static("application/json"),
                );
                async move { Ok::<_, Infallible>(r) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn health_answers_like_kube_proxy() {
        let hc = HealthCheck {
            port: 32000,
            service: "default/lb".into(),
            local_endpoints: 2,
        };
        let (code, body) = health_answer(Some(&hc));
        assert_eq!(code, StatusCode::OK);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["localEndpoints"], 2);
        assert_eq!(v["service"]["name"], "lb");
        let none = HealthCheck {
            local_endpoints: 0,
            ..hc
        };
        assert_eq!(
            health_answer(Some(&none)).0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(health_answer(None).0, StatusCode::NOT_FOUND);
    }

    #[test]
    fn node_facts_primary_addresses_zone_and_cluster_cidrs() {
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n1", "labels": {"topology.kubernetes.io/zone": "z1"}},
            "spec": {"podCIDRs": ["10.244.1.0/24"]},
            "status": {"addresses": [
                {"type": "InternalIP", "address": "172.18.0.2"},
                {"type": "InternalIP", "address": "172.19.0.2"},
                {"type": "InternalIP", "address": "fd18::2"}]}
        }))
        .unwrap();
        let other: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n2"}, "spec": {"podCIDRs": ["10.244.2.0/24"]}
        }))
        .unwrap();
        let opts = ProxyOptions {
            table: "t".into(),
            cluster_cidrs: vec![],
            service_cidrs: vec!["10.96.0.0/12".parse().unwrap()],
            nodeport_cidrs: vec![],
        };
        let nodes = vec![Arc::new(node), Arc::new(other)];
        let f = node_facts(&opts, "n1", &nodes);
        assert_eq!(f.zone.as_deref(), Some("z1"));
        assert_eq!(
            f.nodeport_addresses,
            vec![
                "172.18.0.2".parse::<IpAddr>().unwrap(),
                "fd18::2".parse().unwrap()
            ]
        );
        assert_eq!(f.cluster_cidrs.len(), 2);
        let opts = ProxyOptions {
            nodeport_cidrs: vec!["172.19.0.0/16".parse().unwrap()],
            ..opts
        };
        let f = node_facts(&opts, "n1", &nodes);
        assert_eq!(
            f.nodeport_addresses,
            vec!["172.19.0.2".parse::<IpAddr>().unwrap()]
        );
    }
}
