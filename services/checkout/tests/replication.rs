//! Checkout waiting for replicas (`STAMPEDE_CONFIRM_REPLICAS`): a paid
//! order is answered only once a replica has its confirmation, and answered
//! anyway (the order exists on the primary) when no replica acknowledges in
//! time. Runs its own primary and replica, started from `redis-server`.

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::{Method, StatusCode};
use serde_json::json;
use stampede_checkout::{CheckoutService, MockGateway};
use stampede_common::store::{self, Redis};
use stampede_common::testkit::client::{Answer, call, send};
use stampede_common::testkit::{spawn, test_config};
use stampede_common::token::{Role, Tokens};
use stampede_inventory::{EventKeys, EventMeta, HoldId, HoldRecord, Scripts, SectionLayout, publish};
use stampede_reservation::ReservationService;

/// A `redis-server` of this test's own, on a free loopback port, keeping
/// nothing on disk; stopped when dropped.
struct Server {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl Server {
    fn start(replica_of: Option<u16>) -> Self {
        let port = TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
        let dir = std::env::temp_dir().join(format!("stampede-repl-{port}"));
        std::fs::create_dir_all(&dir).expect("dir");
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--enable-debug-command", "yes", "--dir"])
            .arg(&dir)
            .stdout(Stdio::null());
        if let Some(primary) = replica_of {
            cmd.args(["--replicaof", "127.0.0.1", &primary.to_string()]);
        }
        let child = cmd.spawn().expect("redis-server on PATH (scripts/test installs it)");
        Self { child, port, dir }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    async fn connect(&self) -> Redis {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match store::connect(&self.url()).await {
                Ok(c) => return c,
                Err(e) if Instant::now() > deadline => panic!("redis-server on {}: {e}", self.port),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn info(conn: &mut Redis) -> String {
    redis::cmd("INFO").arg("replication").query_async(conn).await.expect("INFO")
}

struct App {
    reservation: SocketAddr,
    checkout: SocketAddr,
    tokens: Arc<Tokens>,
    keys: EventKeys,
}

impl App {
    /// Reservation and checkout on `primary`, checkout waiting for one
    /// replica up to `wait_ms`; event 1 with 5 × 4 seats on sale.
    async fn new(primary: &Server, wait_ms: u64) -> Self {
        let mut config = test_config(&[stampede_auth::MIGRATIONS, stampede_catalog::MIGRATIONS, stampede_persister::MIGRATIONS].concat()).await;
        config.redis_url = primary.url();
        let mut settings = stampede_checkout::CheckoutConfig::from_env(&config.env).expect("checkout config");
        settings.confirm_replicas = 1;
        settings.confirm_wait_ms = wait_ms;
        let reserving = stampede_reservation::ReservationConfig::from_env(&config.env).expect("reservation config");
        let redis = primary.connect().await;
        let db = stampede_common::db::pool(&config.database_url, 2).expect("pool");
        let tokens = Arc::new(Tokens::new(&config.jwt, 3600));
        let gateway = Arc::new(MockGateway::new(Duration::ZERO, 0.0));
        let reservation = spawn(ReservationService::build(&config, &reserving, redis.clone(), tokens.clone())).await;
        let checkout = spawn(CheckoutService::build(&config, &settings, db, redis.clone(), tokens.clone(), gateway)).await;
        let keys = EventKeys::new(&config.redis_prefix, 1);
        let meta = EventMeta {
            sale_ms: 0,
            hold_ms: 60_000,
            limit: 10,
            waiting_room: false,
            verified_email_required: false,
            sections: vec![SectionLayout { id: 7, seated: Some((5, 4)), capacity: 20, price_cents: 900 }],
        };
        publish(&mut redis.clone(), &Scripts::load(), &config.redis_prefix, &keys, &meta).await.expect("publish");
        Self { reservation, checkout, tokens, keys }
    }

    async fn hold(&self, seat: &str) -> String {
        let token = self.tokens.issue("1", Role::Customer).expect("token");
        let a = call(self.reservation, Method::POST, "/api/events/1/holds", Some(&token), Some(&json!({"seats": [seat]}))).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&a.body));
        a.json()["id"].as_str().expect("id").to_owned()
    }

    async fn pay(&self, hold: &str) -> (Answer, Duration) {
        let auth = format!("Bearer {}", self.tokens.issue("1", Role::Customer).expect("token"));
        let headers = [("authorization", auth.as_str()), ("content-type", "application/json"), ("idempotency-key", hold)];
        let body = serde_json::to_vec(&json!({"payment_method": "pm_card_visa"})).expect("json");
        let started = Instant::now();
        let a = send(self.checkout, Method::POST, &format!("/api/holds/{hold}/payment"), &headers, Some(body)).await;
        (a, started.elapsed())
    }

    /// The hold's status as `conn`'s server has it.
    async fn status_on(&self, conn: &mut Redis, hold: &str) -> String {
        let token = HoldId::parse(hold).expect("hold id").token;
        let rec: Option<String> = redis::cmd("HGET").arg(self.keys.holds()).arg(&token).query_async(conn).await.expect("HGET");
        rec.and_then(|r| HoldRecord::parse(&r)).map(|h| h.status).unwrap_or_default()
    }
}

#[tokio::test]
async fn a_paid_order_is_answered_once_a_replica_has_it_and_anyway_when_none_answers_in_time() {
    let primary = Server::start(None);
    let mut replica = Server::start(Some(primary.port));
    let mut on_primary = primary.connect().await;
    let mut on_replica = replica.connect().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !info(&mut on_replica).await.contains("master_link_status:up") || !info(&mut on_primary).await.contains("connected_slaves:1") {
        assert!(Instant::now() < deadline, "the replica never caught up with the primary");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let app = App::new(&primary, 1500).await;

    // The replica stops for 600 ms (it neither applies nor acknowledges the
    // replication stream meanwhile): the payment is answered only after it
    // resumed and acknowledged the confirmation, so the replica has it.
    let hold = app.hold("7:1:1").await;
    let mut sleeper = replica.connect().await;
    let pause = tokio::spawn(async move {
        let _: redis::RedisResult<()> = redis::cmd("DEBUG").arg("SLEEP").arg("0.6").query_async(&mut sleeper).await;
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (paid, took) = app.pay(&hold).await;
    assert_eq!(paid.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&paid.body));
    assert!(took >= Duration::from_millis(400), "answered in {took:?}, while the replica slept: it did not wait for the replica");
    assert_eq!(app.status_on(&mut on_replica, &hold).await, "confirmed", "the replica has the confirmation once checkout answered");
    pause.await.expect("pause");

    // No replica at all: the confirmation waits its 1.5 s and is answered
    // 201 all the same (it is on the primary, the charge captured).
    let _ = replica.child.kill();
    let _ = replica.child.wait();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !info(&mut on_primary).await.contains("connected_slaves:0") {
        assert!(Instant::now() < deadline, "the primary never noticed its replica gone");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let hold = app.hold("7:1:2").await;
    let (paid, took) = app.pay(&hold).await;
    assert_eq!(paid.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&paid.body));
    assert!(took >= Duration::from_millis(1400), "answered in {took:?}: it did not wait for the replica");
    assert_eq!(app.status_on(&mut on_primary, &hold).await, "confirmed");

    // Payments wait side by side, not one behind the other's WAIT: four at
    // once are all answered in about one wait, not four.
    let mut holds = Vec::new();
    for seat in ["7:2:1", "7:2:2", "7:2:3", "7:2:4"] {
        holds.push(app.hold(seat).await);
    }
    let app = Arc::new(app);
    let started = Instant::now();
    let payments: Vec<_> = holds
        .iter()
        .map(|h| {
            let (app, h) = (app.clone(), h.clone());
            tokio::spawn(async move { app.pay(&h).await })
        })
        .collect();
    for p in payments {
        let (paid, _) = p.await.expect("payment task");
        assert_eq!(paid.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&paid.body));
    }
    let took = started.elapsed();
    assert!(took < Duration::from_millis(3000), "four payments took {took:?}: they waited for each other's WAIT");
}
