#![allow(clippy::unwrap_used)]
//! The Kubernetes API source against a mocked API server (kube's recommended
//! `tower_test::mock::pair` approach): list then watch, trimming, relist after 410 Gone
//! without flushing the store, errors and backoff, RBAC denial, and the Node annotation patch.
//!
//! The mock answers every watch with a finite body: when the body ends the watcher
//! re-watches from the last resource version it saw, so each re-watch request both proves
//! that the previous events were consumed and shows where the watcher resumes. A watch
//! request that must stay open is simply left unanswered (its responder is kept alive).

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::client::Body;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::Client;
use podnet_cluster::kube_source::{annotate_node, spawn, watch_kind, SourceError};
use podnet_cluster::{ClusterView, Kind};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tower_test::mock::{self, Handle, SendResponse};

type Reply = SendResponse<Response<Body>>;

/// Upper bound for every test: a hang fails instead of blocking the suite.
const TEST_TIMEOUT: Duration = Duration::from_secs(20);

/// The first retry of kube's default backoff waits 800 ms plus up to 100 % jitter.
const MIN_BACKOFF: Duration = Duration::from_millis(800);

async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(TEST_TIMEOUT, f)
        .await
        .expect("test timed out")
}

// ---------------------------------------------------------------------------------------
// The mocked API server
// ---------------------------------------------------------------------------------------

fn mock_client() -> (Client, ApiServer) {
    let (svc, handle) = mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(svc, "default"), ApiServer { handle })
}

struct ApiServer {
    handle: Handle<Request<Body>, Response<Body>>,
}

fn query(req: &Request<Body>) -> BTreeMap<String, String> {
    req.uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (kv.to_string(), String::new()),
        })
        .collect()
}

impl ApiServer {
    async fn next(&mut self) -> (Request<Body>, Reply) {
        self.handle
            .next_request()
            .await
            .expect("the client went away")
    }

    /// The next request must be a (paged) list of `path`; returns its query.
    async fn expect_list(&mut self, path: &str) -> (BTreeMap<String, String>, Reply) {
        let (req, reply) = self.next().await;
        assert_eq!(req.method(), Method::GET, "{}", req.uri());
        assert_eq!(req.uri().path(), path, "{}", req.uri());
        let q = query(&req);
        assert!(!q.contains_key("watch"), "expected a list: {}", req.uri());
        assert_eq!(
            q.get("limit").map(String::as_str),
            Some("500"),
            "{}",
            req.uri()
        );
        (q, reply)
    }

    /// The next request must be a watch of `path` from `resource_version`, with bookmarks.
    async fn expect_watch(&mut self, path: &str, resource_version: &str) -> Reply {
        let (req, reply) = self.next().await;
        assert_eq!(req.method(), Method::GET, "{}", req.uri());
        assert_eq!(req.uri().path(), path, "{}", req.uri());
        let q = query(&req);
        assert_eq!(
            q.get("watch").map(String::as_str),
            Some("true"),
            "{}",
            req.uri()
        );
        assert_eq!(
            q.get("allowWatchBookmarks").map(String::as_str),
            Some("true"),
            "{}",
            req.uri()
        );
        assert_eq!(
            q.get("resourceVersion").map(String::as_str),
            Some(resource_version),
            "{}",
            req.uri()
        );
        reply
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::from(serde_json::to_vec(body).unwrap()))
        .unwrap()
}

fn list(
    kind: &str,
    api_version: &str,
    resource_version: &str,
    continue_token: Option<&str>,
    items: Vec<Value>,
) -> Response<Body> {
    let mut metadata = json!({ "resourceVersion": resource_version });
    if let Some(c) = continue_token {
        metadata["continue"] = json!(c);
    }
    json_response(
        StatusCode::OK,
        &json!({
            "kind": format!("{kind}List"),
            "apiVersion": api_version,
            "metadata": metadata,
            "items": items,
        }),
    )
}

fn node_list(resource_version: &str, items: Vec<Value>) -> Response<Body> {
    list("Node", "v1", resource_version, None, items)
}

/// A watch response: newline-delimited JSON watch events. The body ends after them.
fn watch_events(events: &[Value]) -> Response<Body> {
    let mut body = String::new();
    for e in events {
        body.push_str(&e.to_string());
        body.push('\n');
    }
    Response::builder()
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.into_bytes()))
        .unwrap()
}

fn event(kind: &str, object: Value) -> Value {
    json!({ "type": kind, "object": object })
}

fn bookmark(resource_version: &str) -> Value {
    event(
        "BOOKMARK",
        json!({"kind": "Node", "apiVersion": "v1", "metadata": {"resourceVersion": resource_version}}),
    )
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code,
    })
}

/// A Node as the API server sends it: with everything podnet trims away.
fn node(name: &str, resource_version: &str, pod_cidr: &str) -> Value {
    json!({
        "kind": "Node",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "uid": format!("uid-{name}"),
            "resourceVersion": resource_version,
            "labels": {"kubernetes.io/hostname": name},
            "annotations": {
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
                "podnet.io/vtep-mac": format!("02:00:00:00:00:{:02x}", name.len()),
            },
            "managedFields": [{
                "manager": "kubelet", "operation": "Update", "apiVersion": "v1",
                "time": "2024-01-01T00:00:00Z", "fieldsType": "FieldsV1",
                "fieldsV1": {"f:status": {"f:images": {}}},
            }],
        },
        "spec": {
            "podCIDR": pod_cidr,
            "podCIDRs": [pod_cidr, "fd00:10:244::/64"],
            "taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}],
            "providerID": format!("kind://docker/kind/{name}"),
        },
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": "172.18.0.2"},
                {"type": "Hostname", "address": name},
            ],
            "images": [{"names": ["registry.k8s.io/pause:3.9"], "sizeBytes": 321_520}],
            "conditions": [{"type": "Ready", "status": "True"}],
            "capacity": {"cpu": "8", "memory": "16Gi"},
            "nodeInfo": {
                "architecture": "amd64", "bootID": "b", "containerRuntimeVersion": "containerd://1.7",
                "kernelVersion": "6.1", "kubeProxyVersion": "v1.30.0", "kubeletVersion": "v1.30.0",
                "machineID": "m", "operatingSystem": "linux", "osImage": "Debian", "systemUUID": "s",
            },
        },
    })
}

// ---------------------------------------------------------------------------------------
// The view side
// ---------------------------------------------------------------------------------------

/// Starts only the Node watcher (the other kinds would issue requests too).
fn start_node_watcher(
    client: Client,
) -> (
    ClusterView,
    mpsc::UnboundedReceiver<SourceError>,
    JoinHandle<()>,
) {
    let (view, writer) = ClusterView::new();
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(watch_kind::<Node>(client, writer.nodes, tx));
    (view, rx, task)
}

fn names<K: kube::Resource<DynamicType = ()> + Clone>(store: &Store<K>) -> Vec<String> {
    let mut v: Vec<String> = store
        .state()
        .iter()
        .map(|o| o.meta().name.clone().unwrap_or_default())
        .collect();
    v.sort();
    v
}

fn get_node(view: &ClusterView, name: &str) -> Node {
    (*view
        .nodes
        .get(&ObjectRef::new(name))
        .unwrap_or_else(|| panic!("node {name} not in the store")))
    .clone()
}

/// Waits on the change counter until `cond` holds.
async fn wait_until(changes: &mut watch::Receiver<u64>, mut cond: impl FnMut() -> bool) {
    while !cond() {
        changes.changed().await.expect("the writer went away");
    }
}

async fn not_synced_within(view: &ClusterView, kinds: &[Kind], d: Duration) -> bool {
    tokio::time::timeout(d, view.synced(kinds)).await.is_err()
}

fn assert_trimmed(n: &Node, expect_pod_cidr: &str) {
    let name = n.metadata.name.clone().unwrap();
    assert!(
        n.metadata.managed_fields.is_none(),
        "{name}: managedFields kept"
    );
    let ann = n
        .metadata
        .annotations
        .as_ref()
        .expect("podnet annotation dropped");
    assert_eq!(
        ann.keys().map(String::as_str).collect::<Vec<_>>(),
        vec!["podnet.io/vtep-mac"],
        "{name}: foreign annotations kept"
    );
    assert_eq!(
        n.metadata.labels.as_ref().unwrap()["kubernetes.io/hostname"],
        name,
        "labels must survive"
    );
    let spec = n.spec.as_ref().unwrap();
    assert_eq!(spec.pod_cidr.as_deref(), Some(expect_pod_cidr));
    assert_eq!(
        spec.pod_cidrs.as_deref(),
        Some(&[expect_pod_cidr.to_string(), "fd00:10:244::/64".to_string()][..])
    );
    assert!(
        spec.taints.is_none() && spec.provider_id.is_none(),
        "{name}: spec not trimmed"
    );
    let st = n.status.as_ref().unwrap();
    let addrs = st.addresses.as_ref().expect("status.addresses dropped");
    assert_eq!(addrs.len(), 2);
    assert_eq!(addrs[0].type_, "InternalIP");
    assert_eq!(addrs[0].address, "172.18.0.2");
    assert!(st.images.is_none(), "{name}: status.images kept");
    assert!(st.conditions.is_none(), "{name}: status.conditions kept");
    assert!(st.node_info.is_none(), "{name}: status.nodeInfo kept");
    assert!(st.capacity.is_none(), "{name}: status.capacity kept");
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn list_then_watch_feeds_trimmed_nodes_into_the_store() {
    bounded(async {
        let (client, mut api) = mock_client();
        let (view, mut errors, task) = start_node_watcher(client);
        let mut changes = view.changes(Kind::Node);

        let (_, reply) = api.expect_list("/api/v1/nodes").await;
        // Not synced before the list is answered.
        assert!(not_synced_within(&view, &[Kind::Node], Duration::from_millis(50)).await);
        reply.send_response(node_list(
            "100",
            vec![
                node("node-a", "10", "10.244.1.0/24"),
                node("node-b", "11", "10.244.2.0/24"),
            ],
        ));
        view.synced(&[Kind::Node]).await.unwrap();
        assert!(
            changes.has_changed().unwrap(),
            "InitDone must bump the counter"
        );
        changes.mark_unchanged();
        assert_eq!(names(&view.nodes), ["node-a", "node-b"]);
        assert_trimmed(&get_node(&view, "node-a"), "10.244.1.0/24");
        assert_trimmed(&get_node(&view, "node-b"), "10.244.2.0/24");

        // The watch starts at the list's resource version.
        let reply = api.expect_watch("/api/v1/nodes", "100").await;
        reply.send_response(watch_events(&[
            event("ADDED", node("node-c", "101", "10.244.3.0/24")),
            event("MODIFIED", node("node-a", "102", "10.244.9.0/24")),
            bookmark("105"),
        ]));
        wait_until(&mut changes, || {
            view.nodes.len() == 3
                && get_node(&view, "node-a").spec.unwrap().pod_cidr.as_deref()
                    == Some("10.244.9.0/24")
        })
        .await;
        assert_eq!(names(&view.nodes), ["node-a", "node-b", "node-c"]);
        assert_trimmed(&get_node(&view, "node-a"), "10.244.9.0/24");
        assert_trimmed(&get_node(&view, "node-c"), "10.244.3.0/24");
        assert_eq!(
            get_node(&view, "node-a")
                .metadata
                .resource_version
                .as_deref(),
            Some("102")
        );

        // The body ended: the watcher resumes from the bookmark, not from the list.
        let reply = api.expect_watch("/api/v1/nodes", "105").await;
        reply.send_response(watch_events(&[event(
            "DELETED",
            node("node-b", "106", "10.244.2.0/24"),
        )]));
        wait_until(&mut changes, || view.nodes.len() == 2).await;
        assert_eq!(names(&view.nodes), ["node-a", "node-c"]);

        // ...and then from the deleted object's resource version; that watch stays open.
        let _open = api.expect_watch("/api/v1/nodes", "106").await;
        assert!(errors.try_recv().is_err(), "no errors expected");
        assert_eq!(names(&view.nodes), ["node-a", "node-c"]);
        task.abort();
    })
    .await;
}

#[tokio::test]
async fn gone_during_watch_relists_without_flushing_the_store() {
    bounded(async {
        let (client, mut api) = mock_client();
        let (view, mut errors, task) = start_node_watcher(client);
        let mut changes = view.changes(Kind::Node);

        let (_, reply) = api.expect_list("/api/v1/nodes").await;
        reply.send_response(node_list(
            "100",
            vec![
                node("node-a", "10", "10.244.1.0/24"),
                node("node-b", "11", "10.244.2.0/24"),
                node("node-c", "12", "10.244.3.0/24"),
            ],
        ));
        view.synced(&[Kind::Node]).await.unwrap();
        let old = names(&view.nodes);
        assert_eq!(old, ["node-a", "node-b", "node-c"]);

        let reply = api.expect_watch("/api/v1/nodes", "100").await;
        reply.send_response(watch_events(&[event(
            "ERROR",
            status(410, "Expired", "too old resource version: 100 (4242)"),
        )]));

        // An expired watch is routine, not an error to report; the store is not flushed
        // while the watcher backs off.
        assert_eq!(names(&view.nodes), old);
        changes.mark_unchanged();

        // The relist is a fresh paged list (no resourceVersion, so it is not served from
        // the expired window). First page: a changed node-a and a new node-d.
        let (q, reply) = api.expect_list("/api/v1/nodes").await;
        assert!(
            !q.contains_key("continue") && !q.contains_key("resourceVersion"),
            "{q:?}"
        );
        reply.send_response(list(
            "Node",
            "v1",
            "200",
            Some("page-2"),
            vec![
                node("node-a", "150", "10.244.7.0/24"),
                node("node-d", "151", "10.244.4.0/24"),
            ],
        ));

        // While the second page is outstanding the first page is buffered, not applied.
        let (q, reply) = api.expect_list("/api/v1/nodes").await;
        assert_eq!(q.get("continue").map(String::as_str), Some("page-2"));
        assert_eq!(
            names(&view.nodes),
            old,
            "relist must not flush the store early"
        );
        assert_eq!(
            get_node(&view, "node-a").spec.unwrap().pod_cidr.as_deref(),
            Some("10.244.1.0/24")
        );
        assert!(!changes.has_changed().unwrap(), "no change before InitDone");

        reply.send_response(list(
            "Node",
            "v1",
            "200",
            None,
            vec![node("node-e", "152", "10.244.5.0/24")],
        ));
        // After the relist the store equals its content: node-b and node-c are gone.
        wait_until(&mut changes, || names(&view.nodes) != old).await;
        assert_eq!(names(&view.nodes), ["node-a", "node-d", "node-e"]);
        assert_trimmed(&get_node(&view, "node-a"), "10.244.7.0/24");
        assert_trimmed(&get_node(&view, "node-e"), "10.244.5.0/24");

        // The watch resumes from the relist's resource version.
        let _open = api.expect_watch("/api/v1/nodes", "200").await;
        assert!(
            errors.try_recv().is_err(),
            "a 410 is not reported as an error"
        );
        task.abort();
    })
    .await;
}

#[tokio::test]
async fn api_error_is_reported_then_retried_after_backoff() {
    bounded(async {
        let (client, mut api) = mock_client();
        let (view, mut errors, task) = start_node_watcher(client);

        let (_, reply) = api.expect_list("/api/v1/nodes").await;
        reply.send_response(json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &status(500, "InternalError", "etcdserver: request timed out"),
        ));
        let e = errors.recv().await.unwrap();
        let failed_at = tokio::time::Instant::now();
        assert!(
            matches!(&e, SourceError::Api { kind: Kind::Node, resource: "nodes", code: 500, message }
                if message == "etcdserver: request timed out"),
            "{e:?}"
        );
        assert!(!e.is_forbidden());
        let text = e.to_string();
        assert!(text.contains("500") && text.contains("nodes"), "{text}");
        assert!(not_synced_within(&view, &[Kind::Node], Duration::from_millis(50)).await);

        // The retry comes after the backoff, not in a hot loop.
        let (_, reply) = api.expect_list("/api/v1/nodes").await;
        let waited = failed_at.elapsed();
        assert!(waited >= MIN_BACKOFF - Duration::from_millis(100), "retried after {waited:?}");
        reply.send_response(node_list("300", vec![node("node-a", "10", "10.244.1.0/24")]));
        view.synced(&[Kind::Node]).await.unwrap();
        assert_eq!(names(&view.nodes), ["node-a"]);
        let _open = api.expect_watch("/api/v1/nodes", "300").await;
        assert!(errors.try_recv().is_err(), "only one error expected");
        task.abort();
    })
    .await;
}

#[tokio::test]
async fn forbidden_list_names_the_missing_rbac_and_keeps_retrying() {
    bounded(async {
        let (client, mut api) = mock_client();
        let (view, mut errors, task) = start_node_watcher(client);
        let denial = "nodes is forbidden: User \"system:serviceaccount:kube-system:podnet\" \
                      cannot list resource \"nodes\" in API group \"\" at the cluster scope";

        let (_, reply) = api.expect_list("/api/v1/nodes").await;
        reply.send_response(json_response(
            StatusCode::FORBIDDEN,
            &status(403, "Forbidden", denial),
        ));
        let e = errors.recv().await.unwrap();
        assert!(e.is_forbidden(), "{e:?}");
        assert!(
            matches!(&e, SourceError::Forbidden { kind: Kind::Node, resource: "nodes", message }
                if message == denial),
            "{e:?}"
        );
        let text = e.to_string();
        assert!(text.contains("forbidden to list/watch nodes"), "{text}");
        assert!(
            text.contains("grant podnet's ServiceAccount get, list and watch on nodes"),
            "{text}"
        );
        // The hint points at a manifest that exists in this repository.
        let manifest = text
            .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
            .find(|w| w.starts_with("deploy/"))
            .unwrap_or_else(|| panic!("no deploy/ manifest named: {text}"));
        let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(manifest);
        let rbac = std::fs::read_to_string(&manifest)
            .unwrap_or_else(|e| panic!("{text}: {}: {e}", manifest.display()));
        assert!(
            rbac.contains("nodes") && rbac.contains("watch"),
            "{}",
            manifest.display()
        );
        assert!(
            text.contains(denial),
            "the API server's message must be kept: {text}"
        );

        // Not synced, nothing stored.
        assert!(not_synced_within(&view, &[Kind::Node], Duration::from_millis(100)).await);
        assert_eq!(view.nodes.len(), 0);

        // The watcher keeps retrying (with backoff): once RBAC is fixed it syncs by itself.
        let (_, reply) = api.expect_list("/api/v1/nodes").await;
        reply.send_response(node_list(
            "400",
            vec![node("node-a", "10", "10.244.1.0/24")],
        ));
        view.synced(&[Kind::Node]).await.unwrap();
        assert_eq!(names(&view.nodes), ["node-a"]);
        let _open = api.expect_watch("/api/v1/nodes", "400").await;
        assert!(errors.try_recv().is_err());
        task.abort();
    })
    .await;
}

#[tokio::test]
async fn annotate_node_sends_a_merge_patch() {
    bounded(async {
        let (client, mut api) = mock_client();
        let server = tokio::spawn(async move {
            let (req, reply) = api.next().await;
            assert_eq!(req.method(), Method::PATCH);
            assert_eq!(req.uri().path(), "/api/v1/nodes/node-a");
            assert_eq!(
                req.headers()[http::header::CONTENT_TYPE],
                "application/merge-patch+json"
            );
            let body = req.into_body().collect_bytes().await.unwrap();
            let body: Value = serde_json::from_slice(&body).unwrap();
            reply.send_response(json_response(
                StatusCode::OK,
                &node("node-a", "77", "10.244.1.0/24"),
            ));

            // Then a Node that does not exist.
            let (req, reply) = api.next().await;
            assert_eq!(req.uri().path(), "/api/v1/nodes/node-z");
            reply.send_response(json_response(
                StatusCode::NOT_FOUND,
                &status(404, "NotFound", "nodes \"node-z\" not found"),
            ));
            body
        });

        annotate_node(
            client.clone(),
            "node-a",
            &[
                ("podnet.io/vtep-mac", "02:42:ac:12:00:02"),
                ("podnet.io/public-ip", "172.18.0.2"),
            ],
        )
        .await
        .unwrap();

        let err = annotate_node(client, "node-z", &[("podnet.io/vtep-mac", "x")])
            .await
            .unwrap_err();
        assert!(
            matches!(&err, SourceError::Annotate { node, source: kube::Error::Api(s) }
                if node == "node-z" && s.code == 404),
            "{err:?}"
        );
        assert!(!err.is_forbidden());
        assert!(
            err.to_string().starts_with("cannot annotate Node node-z "),
            "{err}"
        );

        // Only the given annotations, as a merge patch: nothing else is touched.
        let body = server.await.unwrap();
        assert_eq!(
            body,
            json!({"metadata": {"annotations": {
                "podnet.io/vtep-mac": "02:42:ac:12:00:02",
                "podnet.io/public-ip": "172.18.0.2",
            }}})
        );
    })
    .await;
}

#[tokio::test]
async fn spawn_syncs_all_six_kinds() {
    bounded(async {
        let (client, mut api) = mock_client();
        let (view, writer) = ClusterView::new();
        let (tx, mut errors) = mpsc::unbounded_channel();
        let tasks = spawn(client, writer, tx);
        assert_eq!(tasks.len(), 6);

        let lists: BTreeMap<&str, (&str, &str, Value)> = BTreeMap::from([
            ("/api/v1/nodes", ("Node", "v1", node("node-a", "1", "10.244.1.0/24"))),
            (
                "/api/v1/pods",
                (
                    "Pod",
                    "v1",
                    json!({
                        "metadata": {"name": "web-1", "namespace": "shop", "resourceVersion": "2",
                            "annotations": {"kubectl.kubernetes.io/restartedAt": "now"}},
                        "spec": {"nodeName": "node-a", "containers": [{"name": "web", "image": "nginx",
                            "ports": [{"containerPort": 80, "hostIP": "1.2.3.4"}]}]},
                        "status": {"podIP": "10.244.1.5", "phase": "Running",
                            "containerStatuses": [{"name": "web", "image": "nginx", "imageID": "x",
                                "ready": true, "restartCount": 0}]},
                    }),
                ),
            ),
            (
                "/api/v1/namespaces",
                (
                    "Namespace",
                    "v1",
                    json!({"metadata": {"name": "shop", "resourceVersion": "3", "labels": {"team": "a"}},
                        "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}),
                ),
            ),
            (
                "/api/v1/services",
                (
                    "Service",
                    "v1",
                    json!({"metadata": {"name": "web", "namespace": "shop", "resourceVersion": "4",
                            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}",
                                "service.kubernetes.io/topology-mode": "Auto"}},
                        "spec": {"clusterIP": "10.96.0.10", "ports": [{"port": 80}]}}),
                ),
            ),
            (
                "/apis/discovery.k8s.io/v1/endpointslices",
                (
                    "EndpointSlice",
                    "discovery.k8s.io/v1",
                    json!({"metadata": {"name": "web-abc", "namespace": "shop", "resourceVersion": "5",
                            "labels": {"kubernetes.io/service-name": "web"}},
                        "addressType": "IPv4",
                        "endpoints": [{"addresses": ["10.244.1.5"]}]}),
                ),
            ),
            (
                "/apis/networking.k8s.io/v1/networkpolicies",
                (
                    "NetworkPolicy",
                    "networking.k8s.io/v1",
                    json!({"metadata": {"name": "deny", "namespace": "shop", "resourceVersion": "6"},
                        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}),
                ),
            ),
        ]);

        // Answer the six lists in whatever order they come; keep the six watches open.
        let mut listed = Vec::new();
        let mut watching = Vec::new();
        let mut open = Vec::new();
        while watching.len() < 6 {
            let (req, reply) = api.next().await;
            let path = req.uri().path().to_string();
            let q = query(&req);
            let Some((kind, api_version, item)) = lists.get(path.as_str()) else {
                panic!("unexpected request {}", req.uri());
            };
            if q.get("watch").map(String::as_str) == Some("true") {
                assert_eq!(q.get("resourceVersion").map(String::as_str), Some("1000"));
                watching.push(path);
                open.push(reply);
            } else {
                reply.send_response(list(kind, api_version, "1000", None, vec![item.clone()]));
                listed.push(path);
            }
        }
        listed.sort();
        watching.sort();
        let mut all: Vec<String> = lists.keys().map(|p| p.to_string()).collect();
        all.sort();
        assert_eq!(listed, all, "each kind listed exactly once");
        assert_eq!(watching, all, "each kind watched");

        view.synced(&Kind::ALL).await.unwrap();
        for k in Kind::ALL {
            assert_eq!(view.len(k), 1, "{k}");
        }
        assert_trimmed(&get_node(&view, "node-a"), "10.244.1.0/24");

        let pod: Pod = (*view.pods.get(&ObjectRef::new("web-1").within("shop")).unwrap()).clone();
        assert!(pod.metadata.annotations.is_none(), "foreign pod annotations kept");
        let spec = pod.spec.unwrap();
        assert_eq!(spec.node_name.as_deref(), Some("node-a"));
        assert!(spec.containers[0].image.is_none());
        assert_eq!(spec.containers[0].ports.as_ref().unwrap()[0].host_ip, None);
        let st = pod.status.unwrap();
        assert_eq!(st.pod_ip.as_deref(), Some("10.244.1.5"));
        assert!(st.container_statuses.is_none());

        let ns: Namespace = (*view.namespaces.get(&ObjectRef::new("shop")).unwrap()).clone();
        assert!(ns.spec.is_none() && ns.status.is_none());
        assert_eq!(ns.metadata.labels.unwrap()["team"], "a");

        let svc: Service = (*view.services.get(&ObjectRef::new("web").within("shop")).unwrap()).clone();
        let ann = svc.metadata.annotations.unwrap();
        assert!(!ann.contains_key("kubectl.kubernetes.io/last-applied-configuration"));
        assert_eq!(ann["service.kubernetes.io/topology-mode"], "Auto");
        assert_eq!(svc.spec.unwrap().cluster_ip.as_deref(), Some("10.96.0.10"));

        let eps: EndpointSlice = (*view
            .endpoint_slices
            .get(&ObjectRef::new("web-abc").within("shop"))
            .unwrap())
        .clone();
        assert_eq!(eps.endpoints.unwrap()[0].addresses, ["10.244.1.5"]);

        let np: NetworkPolicy = (*view
            .network_policies
            .get(&ObjectRef::new("deny").within("shop"))
            .unwrap())
        .clone();
        assert_eq!(np.spec.unwrap().policy_types.unwrap(), ["Ingress"]);

        assert!(errors.try_recv().is_err(), "no errors expected");
        for t in tasks {
            t.abort();
        }
        drop(open);
    })
    .await;
}
