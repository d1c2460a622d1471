//! Isolated stores for integration tests: a fresh, migrated Postgres
//! database and a fresh Redis key prefix per test, on the servers that
//! `scripts/test` starts (`STAMPEDE_TEST_DATABASE_URL`,
//! `STAMPEDE_TEST_REDIS_URL`). A test run without them fails loudly rather
//! than skipping.
//!
//! Test databases are dropped by later tests, not by their own: nextest runs
//! each test in a process of its own that simply exits (no destructor or
//! teardown runs, and a failing or killed test would skip one anyway). So
//! each database's name carries its creation time (`st_<unix secs>_<hex>`),
//! and every `test_config` first drops the test databases older than
//! [`STALE_AFTER`]: by then the test that made it is over (the CI profile
//! of `.config/nextest.toml` terminates a test after two minutes, the
//! longest after five), and one still connected is refused by Postgres (no
//! `FORCE`) and left for later. One test sweeps at a time (an advisory
//! lock; the others skip rather than queue on the same drops) and drops a
//! few databases only, so the sweep after a run is spread over the next
//! run's tests instead of stalling its first ones. What stays behind is
//! about the databases of the last ten minutes' tests.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::{Config, Env};
use crate::db::Migration;
use crate::ids::random_hex;

/// The value of a test variable; panics with a pointer to `scripts/test`.
pub fn test_var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run the tests through scripts/test"))
}

/// How old a test database must be before another test drops it.
pub const STALE_AFTER: Duration = Duration::from_secs(10 * 60);

/// The prefix of every test database's name.
const DB_PREFIX: &str = "st_";

/// How many stale databases one `test_config` drops at most (a drop takes
/// about a tenth of a second; a run makes a database per test).
const DROPS_PER_TEST: usize = 3;

/// The advisory lock the sweeping test holds ("stmpdb").
const SWEEP_LOCK: i64 = 0x73_74_6d_70_64_62;

/// A configuration for one test: its own database (created, and migrated
/// with `migrations`: the services' lists the test needs, e.g.
/// `stampede_auth::MIGRATIONS`, applied in version order whatever the order
/// given), its own Redis key prefix,
/// its own mail directory, every port 0, fast password hashing, holds as
/// short as one second. Each service reads its own section from
/// `Config::env`, which holds these test settings.
pub async fn test_config(migrations: &[Migration]) -> Config {
    let admin_url = test_var("STAMPEDE_TEST_DATABASE_URL");
    let redis_url = test_var("STAMPEDE_TEST_REDIS_URL");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let name = format!("{DB_PREFIX}{now}_{}", random_hex(6));
    let (client, conn) = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls)
        .await
        .expect("connect to the test Postgres");
    let conn_task = tokio::spawn(conn);
    drop_stale_databases(&client, now).await;
    client.batch_execute(&format!("CREATE DATABASE {name}")).await.expect("create test database");
    drop(client);
    let _ = conn_task.await;
    let db_url = replace_dbname(&admin_url, &name);
    let prefix = format!("t{}", random_hex(5));
    let mail_dir = std::env::temp_dir().join(format!("stampede-mail-{}", random_hex(5))).display().to_string();
    let pairs = [
        ("STAMPEDE_DATABASE_URL", db_url.as_str()),
        ("STAMPEDE_REDIS_URL", redis_url.as_str()),
        ("STAMPEDE_REDIS_PREFIX", prefix.as_str()),
        ("STAMPEDE_JWT_SECRET", "test-secret-test-secret-test-secret!"),
        ("STAMPEDE_ARGON2_MEMORY_KIB", "64"),
        ("STAMPEDE_ARGON2_ITERATIONS", "1"),
        ("STAMPEDE_MIN_HOLD_SECONDS", "1"),
        ("STAMPEDE_DB_POOL_SIZE", "4"),
        ("STAMPEDE_EXPIRY_SWEEP_MS", "100"),
        ("STAMPEDE_MAIL_DIR", mail_dir.as_str()),
    ];
    let mut cfg = Config::from_env(&Env::from_pairs(pairs)).expect("test config");
    for port in cfg.ports.values_mut() {
        *port = 0;
    }
    let pool = crate::db::pool(&cfg.database_url, 2).expect("pool");
    let mut migrations = migrations.to_vec();
    migrations.sort_by_key(|m| m.version);
    crate::db::migrate(&pool, &migrations).await.expect("migrate test database");
    cfg
}

/// Drops up to [`DROPS_PER_TEST`] of the test databases made more than
/// [`STALE_AFTER`] before `now` (Unix seconds), oldest first, and those
/// named before names carried a time; nothing if another test is sweeping.
/// Best effort: a database still in use is skipped.
async fn drop_stale_databases(client: &tokio_postgres::Client, now: u64) {
    let locked = client.query_one("SELECT pg_try_advisory_lock($1)", &[&SWEEP_LOCK]).await.map(|r| r.get::<_, bool>(0));
    if !matches!(locked, Ok(true)) {
        return;
    }
    let rows = client.query("SELECT datname FROM pg_database WHERE datname LIKE 'st\\_%' ORDER BY datname", &[]).await.unwrap_or_default();
    let stale = rows.iter().map(|r| r.get::<_, String>(0)).filter(|name| is_stale(name, now));
    for name in stale.take(DROPS_PER_TEST) {
        if let Err(e) = client.batch_execute(&format!("DROP DATABASE IF EXISTS {name}")).await {
            tracing::debug!(database = %name, error = %e, "stale test database not dropped");
        }
    }
    let _ = client.query_one("SELECT pg_advisory_unlock($1)", &[&SWEEP_LOCK]).await;
}

/// Whether the test database `name` is older than [`STALE_AFTER`] at `now`.
fn is_stale(name: &str, now: u64) -> bool {
    let Some(rest) = name.strip_prefix(DB_PREFIX) else { return false };
    match rest.split_once('_').and_then(|(secs, _)| secs.parse::<u64>().ok()) {
        Some(created) => now.saturating_sub(created) > STALE_AFTER.as_secs(),
        // `st_<12 hex digits>`: made before names carried their time.
        None => rest.len() == 12 && rest.bytes().all(|b| b.is_ascii_hexdigit()),
    }
}

/// `postgres://u@h:p/db?x` with the database replaced by `name`.
fn replace_dbname(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn replaces_the_database_name() {
        assert_eq!(super::replace_dbname("postgres://p@127.0.0.1:5/postgres", "x"), "postgres://p@127.0.0.1:5/x");
        assert_eq!(super::replace_dbname("postgres://p@h:5/a?sslmode=disable", "x"), "postgres://p@h:5/x?sslmode=disable");
        assert_eq!(super::replace_dbname("postgres://p@h:5", "x"), "postgres://p@h:5/x");
    }

    #[test]
    fn only_old_test_databases_are_stale() {
        let now = 1_800_000_000;
        let age = super::STALE_AFTER.as_secs();
        let name = |secs: u64| format!("st_{secs}_{}", super::random_hex(6));
        assert!(super::is_stale(&name(now - age - 1), now));
        assert!(!super::is_stale(&name(now - age), now));
        assert!(!super::is_stale(&name(now), now), "made just now");
        assert!(!super::is_stale(&name(now + 5), now), "a clock a little ahead");
        assert!(super::is_stale("st_6ae319a1a4e1", now), "from before names carried a time");
        assert!(!super::is_stale("stampede", now));
        assert!(!super::is_stale("stampede_stack", now));
        assert!(!super::is_stale("st_other", now));
    }
}

/// A minimal HTTP/1.1 client for tests: one request per connection, JSON in
/// and out, no extra dependencies.
pub mod client {
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper::{Method, Request, StatusCode};
    use hyper_util::rt::TokioIo;
    use serde_json::Value;

    /// An answer: status, headers and the body (parsed as JSON when it is).
    #[derive(Debug)]
    pub struct Answer {
        pub status: StatusCode,
        pub headers: hyper::HeaderMap,
        pub body: Bytes,
    }

    impl Answer {
        pub fn json(&self) -> Value {
            serde_json::from_slice(&self.body).unwrap_or(Value::Null)
        }
        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers.get(name).and_then(|v| v.to_str().ok())
        }
        /// The body's `code` (problem responses).
        pub fn code(&self) -> String {
            self.json()["code"].as_str().unwrap_or_default().to_owned()
        }
    }

    /// Sends one request to `addr` (`127.0.0.1:port`).
    pub async fn send(
        addr: std::net::SocketAddr,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Answer {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect to service");
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("http handshake");
        tokio::spawn(conn);
        let mut req = Request::builder().method(method).uri(path).header("host", addr.to_string());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(Bytes::from(body.unwrap_or_default()))).expect("request");
        let resp = sender.send_request(req).await.expect("send request");
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.expect("read body").to_bytes();
        Answer { status, headers, body }
    }

    /// Sends JSON with an optional bearer token.
    pub async fn call(
        addr: std::net::SocketAddr,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Answer {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("content-type", "application/json")];
        if let Some(a) = &auth {
            headers.push(("authorization", a.as_str()));
        }
        send(addr, method, path, &headers, body.map(|b| serde_json::to_vec(b).expect("json"))).await
    }
}

/// Serves `handler` on a free loopback port for the rest of the test.
pub async fn spawn<H: crate::http::Handler>(handler: H) -> std::net::SocketAddr {
    crate::telemetry::install_metrics();
    let listener = crate::http::bind(([127, 0, 0, 1], 0).into()).await.expect("bind port 0");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(crate::http::serve(listener, std::sync::Arc::new(handler), std::future::pending()));
    addr
}
