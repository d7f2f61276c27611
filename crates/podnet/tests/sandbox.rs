//! The sandbox driven the way a user drives it: the `podnet sandbox` CLI, real namespaces,
//! the real agent and podnet-cni, real packets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::process::{Command, Output};
use std::time::Duration;

use podnet_sandbox::probe::{probe_udp_on, Outcome};
use serde_json::{json, Value};

const PODNET: &str = env!("CARGO_BIN_EXE_podnet");

/// A sandbox with a test-unique name, taken down on drop (also when the test fails).
struct Sb {
    name: String,
}

impl Sb {
    fn new(tag: &str) -> Sb {
        Sb {
            name: format!("t{}{tag}", std::process::id() % 100_000),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(PODNET)
            .arg("sandbox")
            .args(["--name", &self.name])
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap()
    }

    /// Runs and asserts success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "podnet sandbox {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args)).unwrap()
    }

    fn items(&self, kind: &str) -> Vec<Value> {
        self.json(&["get", kind, "-o", "json"])["items"]
            .as_array()
            .unwrap()
            .clone()
    }

    fn namespaces(&self) -> Vec<String> {
        let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|n| n.starts_with(&format!("psb.{}.", self.name)))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Sb {
    fn drop(&mut self) {
        let _ = self.run(&["down"]);
    }
}

fn root_links() -> String {
    let out = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .unwrap();
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(':').nth(1).map(|s| s.trim().to_string()))
        .collect();
    names.sort();
    names.join(",")
}

fn root_ruleset() -> String {
    let out = Command::new("nft")
        .args(["list", "ruleset"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn examples() -> String {
    format!("{}/../../examples", env!("CARGO_MANIFEST_DIR"))
}

fn pod<'a>(pods: &'a [Value], key: &str) -> &'a Value {
    let (ns, name) = key.split_once('/').unwrap();
    pods.iter()
        .find(|p| p["metadata"]["namespace"] == ns && p["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no pod {key}"))
}

fn web_endpoints(sb: &Sb) -> Vec<String> {
    let slices = sb.items("endpointslices");
    let web = slices
        .iter()
        .find(|s| s["metadata"]["labels"]["kubernetes.io/service-name"] == "web")
        .expect("web's slice");
    let mut ips: Vec<String> = web["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["conditions"]["ready"] == true)
        .map(|e| e["addresses"][0].as_str().unwrap().to_string())
        .collect();
    ips.sort();
    ips
}

fn end_to_end(routing: &str, tag: &str) {
    let links = root_links();
    let ruleset = root_ruleset();
    let sb = Sb::new(tag);
    sb.ok(&[
        "up",
        "--nodes",
        "3",
        "--routing",
        routing,
        "-f",
        &examples(),
    ]);
    assert_eq!(sb.namespaces().len(), 1 + 3 + 6, "{:?}", sb.namespaces());

    // The objects as the API server would show them.
    let nodes = sb.items("nodes");
    assert_eq!(nodes.len(), 3);
    assert_eq!(nodes[0]["spec"]["podCIDRs"][0], "10.244.1.0/24");
    assert_eq!(nodes[0]["status"]["addresses"][0]["type"], "InternalIP");
    let pods = sb.items("pods");
    assert_eq!(pods.len(), 6);
    for p in &pods {
        assert!(
            p["status"]["podIP"]
                .as_str()
                .unwrap()
                .starts_with("10.244."),
            "{p}"
        );
        let ready = p["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap();
        assert_eq!(ready["status"], "True", "{p}");
    }
    assert_eq!(pod(&pods, "backend/api-1")["spec"]["nodeName"], "node-1");
    let spread: std::collections::BTreeSet<_> = ["default/web-1", "default/web-2", "default/web-3"]
        .iter()
        .map(|k| {
            pod(&pods, k)["spec"]["nodeName"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(spread.len(), 3, "unpinned pods are spread over the nodes");
    let svcs = sb.items("services");
    assert!(svcs.iter().all(|s| s["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .starts_with("10.96.")));
    assert_eq!(web_endpoints(&sb).len(), 3);

    // Every pod reaches every pod's declared ports, across nodes, on TCP and UDP.
    let matrix = sb.json(&["check", "--json"]);
    let cells = matrix.as_array().unwrap();
    assert_eq!(cells.len(), 6 * 7, "6 sources x (3 web + 2x2 api) ports");
    for c in cells {
        assert_eq!(c["result"], "allow", "{c}");
        let to = c["to"].as_str().unwrap();
        assert_eq!(
            c["answer"],
            to.split('/').nth(1).unwrap(),
            "the pod answers with its name"
        );
    }
    assert!(cells
        .iter()
        .any(|c| c["fromNode"] != c["toNode"] && c["protocol"] == "udp"));

    // probe: allow / deny with exit codes; usage error is 2.
    let out = sb.run(&["probe", "default/client", "backend/api-2", "8080"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "allow");
    let out = sb.run(&["probe", "default/client", "backend/api-2", "8081"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "deny");
    let out = sb.run(&["probe", "default/client", "backend/api-2", "http"]);
    assert_eq!(out.status.code(), Some(2));

    // exec runs in the pod's namespace with its resolv.conf.
    let resolv = sb.ok(&["exec", "backend/api-1", "--", "cat", "/etc/resolv.conf"]);
    assert!(resolv.contains("search backend.svc.cluster.local svc.cluster.local cluster.local"));
    assert!(resolv.contains("nameserver 10.96.0.10") && resolv.contains("ndots:5"));
    let addr = sb.ok(&[
        "exec",
        "default/web-1",
        "--",
        "ip",
        "-4",
        "-o",
        "addr",
        "show",
        "eth0",
    ]);
    let web1_ip = pod(&pods, "default/web-1")["status"]["podIP"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(addr.contains(&web1_ip), "{addr}");

    // A label change moves a pod out of the Service's EndpointSlice, and back.
    let relabel = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        relabel.path(),
        "apiVersion: v1\nkind: Pod\nmetadata: {name: web-3, labels: {app: other}}\nspec:\n  containers:\n  - name: web\n    ports: [{name: http, containerPort: 80}]\n",
    )
    .unwrap();
    let path = relabel.path().to_str().unwrap();
    assert!(sb
        .ok(&["apply", "-f", path])
        .contains("pod/default/web-3 configured"));
    assert_eq!(web_endpoints(&sb).len(), 2);
    sb.ok(&["apply", "-f", &format!("{}/10-web.yaml", examples())]);
    assert_eq!(web_endpoints(&sb).len(), 3);

    // Delete and re-create a pod: it leaves the slice and the matrix, then comes back.
    sb.ok(&["delete", "pod", "default/web-2"]);
    assert_eq!(web_endpoints(&sb).len(), 2);
    assert_eq!(sb.items("pods").len(), 5);
    assert_eq!(sb.namespaces().len(), 1 + 3 + 5);
    sb.ok(&["apply", "-f", &format!("{}/10-web.yaml", examples())]);
    assert_eq!(web_endpoints(&sb).len(), 3);
    let out = sb.run(&["probe", "default/client", "default/web-2", "80"]);
    assert_eq!(out.status.code(), Some(0));

    // down leaves nothing.
    sb.ok(&["down"]);
    assert!(sb.namespaces().is_empty());
    assert!(!std::path::Path::new(&format!("/run/podnet/sandbox/{}", sb.name)).exists());
    assert_eq!(root_links(), links, "root namespace links unchanged");
    assert_eq!(root_ruleset(), ruleset, "root ruleset unchanged");
}

#[test]
fn sandbox_end_to_end_vxlan() {
    end_to_end("vxlan", "vx");
}

#[test]
fn sandbox_end_to_end_host_gw() {
    end_to_end("host-gw", "hg");
}

#[test]
fn bad_input_changes_nothing() {
    let sb = Sb::new("bad");
    sb.ok(&["up", "--nodes", "2"]);
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("x.yaml");
    let good_pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: ok}\nspec: {containers: [{name: c, ports: [{containerPort: 80}]}]}\n";
    for (bad, why) in [
        ("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n", "unknown kind"),
        ("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {nodeName: node-9, containers: [{name: c}]}\n", "node-9"),
        ("apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: nope}\nspec: {containers: [{name: c}]}\n", "namespaces \"nope\" not found"),
        ("apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {clusterIP: 192.168.1.1, ports: [{port: 80}]}\n", "not in the service range"),
        ("apiVersion: v1\nkind: Node\nmetadata: {name: n}\n", "managed by the sandbox"),
    ] {
        std::fs::write(&f, format!("{good_pod}---\n{bad}")).unwrap();
        let out = sb.run(&["apply", "-f", f.to_str().unwrap()]);
        assert!(!out.status.success(), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "{why}: {err}");
        assert!(sb.items("pods").is_empty(), "nothing applied after: {why}");
        assert_eq!(sb.namespaces().len(), 3, "no pod namespace left after: {why}");
    }
    // Pods are immutable but for labels and annotations.
    std::fs::write(&f, good_pod).unwrap();
    sb.ok(&["apply", "-f", f.to_str().unwrap()]);
    std::fs::write(&f, good_pod.replace("80", "81")).unwrap();
    let out = sb.run(&["apply", "-f", f.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("pod updates may not change"));
}

#[test]
fn two_sandboxes_side_by_side_and_down_after_kill_9() {
    let a = Sb::new("a");
    let b = Sb::new("b");
    a.ok(&[
        "up",
        "--nodes",
        "2",
        "-f",
        &format!("{}/10-web.yaml", examples()),
    ]);
    b.ok(&[
        "up",
        "--nodes",
        "1",
        "--routing",
        "host-gw",
        "-f",
        &format!("{}/10-web.yaml", examples()),
    ]);
    assert_eq!(a.items("pods").len(), 3);
    assert_eq!(b.items("pods").len(), 3);
    let out = b.run(&["up"]);
    assert!(
        !out.status.success(),
        "a second up of the same name is refused"
    );
    // kill -9 every process of sandbox a (agents and pod servers), then down.
    for ns in a.namespaces() {
        let pids = Command::new("ip")
            .args(["netns", "pids", &ns])
            .output()
            .unwrap();
        for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
            let pid = nix::unistd::Pid::from_raw(pid.parse().unwrap());
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
    }
    a.ok(&["down"]);
    assert!(a.namespaces().is_empty());
    // b is untouched and still works.
    let matrix = b.json(&["check", "--json"]);
    assert!(matrix
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["result"] == "allow"));
    assert_eq!(b.namespaces().len(), 1 + 1 + 3);
}

/// The last lines of a node agent's log (for failure messages).
fn agent_log(sb: &Sb, node: &str) -> String {
    let path = format!("/run/podnet/sandbox/{}/logs/agent-{node}.log", sb.name);
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Probes from pod `from` and answers the JSON outcome.
fn probe_json(sb: &Sb, from: &str, target: &str, port: &str) -> Value {
    let out = sb.run(&["probe", "--json", from, target, port]);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "probe {from} {target} {port}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Probes from node `node`'s own namespace (a client outside the pod network), as JSON.
fn probe_from_node(sb: &Sb, node: &str, ip: &str, port: u16) -> Value {
    let out = Command::new("ip")
        .args(["netns", "exec", &format!("psb.{}.{node}", sb.name)])
        .arg(PODNET)
        .args(["sandbox", "probe-raw", ip, &port.to_string(), "tcp"])
        .args(["--timeout", "1s"])
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Retries `f` for up to 10 s until `ok` holds (the agents program Services asynchronously,
/// as kube-proxy does); answers the last value.
fn eventually(mut f: impl FnMut() -> Value, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let v = f();
        if ok(&v) || std::time::Instant::now() > deadline {
            return v;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

fn service<'a>(svcs: &'a [Value], ns: &str, name: &str) -> &'a Value {
    svcs.iter()
        .find(|s| s["metadata"]["namespace"] == ns && s["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no service {ns}/{name}"))
}

#[test]
fn services_through_the_proxy() {
    let sb = Sb::new("svc");
    sb.ok(&["up", "-f", &examples()]);
    let dir = tempfile::tempdir().unwrap();
    let extra = dir.path().join("np.yaml");
    std::fs::write(
        &extra,
        "apiVersion: v1\nkind: Service\nmetadata: {name: web-np}\nspec:\n  type: NodePort\n  selector: {app: web}\n  ports: [{port: 80, targetPort: http}]\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {name: web-local}\nspec:\n  type: NodePort\n  externalTrafficPolicy: Local\n  selector: {app: web}\n  ports: [{port: 80, targetPort: http}]\n",
    )
    .unwrap();
    sb.ok(&["apply", "-f", extra.to_str().unwrap()]);
    let svcs = sb.items("services");
    let pods = sb.items("pods");
    let web_ip = service(&svcs, "default", "web")["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .to_string();
    let api_ip = service(&svcs, "backend", "api")["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .to_string();
    let node_port = |name: &str| {
        service(&svcs, "default", name)["spec"]["ports"][0]["nodePort"]
            .as_u64()
            .unwrap() as u16
    };
    let client_ip = pod(&pods, "default/client")["status"]["podIP"]
        .as_str()
        .unwrap()
        .to_string();
    let allowed = |v: &Value| v["result"] == "allow";

    // ClusterIP: the client pod (node-2) spreads over all three web pods, unmasqueraded.
    eventually(|| probe_json(&sb, "default/client", &web_ip, "80"), allowed);
    let mut answered = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let v = probe_json(&sb, "default/client", &web_ip, "80");
        assert_eq!(v["result"], "allow", "{v}");
        assert_eq!(v["client"], client_ip.as_str(), "{v}");
        answered.insert(v["answer"].as_str().unwrap().to_string());
    }
    assert_eq!(
        answered,
        ["web-1", "web-2", "web-3"].map(String::from).into(),
        "spread over the endpoints"
    );
    // UDP through the ClusterIP (named target port 5353).
    let v = eventually(
        || probe_json(&sb, "default/client", &api_ip, "53/udp"),
        allowed,
    );
    assert!(v["answer"].as_str().unwrap().starts_with("api-"), "{v}");
    // By name, through the pod's resolv.conf search path is the DNS issue's; the IP works.

    // NodePort on node-1's address, from a pod on node-2.
    let node1 = "172.18.0.2";
    let np = node_port("web-np");
    let v = eventually(
        || probe_json(&sb, "default/client", node1, &np.to_string()),
        allowed,
    );
    assert!(
        v["answer"].as_str().is_some_and(|a| a.starts_with("web-")),
        "{v}\n{}",
        agent_log(&sb, "node-1")
    );
    // From node-2 itself (outside the pod network): externalTrafficPolicy Cluster masquerades...
    let v = eventually(|| probe_from_node(&sb, "node-2", node1, np), allowed);
    assert_ne!(v["client"], "172.18.0.3", "{v}");
    // ... and Local keeps the client's address and answers from node-1's own pod only.
    let local = node_port("web-local");
    for _ in 0..10 {
        let v = eventually(|| probe_from_node(&sb, "node-2", node1, local), allowed);
        assert_eq!(v["client"], "172.18.0.3", "{v}");
        assert_eq!(v["answer"], "web-1", "{v}");
    }

    // An unused port of a ClusterIP is refused at once.
    let v = probe_json(&sb, "default/client", &web_ip, "81");
    assert_eq!(v["result"], "deny", "{v}");
    assert!(v["reason"].as_str().unwrap().contains("refused"), "{v}");

    // Scale the backend to zero: the ClusterIP refuses at once (no timeout).
    sb.ok(&["delete", "pod", "backend/api-1"]);
    sb.ok(&["delete", "pod", "backend/api-2"]);
    // (Until the agents see the change, a probe may still go to a pod being torn down.)
    let refused = |v: &Value| v["reason"].as_str().is_some_and(|r| r.contains("refused"));
    let v = eventually(|| probe_json(&sb, "default/client", &api_ip, "80"), refused);
    assert!(refused(&v), "{v}");
    let started = std::time::Instant::now();
    let v = probe_json(&sb, "default/client", &api_ip, "80");
    assert!(refused(&v), "{v}");
    assert!(
        started.elapsed() < std::time::Duration::from_millis(900),
        "refused at once, not after the probe's 1 s timeout: {:?}",
        started.elapsed()
    );
}

/// Runs `f` on a thread inside network namespace `ns` (sockets it opens stay there).
fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || podnet_netdev::NetNs::open(&path).unwrap().run(f).unwrap())
        .join()
        .unwrap()
}

/// The network namespace of pod `key`, as the pod itself names it.
fn pod_netns(sb: &Sb, key: &str) -> String {
    let ns = sb.ok(&["exec", key, "--", "ip", "netns", "identify"]);
    ns.trim().to_string()
}

/// Node `name`'s address on the underlay.
fn node_ip(sb: &Sb, name: &str) -> IpAddr {
    let nodes = sb.items("nodes");
    let node = nodes
        .iter()
        .find(|n| n["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no node {name}"));
    node["status"]["addresses"][0]["address"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// `GET path` from namespace `ns`: `{"status": 200, "body": …}` (the body as JSON when it is
/// JSON, else as text), or `{"error": …}` when there is no answer.
fn http_get(ns: &str, addr: SocketAddr, path: &str) -> Value {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let got = in_netns(ns, move || -> std::io::Result<Vec<u8>> {
        let timeout = Duration::from_secs(1);
        let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.write_all(request.as_bytes())?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer)?;
        Ok(answer)
    });
    let answer = match got {
        Ok(answer) => String::from_utf8_lossy(&answer).into_owned(),
        Err(e) => return json!({ "error": e.to_string() }),
    };
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = serde_json::from_str(body).unwrap_or_else(|_| Value::from(body));
    json!({ "status": status, "body": body })
}

/// A pod with the built-in server on port 80, pinned to `node`.
fn pinned_pod(name: &str, app: &str, node: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, labels: {{app: {app}}}}}\n\
         spec: {{nodeName: {node}, containers: [{{name: web, ports: [{{containerPort: 80}}]}}]}}\n"
    )
}

const HEALTH_PORT: u16 = 32123;

#[test]
fn health_check_node_ports_follow_the_local_endpoints() {
    let sb = Sb::new("hc");
    sb.ok(&["up", "--nodes", "3"]);
    let dir = tempfile::tempdir().unwrap();
    let apply = |file: &str, text: &str| {
        let path = dir.path().join(file);
        std::fs::write(&path, text).unwrap();
        sb.ok(&["apply", "-f", path.to_str().unwrap()]);
    };
    let lb = |policy: &str, health: &str| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: lb}}\nspec:\n  type: LoadBalancer\n  \
             externalTrafficPolicy: {policy}\n{health}  selector: {{app: lb}}\n  ports: [{{port: 80}}]\n"
        )
    };
    let local_lb = lb("Local", &format!("  healthCheckNodePort: {HEALTH_PORT}\n"));
    apply(
        "lb.yaml",
        &[
            pinned_pod("lb-1", "lb", "node-1"),
            pinned_pod("lb-2", "lb", "node-1"),
            local_lb.clone(),
        ]
        .join("---\n"),
    );
    // Asked from another node's namespace, the way a load balancer asks.
    let health = |from: &str, node: &str| {
        let addr = SocketAddr::new(node_ip(&sb, node), HEALTH_PORT);
        http_get(&format!("psb.{}.{from}", sb.name), addr, "/healthz")
    };
    let local = |n: u64| {
        move |v: &Value| {
            let code = if n > 0 { 200 } else { 503 };
            v["status"] == code && v["body"]["localEndpoints"] == n
        }
    };

    // node-1 has both endpoints; node-2 and node-3 have none.
    let v = eventually(|| health("node-3", "node-1"), local(2));
    assert!(local(2)(&v), "{v}\n{}", agent_log(&sb, "node-1"));
    assert_eq!(
        v["body"]["service"],
        json!({"namespace": "default", "name": "lb"})
    );
    let v = eventually(|| health("node-3", "node-2"), local(0));
    assert!(local(0)(&v), "{v}\n{}", agent_log(&sb, "node-2"));
    let v = eventually(|| health("node-1", "node-3"), local(0));
    assert!(local(0)(&v), "{v}\n{}", agent_log(&sb, "node-3"));

    // One endpoint goes from node-1, one comes to node-2.
    sb.ok(&["delete", "pod", "default/lb-2"]);
    apply("lb-3.yaml", &pinned_pod("lb-3", "lb", "node-2"));
    for (node, n) in [("node-1", 1), ("node-2", 1), ("node-3", 0)] {
        let from = if node == "node-3" { "node-1" } else { "node-3" };
        let v = eventually(|| health(from, node), local(n));
        assert!(local(n)(&v), "{node}: {v}\n{}", agent_log(&sb, node));
    }

    // lb-1 leaves the Service (relabelled, still running): node-1 has none left.
    apply("lb-1.yaml", &pinned_pod("lb-1", "other", "node-1"));
    let v = eventually(|| health("node-3", "node-1"), local(0));
    assert!(local(0)(&v), "{v}\n{}", agent_log(&sb, "node-1"));
    let v = health("node-3", "node-2");
    assert!(local(1)(&v), "node-2 keeps its endpoint: {v}");

    // Traffic policy Cluster: no health check, the port closes on every node.
    apply("lb.yaml", &lb("Cluster", ""));
    for node in ["node-1", "node-2", "node-3"] {
        let closed = |v: &Value| v["error"].as_str().is_some_and(|e| e.contains("refused"));
        let v = eventually(|| health("node-3", node), closed);
        assert!(closed(&v), "{node}: {v}\n{}", agent_log(&sb, node));
    }
}

/// One UDP probe as JSON (`result`, and `answer` or `reason`).
fn outcome_json(outcome: Outcome) -> Value {
    match outcome {
        Outcome::Allow { answer, .. } => json!({ "result": "allow", "answer": answer }),
        Outcome::Deny { reason } => json!({ "result": "deny", "reason": reason }),
    }
}

/// A counter of node `node`'s agent metrics (read inside the node's namespace).
fn agent_counter(sb: &Sb, node: &str, name: &str) -> f64 {
    let ns = format!("psb.{}.{node}", sb.name);
    let v = http_get(&ns, "127.0.0.1:9464".parse().unwrap(), "/metrics");
    let text = v["body"].as_str().unwrap_or_else(|| panic!("metrics: {v}"));
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

#[test]
fn stale_udp_flows_follow_the_endpoints() {
    let sb = Sb::new("udp");
    let ex = examples();
    sb.ok(&[
        "up",
        "-f",
        &format!("{ex}/00-namespaces.yaml"),
        "-f",
        &format!("{ex}/20-backend.yaml"),
        "-f",
        &format!("{ex}/30-client.yaml"),
    ]);
    let api_ip = service(&sb.items("services"), "backend", "api")["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .to_string();
    let allowed = |v: &Value| v["result"] == "allow";
    let v = eventually(
        || probe_json(&sb, "default/client", &api_ip, "53/udp"),
        allowed,
    );
    assert!(allowed(&v), "{v}\n{}", agent_log(&sb, "node-2"));

    // The client (node-2) keeps one socket, as a resolver does: one source port, one flow.
    let dst = SocketAddr::new(api_ip.parse().unwrap(), 53);
    let socket = in_netns(&pod_netns(&sb, "default/client"), move || {
        let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
        socket.connect(dst).unwrap();
        socket
    });
    let ask = || outcome_json(probe_udp_on(&socket, Duration::from_millis(500)));
    let answers = |name: String| move |v: &Value| v["answer"] == name.as_str();
    let v = eventually(ask, allowed);
    let first = v["answer"]
        .as_str()
        .unwrap_or_else(|| panic!("{v}"))
        .to_string();
    let second = if first == "api-1" { "api-2" } else { "api-1" }.to_string();
    for _ in 0..5 {
        let v = ask();
        assert_eq!(
            v["answer"],
            first.as_str(),
            "the flow stays on its endpoint: {v}"
        );
    }
    let deleted_before = agent_counter(&sb, "node-2", "podnet_proxy_conntrack_deleted_total");

    // `first` leaves the Service but keeps running: only the removed flow would still reach it.
    let backend = std::fs::read_to_string(format!("{ex}/20-backend.yaml")).unwrap();
    let moved = backend
        .split("\n---\n")
        .find(|doc| doc.contains(&format!("name: {first},")))
        .unwrap()
        .replace("labels: {app: api}", "labels: {app: api-moved}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("moved.yaml");
    std::fs::write(&path, moved).unwrap();
    sb.ok(&["apply", "-f", path.to_str().unwrap()]);
    let v = eventually(ask, answers(second.clone()));
    assert_eq!(
        v["answer"],
        second.as_str(),
        "{v}\n{}",
        agent_log(&sb, "node-2")
    );

    // `first` comes back: the flow stays where it is (only flows of endpoints gone are removed).
    sb.ok(&["apply", "-f", &format!("{ex}/20-backend.yaml")]);
    let v = eventually(
        || probe_json(&sb, "default/client", &api_ip, "53/udp"),
        answers(first.clone()),
    );
    assert_eq!(
        v["answer"],
        first.as_str(),
        "{first} is an endpoint again: {v}"
    );
    for _ in 0..5 {
        let v = ask();
        assert_eq!(v["answer"], second.as_str(), "{v}");
    }

    // `second`'s pod goes away (the stuck-DNS case): the same socket reaches `first`.
    sb.ok(&["delete", "pod", &format!("backend/{second}")]);
    let v = eventually(ask, answers(first.clone()));
    assert_eq!(
        v["answer"],
        first.as_str(),
        "{v}\n{}",
        agent_log(&sb, "node-2")
    );
    let deleted = agent_counter(&sb, "node-2", "podnet_proxy_conntrack_deleted_total");
    assert!(
        deleted >= deleted_before + 2.0,
        "node-2's agent removed the flow twice: {deleted_before} -> {deleted}"
    );
}
