//! The HTTP server every service runs on (`stampede_common::http::serve`),
//! over raw TCP so nothing is hidden by a client library:
//!
//! - a graceful stop drains without cutting anyone: a slow request in
//!   flight completes; a request sent over an idle kept-alive connection
//!   just after the stop began is answered (with `Connection: close`), not
//!   reset; `/readyz` says 503 while draining; then the port is closed;
//! - slow clients are bounded: headers trickling in are cut after the
//!   header read timeout, a body trickling in gets 408 after the body read
//!   timeout, an oversized body 413 — each with the server still serving
//!   others meanwhile.
//!
//! The server runs with its time limits shortened ([`TIMEOUTS`]), and the
//! tests wait on what they can observe (a request reaching its handler,
//! `/readyz` turning 503), never on guessed wall times.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use stampede_common::http::{self, Handler, Routed, Timeouts};
use tokio::sync::Semaphore;

/// The limits under test, short so that each slow-client test takes about a
/// second. The settle window is generous: the drain test sends its requests
/// inside it, and a loaded machine must not push them out.
const TIMEOUTS: Timeouts = Timeouts {
    header_read: Duration::from_secs(1),
    body_read: Duration::from_secs(1),
    drain_settle: Duration::from_secs(1),
    drain: Duration::from_secs(15),
};

/// How long a test waits for something that should happen at once.
const PATIENCE: Duration = Duration::from_secs(10);

/// `/slow` holds its request until the test releases it.
struct Gate {
    entered: AtomicBool,
    release: Semaphore,
}

struct Echo {
    slow: Arc<Gate>,
}

impl Handler for Echo {
    fn name(&self) -> &'static str {
        "echo"
    }

    async fn handle(&self, req: Request<Incoming>) -> Routed {
        match req.uri().path() {
            "/slow" => {
                self.slow.entered.store(true, Ordering::SeqCst);
                let _permit = self.slow.release.acquire().await;
                ("/slow", Ok(http::empty(StatusCode::NO_CONTENT)))
            }
            "/body" => match http::read_body(req.into_body(), 1024).await {
                Ok(b) => ("/body", Ok(http::raw(StatusCode::OK, "text/plain", b))),
                Err(p) => ("/body", Err(p)),
            },
            _ => ("/fast", Ok(http::empty(StatusCode::NO_CONTENT))),
        }
    }

    async fn ready(&self) -> Result<(), String> {
        Ok(())
    }
}

struct Server {
    addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
    slow: Arc<Gate>,
}

async fn start() -> Server {
    let listener = http::bind(([127, 0, 0, 1], 0).into()).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let echo = Echo { slow: Arc::new(Gate { entered: AtomicBool::new(false), release: Semaphore::new(0) }) };
    let slow = echo.slow.clone();
    let task = tokio::spawn(http::serve_with(listener, Arc::new(echo), TIMEOUTS, async {
        let _ = rx.await;
    }));
    Server { addr, stop, task, slow }
}

/// Polls `done` every 10 ms until it holds; panics with `what` after [`PATIENCE`].
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "gave up waiting: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Reads one response (status line, headers, `content-length` body) from a
/// blocking stream.
fn read_response(s: &mut TcpStream) -> std::io::Result<(u16, String)> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte)? {
            0 => {
                return Err(std::io::Error::new(
                    ErrorKind::UnexpectedEof,
                    format!("closed after {buf:?}"),
                ));
            }
            _ => buf.push(byte[0]),
        }
    }
    let head = String::from_utf8_lossy(&buf).to_lowercase();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body)?;
    Ok((status, head))
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    s
}

fn get(s: &mut TcpStream, path: &str) -> std::io::Result<(u16, String)> {
    s.write_all(format!("GET {path} HTTP/1.1\r\nhost: t\r\n\r\n").as_bytes())?;
    read_response(s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_cuts_no_request() {
    let Server { addr, stop, task, slow: gate } = start().await;
    let result = tokio::task::spawn_blocking(move || {
        // Kept-alive connections, each used once so the server sees them idle.
        let mut idle: Vec<TcpStream> = (0..4).map(|_| connect(addr)).collect();
        for s in &mut idle {
            assert_eq!(get(s, "/fast").expect("first request").0, 204);
        }
        let mut slow = connect(addr);
        slow.write_all(b"GET /slow HTTP/1.1\r\nhost: t\r\n\r\n")
            .expect("send slow");
        wait_until("the slow request reaches its handler", || {
            gate.entered.load(Ordering::SeqCst)
        });
        stop.send(()).expect("stop");
        // The stop has begun once /readyz says so (a kept-alive connection:
        // answers before the stop leave it open for the next poll).
        wait_until("/readyz turns 503 once the stop begins", || {
            get(&mut idle[3], "/readyz").expect("readyz").0 == 503
        });
        // Sent over idle connections after the stop began: answered, then closed.
        for s in &mut idle[..3] {
            let (status, head) = get(s, "/fast")
                .expect("a request on a kept-alive connection is answered during the drain");
            assert_eq!(status, 204);
            assert!(head.contains("connection: close"), "{head}");
        }
        gate.release.add_permits(1);
        let (status, _) = read_response(&mut slow).expect("the request in flight completes");
        assert_eq!(status, 204);
        // The last connection was told to close: it is closed, not reset.
        let mut rest = Vec::new();
        assert_eq!(idle[0].read_to_end(&mut rest).expect("clean close"), 0);
    });
    result.await.expect("client");
    let started = Instant::now();
    task.await.expect("server task");
    assert!(
        started.elapsed() < TIMEOUTS.drain_settle + Duration::from_secs(2),
        "the drain ends once nothing is in flight"
    );
    assert_eq!(
        TcpStream::connect(addr).map(|_| ()).map_err(|e| e.kind()),
        Err(ErrorKind::ConnectionRefused)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_are_cut_after_the_header_timeout() {
    // Kept to the end: dropping its stop sender would stop the server.
    let server = start().await;
    let addr = server.addr;
    let elapsed = tokio::task::spawn_blocking(move || {
        let mut s = connect(addr);
        let started = Instant::now();
        s.write_all(b"GET /fast HTTP/1.1\r\nx-slow: ")
            .expect("start");
        // A byte every tenth of the limit: never a whole header section.
        loop {
            std::thread::sleep(TIMEOUTS.header_read / 10);
            if s.write_all(b"a").is_err() {
                break;
            }
            let mut probe = [0u8; 512];
            s.set_nonblocking(true).expect("nonblocking");
            let r = s.read(&mut probe);
            s.set_nonblocking(false).expect("blocking");
            match r {
                Ok(_) => break, // closed (0) or an error response
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => break,
            }
            assert!(
                started.elapsed() < TIMEOUTS.header_read + Duration::from_secs(5),
                "still open"
            );
        }
        // Meanwhile others are served.
        let mut other = connect(addr);
        assert_eq!(get(&mut other, "/fast").expect("served").0, 204);
        started.elapsed()
    })
    .await
    .expect("client");
    assert!(
        elapsed >= TIMEOUTS.header_read - Duration::from_millis(50),
        "cut too early: {elapsed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_oversized_bodies_are_refused() {
    // Kept to the end: dropping its stop sender would stop the server.
    let server = start().await;
    let addr = server.addr;
    tokio::task::spawn_blocking(move || {
        let mut big = connect(addr);
        big.write_all(b"POST /body HTTP/1.1\r\nhost: t\r\ncontent-length: 5000\r\n\r\n")
            .expect("head");
        big.write_all(&[b'x'; 5000]).expect("body");
        assert_eq!(read_response(&mut big).expect("answer").0, 413);

        let mut s = connect(addr);
        let started = Instant::now();
        s.write_all(b"POST /body HTTP/1.1\r\nhost: t\r\ncontent-length: 100\r\n\r\n")
            .expect("head");
        let mut answer = None;
        // A byte every tenth of the limit, for at most the limit and 5 s.
        let give_up = started + TIMEOUTS.body_read + Duration::from_secs(5);
        while Instant::now() < give_up {
            std::thread::sleep(TIMEOUTS.body_read / 10);
            let _ = s.write_all(b"x");
            s.set_nonblocking(true).expect("nonblocking");
            let mut probe = [0u8; 1];
            let ready = s.peek(&mut probe);
            s.set_nonblocking(false).expect("blocking");
            if matches!(ready, Ok(n) if n > 0) {
                answer = Some(read_response(&mut s).expect("answer"));
                break;
            }
        }
        let (status, _) = answer.expect("an answer within the body timeout");
        assert_eq!(status, 408);
        assert!(started.elapsed() >= TIMEOUTS.body_read - Duration::from_millis(50));
    })
    .await
    .expect("client");
}
