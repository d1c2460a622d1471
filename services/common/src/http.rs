//! The HTTP server every service runs on: hyper 1 over HTTP/1.1 with keep-alive,
//! bounded header and body read times, graceful shutdown, request metrics,
//! and the `/healthz`, `/readyz` and `/metrics` endpoints. A service only
//! supplies a [`Handler`] that routes its own paths.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::FutureExt;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::TcpListener;

use crate::problem::Problem;
use crate::telemetry;

pub type Body = Full<Bytes>;
pub type Resp = Response<Body>;
/// What a handler answers: the route label (for metrics) and the outcome.
pub type Routed = (&'static str, Result<Resp, Problem>);

/// How long a client may take to send its headers, and then its body.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for in-flight requests.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a stopping server keeps serving its open connections (with
/// `Connection: close`) before it closes the idle ones.
pub const DRAIN_SETTLE: Duration = Duration::from_millis(300);

/// The server's time limits. [`Default`] is production's (the constants
/// above); tests of the limits themselves shorten them so a slow-client
/// test takes a second, not ten.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// A connection whose request headers take longer is closed.
    pub header_read: Duration,
    /// A request whose body takes longer is answered 408 ([`read_body`]).
    pub body_read: Duration,
    /// How long open connections stay usable once a stop begins.
    pub drain_settle: Duration,
    /// How long a stop then waits for requests in flight.
    pub drain: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self { header_read: HEADER_READ_TIMEOUT, body_read: BODY_READ_TIMEOUT, drain_settle: DRAIN_SETTLE, drain: DRAIN_TIMEOUT }
    }
}

tokio::task_local! {
    /// The body read limit of the server handling the current request: set
    /// by [`serve_with`] around each handler, read by [`read_body`].
    static BODY_READ: Duration;
}

/// One service's routes and readiness.
pub trait Handler: Send + Sync + 'static {
    /// The service name used in metrics and logs.
    fn name(&self) -> &'static str;
    /// Routes one request. Unknown paths answer 404, known paths with the
    /// wrong method 405 (see [`not_found`] and [`Problem::method_not_allowed`]).
    fn handle(&self, req: Request<Incoming>) -> impl Future<Output = Routed> + Send;
    /// Whether the stores this service needs answer.
    fn ready(&self) -> impl Future<Output = Result<(), String>> + Send;
}

/// The HTTP face of a worker role (persister, expiry, notifier): no routes
/// of its own, just what the server gives every handler (`/healthz`,
/// `/readyz`, `/metrics`), ready while its Redis — and its Postgres, if it
/// has one — answers.
pub struct WorkerEndpoints {
    name: &'static str,
    redis: crate::store::Redis,
    db: Option<deadpool_postgres::Pool>,
}

impl WorkerEndpoints {
    pub fn new(name: &'static str, redis: crate::store::Redis, db: Option<deadpool_postgres::Pool>) -> Self {
        Self { name, redis, db }
    }
}

impl Handler for WorkerEndpoints {
    fn name(&self) -> &'static str {
        self.name
    }

    async fn handle(&self, _req: Request<Incoming>) -> Routed {
        not_found()
    }

    async fn ready(&self) -> Result<(), String> {
        crate::store::ping(&self.redis).await?;
        match &self.db {
            Some(db) => crate::db::ping(db).await,
            None => Ok(()),
        }
    }
}

/// Binds `addr` (port 0 picks a free port).
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    use anyhow::Context;
    TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))
}

/// Serves `handler` on `listener` until `shutdown` resolves, then drains
/// without resetting anyone: every response from then on says
/// `Connection: close` and `/readyz` answers 503; connections the kernel
/// has already queued are still accepted (dropping the listener would reset
/// them); open connections stay usable for [`DRAIN_SETTLE`], so a request
/// already on its way over a kept-alive connection is answered, not cut;
/// then idle connections are closed and in-flight requests are awaited (up
/// to [`DRAIN_TIMEOUT`]).
pub async fn serve<H: Handler>(listener: TcpListener, handler: Arc<H>, shutdown: impl Future<Output = ()>) {
    serve_with(listener, handler, Timeouts::default(), shutdown).await;
}

/// [`serve`] with time limits of its own.
pub async fn serve_with<H: Handler>(listener: TcpListener, handler: Arc<H>, timeouts: Timeouts, shutdown: impl Future<Output = ()>) {
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(timeouts.header_read).keep_alive(true);
    let draining = Arc::new(AtomicBool::new(false));
    let spawn_conn = |stream: tokio::net::TcpStream| {
        let _ = stream.set_nodelay(true);
        let h = handler.clone();
        let draining = draining.clone();
        let svc = service_fn(move |req| {
            let h = h.clone();
            let draining = draining.clone();
            let served = async move { Ok::<_, std::convert::Infallible>(dispatch(&*h, req, &draining).await) };
            BODY_READ.scope(timeouts.body_read, served)
        });
        let conn = builder.serve_connection(TokioIo::new(stream), svc);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection closed with error");
            }
        });
    };
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                match accepted {
                    Ok((stream, _peer)) => spawn_conn(stream),
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
            _ = &mut shutdown => break,
        }
    }
    draining.store(true, Ordering::SeqCst);
    while let Some(Ok((stream, _peer))) = listener.accept().now_or_never() {
        spawn_conn(stream);
    }
    drop(listener);
    tracing::info!(service = handler.name(), "draining connections");
    tokio::time::sleep(timeouts.drain_settle).await;
    if tokio::time::timeout(timeouts.drain, graceful.shutdown()).await.is_err() {
        tracing::warn!(service = handler.name(), "drain timed out");
    }
}

async fn dispatch<H: Handler>(h: &H, req: Request<Incoming>, draining: &AtomicBool) -> Resp {
    let start = Instant::now();
    let request_id = req.headers().get("x-request-id").cloned();
    let draining = draining.load(Ordering::SeqCst);
    let (route, result) = match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => ("/healthz", Ok(json(StatusCode::OK, &serde_json::json!({"status": "ok"})))),
        (&Method::GET, "/readyz") if draining => ("/readyz", Err(Problem::unavailable("not ready: shutting down"))),
        (&Method::GET, "/readyz") => ("/readyz", Ok(readiness(h).await)),
        (&Method::GET, "/metrics") => ("/metrics", Ok(metrics_response())),
        (_, "/healthz" | "/readyz" | "/metrics") => ("/healthz", Err(Problem::method_not_allowed("GET"))),
        _ => h.handle(req).await,
    };
    let mut resp = match result {
        Ok(r) => r,
        Err(p) => p.into_response(),
    };
    if draining {
        resp.headers_mut().insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
    }
    let status = resp.status();
    if status.is_server_error() {
        tracing::warn!(service = h.name(), route, status = status.as_u16(), request_id = ?request_id, "request failed");
    } else {
        tracing::debug!(service = h.name(), route, status = status.as_u16(), request_id = ?request_id, "request");
    }
    telemetry::record_request(h.name(), route, status, start.elapsed());
    if let Some(id) = request_id {
        resp.headers_mut().insert(HeaderName::from_static("x-request-id"), id);
    }
    resp
}

async fn readiness<H: Handler>(h: &H) -> Resp {
    match h.ready().await {
        Ok(()) => json(StatusCode::OK, &serde_json::json!({"status": "ready"})),
        Err(why) => Problem::unavailable(format!("not ready: {why}")).into_response(),
    }
}

/// This process's metrics. Every role of one process shares one registry,
/// so every role's port answers the same series: scrape one port per
/// process (`prometheus/prometheus.yml`), or each would be counted once per
/// role.
fn metrics_response() -> Resp {
    raw(StatusCode::OK, "text/plain; version=0.0.4", telemetry::render())
}

/// The answer for a path no route matches.
pub fn not_found() -> Routed {
    ("unmatched", Err(Problem::not_found("no such resource")))
}

/// A JSON response.
pub fn json<T: Serialize + ?Sized>(status: StatusCode, body: &T) -> Resp {
    match serde_json::to_vec(body) {
        Ok(bytes) => {
            let mut resp = Response::new(Full::new(Bytes::from(bytes)));
            *resp.status_mut() = status;
            resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            resp
        }
        Err(e) => Problem::internal(e).into_response(),
    }
}

/// A response with a ready-made body.
pub fn raw(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Resp {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// A response with no body (204 and friends).
pub fn empty(status: StatusCode) -> Resp {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = status;
    resp
}

/// Reads the whole body, refusing more than `limit` bytes (413) and clients
/// slower than the server's body read limit (408; [`BODY_READ_TIMEOUT`]
/// unless the server was given other [`Timeouts`]).
pub async fn read_body(body: Incoming, limit: usize) -> Result<Bytes, Problem> {
    let read = Limited::new(body, limit).collect();
    let within = BODY_READ.try_with(|d| *d).unwrap_or(BODY_READ_TIMEOUT);
    match tokio::time::timeout(within, read).await {
        Err(_) => Err(Problem::new(StatusCode::REQUEST_TIMEOUT, "body_timeout", "the request body arrived too slowly")),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the request body exceeds {limit} bytes"),
        )),
        Ok(Err(_)) => Err(Problem::bad_request("bad_body", "the request body could not be read")),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

/// Parses a JSON body: malformed JSON and wrong types are both 400, with
/// serde's explanation (which names the field) in `detail`. Every body is
/// a JSON object (serde would also read a struct from an array).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    if bytes.is_empty() {
        return Err(Problem::bad_request("malformed_json", "a JSON body is required"));
    }
    if bytes.iter().find(|b| !b.is_ascii_whitespace()).is_some_and(|b| *b != b'{') {
        return Err(Problem::bad_request("invalid_body", "the body must be a JSON object"));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Data => Problem::bad_request("invalid_body", e.to_string()),
            _ => Problem::bad_request("malformed_json", format!("malformed JSON: {e}")),
        }
    })
}

/// Reads and parses a JSON body in one step.
pub async fn read_json<T: DeserializeOwned>(body: Incoming, limit: usize) -> Result<T, Problem> {
    parse_json(&read_body(body, limit).await?)
}

/// Splits a path into at most `N` segments (`/api/holds/x` → `["api","holds","x"]`).
/// Returns `None` for deeper paths, which no route serves.
pub fn segments<const N: usize>(path: &str) -> Option<([&str; N], usize)> {
    let mut out = [""; N];
    let mut n = 0;
    for seg in path.trim_start_matches('/').split('/') {
        if n == N {
            return None;
        }
        out[n] = seg;
        n += 1;
    }
    if n > 1 && out[n - 1].is_empty() {
        n -= 1; // tolerate one trailing slash
    }
    Some((out, n))
}

/// The value of a query-string parameter (no percent-decoding: every
/// parameter we take is a plain token or number).
pub fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then_some(v)
    })
}

/// A header's value as UTF-8 text.
pub fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Resolves once `stop` turns true (or its sender is gone): the shutdown
/// future every server and worker of a process waits on.
pub async fn stopped(mut stop: tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// The shutdown signal for production: Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_segments() {
        let (s, n) = segments::<6>("/api/holds/abc").expect("fits");
        assert_eq!(&s[..n], &["api", "holds", "abc"]);
        let (s, n) = segments::<6>("/api/events/").expect("fits");
        assert_eq!(&s[..n], &["api", "events"]);
        assert!(segments::<3>("/a/b/c/d").is_none());
    }

    #[test]
    fn finds_query_params() {
        assert_eq!(query_param(Some("limit=5&cursor=abc"), "cursor"), Some("abc"));
        assert_eq!(query_param(Some("limit=5"), "cursor"), None);
        assert_eq!(query_param(None, "limit"), None);
    }

    #[test]
    fn json_errors_are_400() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct B {
            n: u32,
        }
        assert_eq!(parse_json::<B>(b"{").expect_err("bad").code, "malformed_json");
        assert_eq!(parse_json::<B>(br#"{"n":"x"}"#).expect_err("bad").code, "invalid_body");
        assert_eq!(parse_json::<B>(b"").expect_err("bad").status, StatusCode::BAD_REQUEST);
    }
}
