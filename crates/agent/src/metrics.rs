//! The agent's Prometheus metrics and its health state, served over HTTP on
//! `--metrics-addr`: `/metrics`, `/healthz`, `/readyz`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

/// The agent's metrics.
pub struct Metrics {
    registry: Registry,
    /// Routes podnet wants in the kernel (`podnet_routes_programmed`).
    pub routes: Gauge,
    /// Other nodes routed to (`podnet_peers`).
    pub peers: Gauge,
    /// Reconciles run (`podnet_syncs_total`).
    pub syncs: Counter,
    /// Duration of a reconcile (`podnet_sync_duration_seconds`).
    pub sync_duration: Histogram,
    /// Reconciles that failed on a netlink or nft error (`podnet_netlink_errors_total`).
    pub netlink_errors: Counter,
    /// Kernel objects written or deleted (`podnet_kernel_writes_total`).
    pub kernel_writes: Counter,
    /// Errors of the object source (`podnet_source_errors_total`).
    pub source_errors: Counter,
    /// Nodes in the view (`podnet_nodes`).
    pub nodes: Gauge,
    /// Service proxy syncs (`podnet_proxy_syncs_total`).
    pub proxy_syncs: Counter,
    /// nftables operations the proxy wrote (`podnet_proxy_operations_total`).
    pub proxy_ops: Counter,
    /// Duration of a proxy sync: compile and apply (`podnet_proxy_sync_duration_seconds`).
    pub proxy_sync_duration: Histogram,
    /// Proxy syncs that failed (`podnet_proxy_errors_total`).
    pub proxy_errors: Counter,
    /// Service frontends programmed (`podnet_proxy_frontends`).
    pub proxy_frontends: Gauge,
    /// Stale UDP conntrack entries removed (`podnet_proxy_conntrack_deleted_total`).
    pub conntrack_deleted: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let m = Metrics {
            routes: Gauge::default(),
            peers: Gauge::default(),
            syncs: Counter::default(),
            sync_duration: Histogram::new(exponential_buckets(0.0001, 2.0, 18)),
            netlink_errors: Counter::default(),
            kernel_writes: Counter::default(),
            source_errors: Counter::default(),
            nodes: Gauge::default(),
            proxy_syncs: Counter::default(),
            proxy_ops: Counter::default(),
            proxy_sync_duration: Histogram::new(exponential_buckets(0.0001, 2.0, 18)),
            proxy_errors: Counter::default(),
            proxy_frontends: Gauge::default(),
            conntrack_deleted: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "podnet_routes_programmed",
            "Routes to other nodes' pod CIDRs podnet keeps in the kernel",
            m.routes.clone(),
        );
        registry.register("podnet_peers", "Other nodes routed to", m.peers.clone());
        registry.register(
            "podnet_syncs",
            "Reconciles of node routing",
            m.syncs.clone(),
        );
        registry.register(
            "podnet_sync_duration_seconds",
            "Duration of a reconcile of node routing",
            m.sync_duration.clone(),
        );
        registry.register(
            "podnet_netlink_errors",
            "Reconciles that failed on a netlink or nftables error",
            m.netlink_errors.clone(),
        );
        registry.register(
            "podnet_kernel_writes",
            "Kernel objects (routes, neighbours, FDB entries, devices, tables, files) written or deleted",
            m.kernel_writes.clone(),
        );
        registry.register(
            "podnet_source_errors",
            "Errors reading the cluster (API or manifests)",
            m.source_errors.clone(),
        );
        registry.register("podnet_nodes", "Nodes in the view", m.nodes.clone());
        registry.register(
            "podnet_proxy_syncs",
            "Service proxy syncs",
            m.proxy_syncs.clone(),
        );
        registry.register(
            "podnet_proxy_operations",
            "nftables operations written by the service proxy",
            m.proxy_ops.clone(),
        );
        registry.register(
            "podnet_proxy_sync_duration_seconds",
            "Duration of a service proxy sync (compile and apply)",
            m.proxy_sync_duration.clone(),
        );
        registry.register(
            "podnet_proxy_errors",
            "Service proxy syncs that failed",
            m.proxy_errors.clone(),
        );
        registry.register(
            "podnet_proxy_frontends",
            "Service frontends (address, protocol, port) programmed",
            m.proxy_frontends.clone(),
        );
        registry.register(
            "podnet_proxy_conntrack_deleted",
            "Stale UDP conntrack entries removed",
            m.conntrack_deleted.clone(),
        );
        Metrics { registry, ..m }
    }
}

impl Metrics {
    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// Liveness and readiness.
#[derive(Default)]
pub struct Health {
    ready: AtomicBool,
    /// Unix seconds of the control loop's last turn.
    heartbeat: AtomicU64,
    /// The longest the loop may sleep between turns (seconds).
    max_quiet: AtomicU64,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Health {
    /// A health state whose loop turns at least every `max_quiet`.
    pub fn new(max_quiet: Duration) -> Health {
        let h = Health::default();
        h.max_quiet
            .store(max_quiet.as_secs().max(1), Ordering::Relaxed);
        h.beat();
        h
    }
    /// The control loop is alive.
    pub fn beat(&self) {
        self.heartbeat.store(now(), Ordering::Relaxed);
    }
    /// The first full sync is done.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Relaxed);
    }
    /// Whether the first full sync is done.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }
    /// Whether the control loop turned recently (three times its longest sleep).
    pub fn is_alive(&self) -> bool {
        let quiet = now().saturating_sub(self.heartbeat.load(Ordering::Relaxed));
        quiet <= 3 * self.max_quiet.load(Ordering::Relaxed) + 5
    }
}

fn reply(code: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = code;
    r
}

fn route(path: &str, metrics: &Metrics, health: &Health) -> Response<Full<Bytes>> {
    match path {
        "/metrics" => {
            let mut r = reply(StatusCode::OK, metrics.encode());
            r.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            r
        }
        "/healthz" if health.is_alive() => reply(StatusCode::OK, "ok\n".into()),
        "/healthz" => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "control loop stalled\n".into(),
        ),
        "/readyz" if health.is_ready() => reply(StatusCode::OK, "ok\n".into()),
        "/readyz" => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "first sync not done\n".into(),
        ),
        _ => reply(StatusCode::NOT_FOUND, "not found\n".into()),
    }
}

/// Binds `addr` (so that a busy port is an error at start) and serves until dropped.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
) -> std::io::Result<impl std::future::Future<Output = ()>> {
    let listener = TcpListener::bind(addr).await?;
    Ok(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (metrics, health) = (metrics.clone(), health.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let r = route(req.uri().path(), &metrics, &health);
                    async move { Ok::<_, Infallible>(r) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names_the_metrics_and_health_gates() {
        let m = Metrics::default();
        m.routes.set(3);
        m.netlink_errors.inc();
        let text = m.encode();
        assert!(text.contains("podnet_routes_programmed 3"), "{text}");
        assert!(text.contains("podnet_netlink_errors_total 1"), "{text}");
        assert!(
            text.contains("podnet_sync_duration_seconds_bucket"),
            "{text}"
        );
        let h = Health::new(Duration::from_secs(10));
        assert_eq!(
            route("/readyz", &m, &h).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        h.set_ready();
        assert_eq!(route("/readyz", &m, &h).status(), StatusCode::OK);
        assert_eq!(route("/healthz", &m, &h).status(), StatusCode::OK);
        h.heartbeat.store(now() - 100, Ordering::Relaxed);
        assert_eq!(
            route("/healthz", &m, &h).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(route("/nope", &m, &h).status(), StatusCode::NOT_FOUND);
    }
}
