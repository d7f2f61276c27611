//! The client side of a sandbox check: one TCP or UDP probe from the current network namespace
//! to an address, with a verdict of [`Outcome::Allow`] (with what the server answered) or
//! [`Outcome::Deny`] (with a short reason).
//!
//! [`probe`] is blocking, on plain `std::net` sockets: the caller runs it on a thread that has
//! entered the pod's network namespace with `setns(2)`, and every socket is opened in the
//! namespace of the thread that opens it. [`probe_udp_on`] probes over a UDP socket the caller
//! keeps, so that many probes share one source port (and one conntrack flow).
//!
//! What counts as allowed:
//! - TCP: the connection is established and then either some bytes arrive (the answer is the
//!   HTTP body, or the raw text when the server does not speak HTTP) or the server closes
//!   cleanly without a word (an empty answer: the port is open but silent). A refused, reset,
//!   unreachable or timed out connection is denied, and so is one that is established but
//!   neither answers nor closes within the timeout.
//! - UDP: a datagram comes back from the address. An ICMP port unreachable is denied as
//!   refused, and silence as "no answer".

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::str::FromStr;
use std::time::{Duration, Instant};

/// The datagram a UDP probe sends.
pub const UDP_PAYLOAD: &[u8] = b"probe";

/// How many datagrams a UDP probe sends, spread evenly over its timeout.
pub const UDP_TRIES: u32 = 3;

/// Most of a TCP answer that is read; the probe stops reading there and allows.
const RESPONSE_LIMIT: usize = 1024 * 1024;

/// Most datagrams (or errors) left over on a reused UDP socket that a probe drops.
const DRAIN_LIMIT: usize = 64;

/// Timeouts shorter than this are raised to it (a zero timeout is refused by `connect`).
const MIN_TIMEOUT: Duration = Duration::from_millis(1);

/// The transport of a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    /// TCP, with an HTTP/1.1 `GET /`.
    Tcp,
    /// UDP, with one datagram ([`UDP_PAYLOAD`]) and its answer.
    Udp,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

/// A protocol name that is neither `tcp` nor `udp`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown protocol {0:?} (expected tcp or udp)")]
pub struct ParseProtoError(pub String);

impl FromStr for Proto {
    type Err = ParseProtoError;

    /// `tcp` or `udp`, in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("tcp") {
            Ok(Proto::Tcp)
        } else if s.eq_ignore_ascii_case("udp") {
            Ok(Proto::Udp)
        } else {
            Err(ParseProtoError(s.to_string()))
        }
    }
}

/// The verdict of one probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The address answered.
    Allow {
        /// What it answered: the HTTP body, the raw text of a non-HTTP TCP answer, or the UDP
        /// datagram (invalid UTF-8 replaced). Empty for a TCP server that closed silently.
        answer: String,
        /// From the start of the probe to the end of the answer.
        elapsed: Duration,
        /// The client's address as the server saw it (after any NAT), when the server says
        /// (the sandbox's built-in HTTP server does).
        client: Option<String>,
    },
    /// The address could not be reached or did not answer.
    Deny {
        /// Why, shortly: `connection refused`, `timed out after 1s`, `no route to host`,
        /// `refused (ICMP port unreachable)`, `no answer within 1s`...
        reason: String,
    },
}

impl Outcome {
    /// Whether this is [`Outcome::Allow`].
    pub fn is_allow(&self) -> bool {
        matches!(self, Outcome::Allow { .. })
    }
}

fn deny(reason: impl Into<String>) -> Outcome {
    Outcome::Deny {
        reason: reason.into(),
    }
}

/// Probes `addr` over `proto` from the calling thread's network namespace, blocking for at
/// most about `timeout`.
///
/// TCP connects (within `timeout`), sends `GET / HTTP/1.1` with `Connection: close` and reads
/// the answer until the server closes, the `Content-Length` body is complete, or the time is
/// up (the whole probe shares one deadline). UDP sends [`UDP_PAYLOAD`] up to [`UDP_TRIES`]
/// times within `timeout` and takes the first datagram back.
pub fn probe(addr: SocketAddr, proto: Proto, timeout: Duration) -> Outcome {
    let timeout = timeout.max(MIN_TIMEOUT);
    match proto {
        Proto::Tcp => probe_tcp(addr, timeout),
        Proto::Udp => probe_udp(addr, timeout),
    }
}

fn probe_tcp(addr: SocketAddr, timeout: Duration) -> Outcome {
    let start = Instant::now();
    let deadline = start + timeout;
    let mut stream = match TcpStream::connect_timeout(&addr, timeout) {
        Ok(stream) => stream,
        Err(e) => return deny(io_reason(&e, timeout)),
    };
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: podnet-probe\r\nConnection: close\r\n\r\n"
    );
    // A failed write is not the verdict yet: the server may have answered before closing.
    let write_err = remaining(deadline)
        .and_then(|left| stream.set_write_timeout(Some(left)))
        .and_then(|()| stream.write_all(request.as_bytes()))
        .err();
    let mut buf = Vec::new();
    let read = read_answer(&mut stream, &mut buf, deadline);
    let elapsed = start.elapsed();
    match read {
        Ok(()) => Outcome::Allow {
            answer: answer_text(&buf),
            elapsed,
            client: client_header(&buf),
        },
        // Part of an answer, then a reset or the deadline: the port answered all the same.
        Err(_) if !buf.is_empty() => Outcome::Allow {
            answer: answer_text(&buf),
            elapsed,
            client: client_header(&buf),
        },
        Err(e) if is_timeout(&e) => deny(format!(
            "connected, but no answer within {}",
            fmt_duration(timeout)
        )),
        Err(e) => deny(io_reason(write_err.as_ref().unwrap_or(&e), timeout)),
    }
}

/// The time left until `deadline`, or a timeout error when there is none.
fn remaining(deadline: Instant) -> io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"))
    } else {
        Ok(left)
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

/// Reads into `buf` until the server closes (`Ok`), the answer is complete or too long (`Ok`),
/// or an error or the deadline (`Err`, with what arrived so far left in `buf`).
fn read_answer(stream: &mut TcpStream, buf: &mut Vec<u8>, deadline: Instant) -> io::Result<()> {
    let mut chunk = [0u8; 8192];
    loop {
        stream.set_read_timeout(Some(remaining(deadline)?))?;
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if buf.len() >= RESPONSE_LIMIT || http_complete(buf) {
                    return Ok(());
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The split of an HTTP response into head and body, when `buf` holds a whole head.
fn split_http(buf: &[u8]) -> Option<(&[u8], &[u8])> {
    if !buf.starts_with(b"HTTP/") {
        return None;
    }
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    let end = match (crlf, lf) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b)?,
    };
    Some(buf.split_at(end))
}

/// The `Content-Length` of an HTTP head, if it has a valid one.
fn content_length(head: &[u8]) -> Option<usize> {
    String::from_utf8_lossy(head).lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        if name.trim().eq_ignore_ascii_case("content-length") {
            value.trim().parse().ok()
        } else {
            None
        }
    })
}

/// Whether `buf` holds a whole HTTP response with a `Content-Length` body.
fn http_complete(buf: &[u8]) -> bool {
    split_http(buf)
        .and_then(|(head, body)| Some(body.len() >= content_length(head)?))
        .unwrap_or(false)
}

/// The value of the built-in server's client header, if the answer has one.
fn client_header(buf: &[u8]) -> Option<String> {
    let (head, _) = split_http(buf)?;
    let head = String::from_utf8_lossy(head);
    head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case(crate::serve::CLIENT_HEADER)
            .then(|| value.trim().to_string())
    })
}

/// The answer in `buf`: the body of an HTTP response (cut at its `Content-Length`), or the
/// whole text when it is not HTTP.
fn answer_text(buf: &[u8]) -> String {
    let text = match split_http(buf) {
        Some((head, body)) => match content_length(head) {
            Some(len) => &body[..len.min(body.len())],
            None => body,
        },
        None => buf,
    };
    String::from_utf8_lossy(text).into_owned()
}

fn probe_udp(addr: SocketAddr, timeout: Duration) -> Outcome {
    let start = Instant::now();
    let local = match addr {
        SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
    };
    let socket = match UdpSocket::bind(local) {
        Ok(socket) => socket,
        Err(e) => return deny(format!("cannot open a UDP socket: {e}")),
    };
    // Connected, so that an ICMP port unreachable comes back as ECONNREFUSED and only
    // datagrams from `addr` are taken.
    if let Err(e) = socket.connect(addr) {
        return deny(udp_reason(&e, timeout));
    }
    probe_udp_from(&socket, start, timeout)
}

/// One UDP probe over `socket`, which the caller has connected to the address: as [`probe`]
/// over UDP, but from the same source port every time, the way a resolver keeps its socket
/// (every probe rides the same conntrack flow). The socket lives in the namespace of the
/// thread that opened it, so later probes may come from any thread.
///
/// What an earlier probe left on the socket (a late answer, a pending ICMP error) is dropped
/// first, so the verdict is about this probe.
pub fn probe_udp_on(socket: &UdpSocket, timeout: Duration) -> Outcome {
    let start = Instant::now();
    let timeout = timeout.max(MIN_TIMEOUT);
    if let Err(e) = drain(socket) {
        return deny(udp_reason(&e, timeout));
    }
    probe_udp_from(socket, start, timeout)
}

/// Reads and drops whatever is waiting on `socket` (datagrams and errors), at most
/// [`DRAIN_LIMIT`] of them.
fn drain(socket: &UdpSocket) -> io::Result<()> {
    socket.set_nonblocking(true)?;
    let mut buf = [0u8; 512];
    for _ in 0..DRAIN_LIMIT {
        match socket.recv(&mut buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            _ => {}
        }
    }
    socket.set_nonblocking(false)
}

/// Sends [`UDP_PAYLOAD`] over the connected `socket` up to [`UDP_TRIES`] times between
/// `start` and `start + timeout` and takes the first datagram back.
fn probe_udp_from(socket: &UdpSocket, start: Instant, timeout: Duration) -> Outcome {
    let deadline = start + timeout;
    let mut buf = vec![0u8; 64 * 1024];
    let slice = timeout / UDP_TRIES;
    for attempt in 1..=UDP_TRIES {
        let attempt_end = if attempt == UDP_TRIES {
            deadline
        } else {
            start + slice * attempt
        };
        if let Err(e) = socket.send(UDP_PAYLOAD) {
            return deny(udp_reason(&e, timeout));
        }
        // Any answer counts, also a late one to an earlier datagram.
        loop {
            let left = attempt_end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            if let Err(e) = socket.set_read_timeout(Some(left)) {
                return deny(udp_reason(&e, timeout));
            }
            match socket.recv(&mut buf) {
                Ok(n) => {
                    return Outcome::Allow {
                        answer: String::from_utf8_lossy(&buf[..n]).into_owned(),
                        elapsed: start.elapsed(),
                        client: None,
                    }
                }
                Err(e) if is_timeout(&e) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return deny(udp_reason(&e, timeout)),
            }
        }
    }
    deny(format!("no answer within {}", fmt_duration(timeout)))
}

/// The reason for a UDP error: ECONNREFUSED is the ICMP port unreachable of an earlier datagram.
fn udp_reason(e: &io::Error, timeout: Duration) -> String {
    if e.kind() == io::ErrorKind::ConnectionRefused {
        "refused (ICMP port unreachable)".to_string()
    } else {
        io_reason(e, timeout)
    }
}

/// A short reason for a socket error.
fn io_reason(e: &io::Error, timeout: Duration) -> String {
    use io::ErrorKind as K;
    match e.kind() {
        K::ConnectionRefused => "connection refused".to_string(),
        K::TimedOut | K::WouldBlock => format!("timed out after {}", fmt_duration(timeout)),
        K::HostUnreachable => "no route to host".to_string(),
        K::NetworkUnreachable => "network unreachable".to_string(),
        K::NetworkDown => "network is down".to_string(),
        K::ConnectionReset => "connection reset".to_string(),
        K::ConnectionAborted => "connection aborted".to_string(),
        K::BrokenPipe => "connection closed while sending".to_string(),
        K::AddrNotAvailable => "address not available".to_string(),
        _ => e.to_string(),
    }
}

/// `1s`, `2s`, or `300ms`, `1500ms` when not whole seconds.
fn fmt_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::{bind, ServeSpec};
    use std::net::TcpListener;

    const TIMEOUT: Duration = Duration::from_secs(2);

    fn loopback4(port: u16) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, port))
    }

    /// Serves `name` on one ephemeral TCP and one ephemeral UDP port while `check` runs on a
    /// blocking thread with the two ports.
    fn with_server(name: &str, check: impl FnOnce(u16, u16) + Send + 'static) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let spec = ServeSpec {
            name: name.to_string(),
            tcp: vec![0],
            udp: vec![0],
        };
        rt.block_on(async {
            let server = bind(spec).await.expect("bind");
            let (tcp, udp) = server.local_ports();
            let serving = tokio::spawn(server.run());
            let checked = tokio::task::spawn_blocking(move || check(tcp[0], udp[0])).await;
            serving.abort();
            checked.expect("check");
        });
    }

    fn answer(outcome: Outcome) -> String {
        match outcome {
            Outcome::Allow {
                answer, elapsed, ..
            } => {
                assert!(elapsed < TIMEOUT, "{elapsed:?}");
                answer
            }
            Outcome::Deny { reason } => panic!("denied: {reason}"),
        }
    }

    fn reason(outcome: Outcome) -> String {
        match outcome {
            Outcome::Deny { reason } => reason,
            allow => panic!("expected a deny, got {allow:?}"),
        }
    }

    #[test]
    fn tcp_and_udp_against_the_sandbox_server() {
        with_server("web-0", |tcp, udp| {
            assert_eq!(answer(probe(loopback4(tcp), Proto::Tcp, TIMEOUT)), "web-0");
            assert_eq!(answer(probe(loopback4(udp), Proto::Udp, TIMEOUT)), "web-0");
            if UdpSocket::bind((Ipv6Addr::LOCALHOST, 0)).is_ok() {
                let v6 = |port| SocketAddr::from((Ipv6Addr::LOCALHOST, port));
                assert_eq!(answer(probe(v6(tcp), Proto::Tcp, TIMEOUT)), "web-0");
                assert_eq!(answer(probe(v6(udp), Proto::Udp, TIMEOUT)), "web-0");
            }
        });
    }

    /// A loopback port that was free a moment ago.
    fn closed_port() -> u16 {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        listener.local_addr().expect("local addr").port()
    }

    #[test]
    fn closed_tcp_port_is_refused_quickly() {
        let start = Instant::now();
        let outcome = probe(loopback4(closed_port()), Proto::Tcp, TIMEOUT);
        assert_eq!(reason(outcome), "connection refused");
        assert!(start.elapsed() < Duration::from_millis(500));
    }

    #[test]
    fn closed_udp_port_is_refused() {
        let port = {
            let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
            socket.local_addr().expect("local addr").port()
        };
        let start = Instant::now();
        let outcome = probe(loopback4(port), Proto::Udp, TIMEOUT);
        assert_eq!(reason(outcome), "refused (ICMP port unreachable)");
        assert!(start.elapsed() < Duration::from_millis(500));
    }

    #[test]
    fn silent_udp_port_is_no_answer_within_the_timeout() {
        let silent = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let addr = silent.local_addr().expect("local addr");
        let start = Instant::now();
        let outcome = probe(addr, Proto::Udp, Duration::from_millis(300));
        let took = start.elapsed();
        assert_eq!(reason(outcome), "no answer within 300ms");
        assert!(
            took >= Duration::from_millis(290) && took < Duration::from_secs(1),
            "{took:?}"
        );
        // It did send its datagrams: one per try.
        silent.set_nonblocking(true).expect("nonblocking");
        let mut buf = [0u8; 64];
        let mut got = 0;
        while let Ok(n) = silent.recv(&mut buf) {
            assert_eq!(&buf[..n], UDP_PAYLOAD);
            got += 1;
        }
        assert_eq!(got, UDP_TRIES);
    }

    #[test]
    fn probes_over_one_socket_share_its_source_port() {
        let silent = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let client = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        client
            .connect(silent.local_addr().expect("local addr"))
            .expect("connect");
        for _ in 0..2 {
            let outcome = probe_udp_on(&client, Duration::from_millis(60));
            assert_eq!(reason(outcome), "no answer within 60ms");
        }
        silent.set_nonblocking(true).expect("nonblocking");
        let mut buf = [0u8; 64];
        let mut got = 0;
        while let Ok((_, from)) = silent.recv_from(&mut buf) {
            assert_eq!(from, client.local_addr().expect("local addr"));
            got += 1;
        }
        assert_eq!(got, 2 * UDP_TRIES);
    }

    #[test]
    fn a_late_answer_left_on_the_socket_is_not_taken() {
        let server = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let client = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        client
            .connect(server.local_addr().expect("local addr"))
            .expect("connect");
        server
            .send_to(b"late", client.local_addr().expect("local addr"))
            .expect("send");
        let answering = std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            let (_, from) = server.recv_from(&mut buf).expect("recv");
            server.send_to(b"fresh", from).expect("answer");
        });
        assert_eq!(answer(probe_udp_on(&client, TIMEOUT)), "fresh");
        answering.join().expect("server");
    }

    #[test]
    fn connected_but_silent_tcp_is_denied_after_the_timeout() {
        // Listening, never accepting: the kernel completes the handshake, nobody answers.
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let start = Instant::now();
        let outcome = probe(addr, Proto::Tcp, Duration::from_millis(300));
        let took = start.elapsed();
        assert_eq!(reason(outcome), "connected, but no answer within 300ms");
        assert!(
            took >= Duration::from_millis(290) && took < Duration::from_secs(1),
            "{took:?}"
        );
    }

    /// A one-connection TCP server that reads the request head, then writes `answer` and closes.
    fn one_shot(answer: &'static [u8]) -> (SocketAddr, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            stream.set_read_timeout(Some(TIMEOUT)).expect("timeout");
            let mut request = Vec::new();
            let mut byte = [0u8; 1];
            while !request.ends_with(b"\r\n\r\n") {
                let n = stream.read(&mut byte).expect("read request");
                assert_eq!(n, 1, "request cut short");
                request.push(byte[0]);
            }
            stream.write_all(answer).expect("write answer");
            String::from_utf8(request).expect("utf-8 request")
        });
        (addr, server)
    }

    #[test]
    fn request_is_a_plain_get() {
        let (addr, server) = one_shot(b"");
        let _ = probe(addr, Proto::Tcp, TIMEOUT);
        let request = server.join().expect("server");
        assert_eq!(
            request,
            format!(
                "GET / HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: podnet-probe\r\n\
                 Connection: close\r\n\r\n"
            )
        );
    }

    #[test]
    fn silent_close_is_allowed_with_an_empty_answer() {
        let (addr, server) = one_shot(b"");
        assert_eq!(answer(probe(addr, Proto::Tcp, TIMEOUT)), "");
        server.join().expect("server");
    }

    #[test]
    fn non_http_answer_is_taken_raw() {
        let (addr, server) = one_shot(b"SSH-2.0-banner\r\n");
        assert_eq!(
            answer(probe(addr, Proto::Tcp, TIMEOUT)),
            "SSH-2.0-banner\r\n"
        );
        server.join().expect("server");
    }

    #[test]
    fn content_length_ends_the_answer_without_waiting_for_close() {
        // Answers, then keeps the connection open past the probe's timeout.
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
                .expect("write");
            std::thread::sleep(Duration::from_millis(700));
        });
        let start = Instant::now();
        let outcome = probe(addr, Proto::Tcp, Duration::from_millis(500));
        assert!(start.elapsed() < Duration::from_millis(400));
        assert_eq!(answer(outcome), "hello");
        server.join().expect("server");
    }

    #[test]
    fn http_parsing() {
        assert_eq!(
            answer_text(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcdef"),
            "abc"
        );
        assert_eq!(
            answer_text(b"HTTP/1.0 200 OK\r\n\r\nall of it"),
            "all of it"
        );
        assert_eq!(answer_text(b"HTTP/1.1 200 OK\n\nlf"), "lf");
        assert_eq!(
            answer_text(b"HTTP/1.1 200 OK\r\nX: y"),
            "HTTP/1.1 200 OK\r\nX: y"
        );
        assert_eq!(answer_text(b"plain"), "plain");
        assert!(http_complete(
            b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n"
        ));
        assert!(!http_complete(
            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc"
        ));
        assert!(!http_complete(b"HTTP/1.1 200 OK\r\n\r\nabc"));
    }

    #[test]
    fn proto_round_trips_through_text() {
        for proto in [Proto::Tcp, Proto::Udp] {
            assert_eq!(proto.to_string().parse::<Proto>(), Ok(proto));
        }
        assert_eq!("UDP".parse::<Proto>(), Ok(Proto::Udp));
        assert!("sctp".parse::<Proto>().is_err());
    }

    #[test]
    fn durations_read_shortly() {
        assert_eq!(fmt_duration(Duration::from_secs(1)), "1s");
        assert_eq!(fmt_duration(Duration::from_millis(300)), "300ms");
        assert_eq!(fmt_duration(Duration::from_millis(1500)), "1500ms");
    }
}
