//! The built-in server of a sandbox pod, in the spirit of agnhost's `serve-hostname`: every
//! TCP port answers a minimal HTTP/1.1 response whose body is exactly the pod's name, every UDP
//! port answers any datagram with the name.
//!
//! It runs as a process inside the pod's network namespace. Binding and serving are two steps,
//! so that a caller knows every port is bound (or why one is not) before it reports the pod
//! ready:
//!
//! ```no_run
//! # async fn demo() -> Result<(), podnet_sandbox::serve::ServeError> {
//! use podnet_sandbox::serve::{bind, ServeSpec};
//! let spec = ServeSpec { name: "web-0".into(), tcp: vec![8080], udp: vec![5353] };
//! let server = bind(spec).await?; // every port is bound here
//! server.run().await; // serves until this future is dropped
//! # Ok(())
//! # }
//! ```
//!
//! Every port is bound on all addresses: `[::]` first, which on Linux is dual-stack unless
//! `net.ipv6.bindv6only` says otherwise; when that socket turns out to be IPv6-only, `0.0.0.0`
//! is bound on the same port beside it. When `[::]` cannot be bound at all (an IPv4-only
//! namespace may have IPv6 disabled), `0.0.0.0` alone is used.
//!
//! The TCP side reads the request head (up to the blank line, at most [`HEAD_LIMIT`] bytes,
//! within [`HEAD_TIMEOUT`]) and answers once it has the whole head, the end of the client's
//! input, or the size limit, so even a client that is not speaking HTTP (one that writes a line
//! and shuts its write half) gets the name back. Each connection is served by its own task and
//! closed after one answer (`Connection: close`).

use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinSet;
use tracing::{debug, error, info, warn};

/// Largest request head read from a TCP client; the answer is sent once this much has arrived.
pub const HEAD_LIMIT: usize = 16 * 1024;

/// How long a TCP client has to send its request head (or close its write half).
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// How long, after answering, the server keeps reading (and discarding) what the client still
/// sends, so that unread input does not turn the close into a reset that could destroy the
/// answer before the client reads it.
const LINGER: Duration = Duration::from_secs(2);

/// At most this much is discarded while lingering.
const LINGER_LIMIT: usize = 1024 * 1024;

/// Pause after a failed `accept` or `recv_from`, so that a persistent error (e.g. out of file
/// descriptors) does not spin.
const ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// Largest UDP datagram.
const DATAGRAM_LIMIT: usize = 64 * 1024;

/// What to serve.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServeSpec {
    /// The name every port answers with (the pod's name).
    pub name: String,
    /// TCP ports to serve HTTP on; `0` picks a free port (see [`Server::local_ports`]).
    pub tcp: Vec<u16>,
    /// UDP ports to echo the name on; `0` picks a free port (see [`Server::local_ports`]).
    pub udp: Vec<u16>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// A port could not be bound (in use, not permitted, no usable address family...).
    #[error("cannot bind {proto} port {port}: {source}")]
    Bind {
        /// `"tcp"` or `"udp"`.
        proto: &'static str,
        /// The port asked for (`0` for any).
        port: u16,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// Every port of a [`ServeSpec`], bound and not yet served. Made by [`bind`]; [`Server::run`]
/// serves it.
#[derive(Debug)]
pub struct Server {
    name: Arc<str>,
    tcp: Vec<Bound<TcpListener>>,
    udp: Vec<Bound<UdpSocket>>,
}

/// One port of the spec: the port actually bound and its sockets (one dual-stack socket, or
/// one per address family).
#[derive(Debug)]
struct Bound<S> {
    port: u16,
    sockets: Vec<S>,
}

/// Binds every TCP and UDP port of `spec` on all addresses. Nothing is served until
/// [`Server::run`] is polled, but connections to the TCP ports are already queued by the
/// kernel, so a caller may report readiness as soon as this returns.
///
/// Must be called from within a Tokio runtime. Fails on the first port that cannot be bound,
/// naming it; ports bound before it are closed again.
pub async fn bind(spec: ServeSpec) -> Result<Server, ServeError> {
    let mut tcp = Vec::with_capacity(spec.tcp.len());
    for &port in &spec.tcp {
        let bound =
            bind_all(port, bind_tcp, |l: &TcpListener| l.local_addr()).map_err(|source| {
                ServeError::Bind {
                    proto: "tcp",
                    port,
                    source,
                }
            })?;
        info!(
            port = bound.port,
            sockets = bound.sockets.len(),
            "bound tcp port"
        );
        tcp.push(bound);
    }
    let mut udp = Vec::with_capacity(spec.udp.len());
    for &port in &spec.udp {
        let bound = bind_all(port, bind_udp, |s: &UdpSocket| s.local_addr()).map_err(|source| {
            ServeError::Bind {
                proto: "udp",
                port,
                source,
            }
        })?;
        info!(
            port = bound.port,
            sockets = bound.sockets.len(),
            "bound udp port"
        );
        udp.push(bound);
    }
    Ok(Server {
        name: Arc::from(spec.name),
        tcp,
        udp,
    })
}

impl Server {
    /// The name every port answers with.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The ports actually bound, `(tcp, udp)`, in the order of the spec; a `0` in the spec is
    /// replaced by the port the kernel picked.
    pub fn local_ports(&self) -> (Vec<u16>, Vec<u16>) {
        (
            self.tcp.iter().map(|b| b.port).collect(),
            self.udp.iter().map(|b| b.port).collect(),
        )
    }

    /// Serves every port until this future is dropped; it never completes by itself. Dropping
    /// it stops accepting, aborts open connections and closes every socket (the closing
    /// happens on the runtime's next turn, not inside `drop`).
    pub async fn run(self) {
        let mut tasks = JoinSet::new();
        for bound in self.tcp {
            for listener in bound.sockets {
                tasks.spawn(serve_tcp(listener, bound.port, Arc::clone(&self.name)));
            }
        }
        for bound in self.udp {
            for socket in bound.sockets {
                tasks.spawn(serve_udp(socket, bound.port, Arc::clone(&self.name)));
            }
        }
        // The loops never end; a task only comes back here if it panicked.
        while let Some(res) = tasks.join_next().await {
            if let Err(e) = res {
                error!(error = %e, "a serving task ended");
            }
        }
        std::future::pending::<()>().await;
    }
}

/// Binds `port` on all addresses with `bind`: `[::]`, plus `0.0.0.0` on the same port when the
/// `[::]` socket is IPv6-only; or `0.0.0.0` alone when `[::]` cannot be bound for any reason but
/// the port being in use.
///
/// Whether the `[::]` socket is IPv6-only is found out by binding `0.0.0.0` on its port: that
/// fails with "address in use" exactly when `[::]` already covers IPv4 (std exposes no
/// `IPV6_V6ONLY` switch before binding, and this crate has no unsafe code to set one).
fn bind_all<S>(
    port: u16,
    bind: impl Fn(SocketAddr) -> io::Result<S>,
    local_addr: impl Fn(&S) -> io::Result<SocketAddr>,
) -> io::Result<Bound<S>> {
    let v6 = SocketAddr::from((Ipv6Addr::UNSPECIFIED, port));
    match bind(v6) {
        Ok(s6) => {
            let port = local_addr(&s6)?.port();
            let mut sockets = vec![s6];
            match bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))) {
                Ok(s4) => {
                    debug!(port, "[::] is IPv6-only, serving 0.0.0.0 beside it");
                    sockets.push(s4);
                }
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                    debug!(port, "[::] is dual-stack");
                }
                Err(e) => debug!(port, error = %e, "no IPv4 beside [::]"),
            }
            Ok(Bound { port, sockets })
        }
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => Err(e),
        Err(e) => {
            debug!(port, error = %e, "cannot bind [::], falling back to 0.0.0.0");
            let s4 = bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)))?;
            let port = local_addr(&s4)?.port();
            Ok(Bound {
                port,
                sockets: vec![s4],
            })
        }
    }
}

/// A listening TCP socket on `addr`, registered with the current runtime.
fn bind_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    TcpListener::from_std(listener)
}

/// A UDP socket on `addr`, registered with the current runtime.
fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = std::net::UdpSocket::bind(addr)?;
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket)
}

/// Accepts connections on one listener forever, each served by its own task. The tasks belong
/// to this loop: dropping it aborts them.
async fn serve_tcp(listener: TcpListener, port: u16, name: Arc<str>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    conns.spawn(answer_tcp(stream, peer, Arc::clone(&name)));
                }
                Err(e) => {
                    warn!(port, error = %e, "accept failed");
                    tokio::time::sleep(ERROR_BACKOFF).await;
                }
            },
            Some(res) = conns.join_next(), if !conns.is_empty() => {
                if let Err(e) = res {
                    error!(port, error = %e, "a connection task ended");
                }
            }
        }
    }
}

/// Serves one TCP connection: reads the request head, answers with the name, closes.
async fn answer_tcp(mut stream: TcpStream, peer: SocketAddr, name: Arc<str>) {
    let head = match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut stream)).await {
        Ok(Ok(head)) => head,
        Ok(Err(e)) => {
            debug!(%peer, error = %e, "reading the request failed");
            return;
        }
        Err(_) => {
            debug!(%peer, "no request within {HEAD_TIMEOUT:?}, closing");
            return;
        }
    };
    let response = http_response(&name, head.starts_with(b"HEAD "), peer);
    match timed(HEAD_TIMEOUT, async {
        stream.write_all(&response).await?;
        stream.shutdown().await
    })
    .await
    {
        Ok(()) => debug!(%peer, "answered"),
        Err(e) => {
            debug!(%peer, error = %e, "answering failed");
            return;
        }
    }
    linger(&mut stream).await;
}

/// Runs `fut` with a timeout, a timeout becoming an `io::ErrorKind::TimedOut` error.
async fn timed<T>(limit: Duration, fut: impl Future<Output = io::Result<T>>) -> io::Result<T> {
    match tokio::time::timeout(limit, fut).await {
        Ok(res) => res,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "timed out")),
    }
}

/// Reads until the end of the request head (a blank line, CRLF or bare LF), the end of the
/// client's input, or [`HEAD_LIMIT`] bytes, and returns what was read.
async fn read_head(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let want = chunk.len().min(HEAD_LIMIT - buf.len());
        let n = stream.read(&mut chunk[..want]).await?;
        if n == 0 {
            return Ok(buf);
        }
        let searched = buf.len().saturating_sub(3);
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() >= HEAD_LIMIT || head_end(&buf[searched..]).is_some() {
            return Ok(buf);
        }
    }
}

/// The index just past the blank line ending an HTTP head (`\r\n\r\n`, or leniently `\n\n`).
fn head_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The header telling the client how the server saw it (its address after any NAT).
pub const CLIENT_HEADER: &str = "X-Podnet-Client";

/// The whole answer to a request: the name as a `text/plain` body (left out, but counted, for
/// a `HEAD` request), and the client's address as the server saw it in [`CLIENT_HEADER`].
fn http_response(name: &str, head_only: bool, peer: SocketAddr) -> Vec<u8> {
    let mut response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         {CLIENT_HEADER}: {}\r\nConnection: close\r\n\r\n",
        name.len(),
        peer.ip().to_canonical()
    )
    .into_bytes();
    if !head_only {
        response.extend_from_slice(name.as_bytes());
    }
    response
}

/// After answering, reads and discards the client's remaining input for a while (see
/// [`LINGER`]).
async fn linger(stream: &mut TcpStream) {
    let drain = async {
        let mut chunk = [0u8; 4096];
        let mut total = 0usize;
        while total < LINGER_LIMIT {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    // Running out of time only means the client keeps its side open; close anyway.
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// Answers every datagram on one UDP socket with the name, forever.
async fn serve_udp(socket: UdpSocket, port: u16, name: Arc<str>) {
    let mut buf = vec![0u8; DATAGRAM_LIMIT];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((_, peer)) => {
                if let Err(e) = socket.send_to(name.as_bytes(), peer).await {
                    debug!(port, %peer, error = %e, "udp answer failed");
                }
            }
            Err(e) => {
                debug!(port, error = %e, "udp receive failed");
                tokio::time::sleep(ERROR_BACKOFF).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn spec(name: &str, tcp: Vec<u16>, udp: Vec<u16>) -> ServeSpec {
        ServeSpec {
            name: name.to_string(),
            tcp,
            udp,
        }
    }

    /// Binds `spec` and serves it in a task; the task is aborted when the handle is dropped.
    async fn start(spec: ServeSpec) -> (Vec<u16>, Vec<u16>, AbortOnDrop) {
        let server = bind(spec).await.expect("bind");
        let (tcp, udp) = server.local_ports();
        (tcp, udp, AbortOnDrop(tokio::spawn(server.run())))
    }

    struct AbortOnDrop(tokio::task::JoinHandle<()>);

    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.abort();
        }
    }

    fn loopback4(port: u16) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, port))
    }

    /// `[::1]`, when this machine has IPv6 on loopback.
    fn loopback6(port: u16) -> Option<SocketAddr> {
        std::net::UdpSocket::bind((Ipv6Addr::LOCALHOST, 0)).ok()?;
        Some(SocketAddr::from((Ipv6Addr::LOCALHOST, port)))
    }

    /// Sends `request` (then shuts the write half if `half_close`) and reads the whole answer.
    async fn exchange(addr: SocketAddr, request: &[u8], half_close: bool) -> String {
        let run = async {
            let mut stream = TcpStream::connect(addr).await?;
            stream.write_all(request).await?;
            if half_close {
                stream.shutdown().await?;
            }
            let mut answer = Vec::new();
            stream.read_to_end(&mut answer).await?;
            io::Result::Ok(answer)
        };
        let answer = tokio::time::timeout(Duration::from_secs(5), run)
            .await
            .expect("answer in time")
            .expect("exchange");
        String::from_utf8(answer).expect("utf-8 answer")
    }

    fn expected(name: &str) -> String {
        expected_from(name, "127.0.0.1")
    }

    fn expected_from(name: &str, client: &str) -> String {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
             X-Podnet-Client: {client}\r\nConnection: close\r\n\r\n{name}",
            name.len()
        )
    }

    #[tokio::test]
    async fn http_get_answers_the_name() {
        let (tcp, _, _server) = start(spec("web-0", vec![0], vec![])).await;
        let req = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        assert_eq!(
            exchange(loopback4(tcp[0]), req, false).await,
            expected("web-0")
        );
    }

    #[tokio::test]
    async fn serves_ipv4_and_ipv6_on_one_port() {
        let (tcp, udp, _server) = start(spec("dual", vec![0], vec![0])).await;
        let req = b"GET / HTTP/1.1\r\n\r\n";
        assert_eq!(
            exchange(loopback4(tcp[0]), req, false).await,
            expected("dual")
        );
        let Some(v6) = loopback6(tcp[0]) else {
            eprintln!("no IPv6 on loopback, skipping the IPv6 half");
            return;
        };
        assert_eq!(exchange(v6, req, false).await, expected_from("dual", "::1"));
        let v6 = SocketAddr::new(v6.ip(), udp[0]);
        assert_eq!(udp_exchange(v6, b"x").await, "dual");
    }

    #[tokio::test]
    async fn head_request_gets_no_body() {
        let (tcp, _, _server) = start(spec("web-0", vec![0], vec![])).await;
        let answer = exchange(loopback4(tcp[0]), b"HEAD / HTTP/1.1\r\n\r\n", false).await;
        assert_eq!(answer, expected("web-0").trim_end_matches("web-0"));
    }

    #[tokio::test]
    async fn non_http_clients_get_the_name_too() {
        let (tcp, _, _server) = start(spec("pod-a", vec![0], vec![])).await;
        let addr = loopback4(tcp[0]);
        // A line, then the write half shut: answered at end of input.
        assert_eq!(exchange(addr, b"hello\n", true).await, expected("pod-a"));
        // Nothing at all, then the write half shut.
        assert_eq!(exchange(addr, b"", true).await, expected("pod-a"));
        // Bare-LF head, connection left open.
        assert_eq!(exchange(addr, b"GET /\n\n", false).await, expected("pod-a"));
    }

    #[tokio::test]
    async fn oversized_head_is_answered_and_the_rest_drained() {
        let (tcp, _, _server) = start(spec("big", vec![0], vec![])).await;
        // More than HEAD_LIMIT with no blank line, plus a body the server never parses.
        let mut req = b"POST / HTTP/1.1\r\nX: ".to_vec();
        req.resize(HEAD_LIMIT + 50_000, b'a');
        assert_eq!(
            exchange(loopback4(tcp[0]), &req, true).await,
            expected("big")
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fifty_concurrent_connections() {
        let (tcp, _, _server) = start(spec("busy", vec![0, 0], vec![])).await;
        let mut clients = JoinSet::new();
        for i in 0..50 {
            let addr = loopback4(tcp[i % 2]);
            clients.spawn(async move {
                // Connect all first, then talk: every connection is open at once.
                let mut stream = TcpStream::connect(addr).await?;
                tokio::time::sleep(Duration::from_millis(50)).await;
                stream.write_all(b"GET / HTTP/1.1\r\n\r\n").await?;
                let mut answer = String::new();
                stream.read_to_string(&mut answer).await?;
                io::Result::Ok(answer)
            });
        }
        let mut answered = 0;
        while let Some(res) = tokio::time::timeout(Duration::from_secs(10), clients.join_next())
            .await
            .expect("clients in time")
        {
            assert_eq!(res.expect("client task").expect("client"), expected("busy"));
            answered += 1;
        }
        assert_eq!(answered, 50);
    }

    async fn udp_exchange(addr: SocketAddr, payload: &[u8]) -> String {
        let local: SocketAddr = match addr.ip() {
            IpAddr::V4(_) => (Ipv4Addr::LOCALHOST, 0).into(),
            IpAddr::V6(_) => (Ipv6Addr::LOCALHOST, 0).into(),
        };
        let client = UdpSocket::bind(local).await.expect("client socket");
        client.send_to(payload, addr).await.expect("send");
        let mut buf = [0u8; 1024];
        let (n, from) = tokio::time::timeout(Duration::from_secs(5), client.recv_from(&mut buf))
            .await
            .expect("answer in time")
            .expect("recv");
        assert_eq!(from.port(), addr.port());
        String::from_utf8(buf[..n].to_vec()).expect("utf-8 answer")
    }

    #[tokio::test]
    async fn udp_answers_every_datagram_with_the_name() {
        let (_, udp, _server) = start(spec("dns-1", vec![], vec![0, 0])).await;
        assert_eq!(udp.len(), 2);
        for port in udp {
            assert_eq!(udp_exchange(loopback4(port), b"probe").await, "dns-1");
            assert_eq!(udp_exchange(loopback4(port), b"").await, "dns-1");
        }
    }

    #[tokio::test]
    async fn occupied_tcp_port_is_a_clear_error() {
        let first = bind(spec("a", vec![0], vec![])).await.expect("first bind");
        let port = first.local_ports().0[0];
        let err = bind(spec("b", vec![port], vec![]))
            .await
            .expect_err("port is taken");
        let ServeError::Bind {
            proto,
            port: p,
            source,
        } = &err;
        assert_eq!((*proto, *p), ("tcp", port));
        assert_eq!(source.kind(), io::ErrorKind::AddrInUse);
        let msg = err.to_string();
        assert!(msg.contains(&format!("tcp port {port}")), "{msg}");
    }

    #[tokio::test]
    async fn occupied_udp_port_is_a_clear_error() {
        let first = bind(spec("a", vec![], vec![0])).await.expect("first bind");
        let port = first.local_ports().1[0];
        // A free TCP port before it: that one is bound, then released again.
        let err = bind(spec("b", vec![0], vec![port]))
            .await
            .expect_err("port is taken");
        let msg = err.to_string();
        assert!(msg.contains(&format!("udp port {port}")), "{msg}");
    }

    #[tokio::test]
    async fn dropping_run_closes_the_ports() {
        let (tcp, _, server) = start(spec("gone", vec![0], vec![])).await;
        let addr = loopback4(tcp[0]);
        assert_eq!(
            exchange(addr, b"GET / HTTP/1.1\r\n\r\n", false).await,
            expected("gone")
        );
        drop(server);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            match TcpStream::connect(addr).await {
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => break,
                _ if tokio::time::Instant::now() > deadline => panic!("port still open"),
                _ => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
        // The port can be bound again.
        bind(spec("again", vec![tcp[0]], vec![]))
            .await
            .expect("rebind");
    }

    /// `bind_all` over plain std sockets, with `[::]` failing with `kind`.
    fn bind_all_without_v6(kind: io::ErrorKind) -> io::Result<Bound<std::net::TcpListener>> {
        bind_all(
            0,
            |addr| match addr {
                SocketAddr::V6(_) => Err(io::Error::new(kind, "no IPv6 here")),
                SocketAddr::V4(_) => std::net::TcpListener::bind(addr),
            },
            |l: &std::net::TcpListener| l.local_addr(),
        )
    }

    #[test]
    fn falls_back_to_ipv4_when_ipv6_is_unavailable() {
        let bound = bind_all_without_v6(io::ErrorKind::Unsupported).expect("IPv4 fallback");
        assert_eq!(bound.sockets.len(), 1);
        let addr = bound.sockets[0].local_addr().expect("local addr");
        assert_eq!(addr.ip(), Ipv4Addr::UNSPECIFIED);
        assert_eq!(addr.port(), bound.port);
        assert_ne!(bound.port, 0);
    }

    #[test]
    fn port_in_use_on_ipv6_is_not_masked_by_the_fallback() {
        let err = bind_all_without_v6(io::ErrorKind::AddrInUse).expect_err("in use");
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    }

    #[test]
    fn head_end_finds_crlf_and_lf() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nbody"), Some(18));
        assert_eq!(head_end(b"GET /\n\nbody"), Some(7));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
    }
}
