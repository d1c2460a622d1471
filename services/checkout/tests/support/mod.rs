//! What the ticket and resale tests share: the services on a real Redis
//! and Postgres (reservation, checkout, a persister on demand), two events
//! on sale, accounts, and calls as a given user.
#![allow(dead_code)] // each test file uses its own share of it

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::{Method, StatusCode};
use redis::AsyncCommands;
use serde_json::{Value, json};
use stampede_checkout::codes::{TicketKey, TicketKeys};
use stampede_checkout::{CheckoutConfig, CheckoutService, MockGateway};
use stampede_common::Config;
use stampede_common::store::{self, Redis};
use stampede_common::testkit::client::{Answer, call, send};
use stampede_common::testkit::{spawn, test_config};
use stampede_common::token::{Role, Tokens};
use stampede_inventory::{EventKeys, EventMeta, Scripts, SectionLayout, publish};
use stampede_persister::{PersisterConfig, PersisterWorker};
use stampede_reservation::{ReservationConfig, ReservationService};

pub const SEATED: i64 = 31;
pub const GA: i64 = 32;

pub struct App {
    pub reservation: SocketAddr,
    pub checkout: SocketAddr,
    pub tokens: Arc<Tokens>,
    pub config: Config,
    pub redis: Redis,
    pub keys: EventKeys,
    pub key: TicketKey,
    pub db: deadpool_postgres::Pool,
}

pub fn meta() -> EventMeta {
    EventMeta {
        sale_ms: 0,
        hold_ms: 60_000,
        limit: 10,
        waiting_room: false,
        verified_email_required: false,
        sections: vec![
            SectionLayout { id: SEATED, seated: Some((5, 4)), capacity: 20, price_cents: 2500 },
            SectionLayout { id: GA, seated: None, capacity: 50, price_cents: 1000 },
        ],
    }
}

impl App {
    /// Services with a ticket key of their own, and events 1 and 2 on sale.
    pub async fn new() -> Self {
        let config = test_config(&[stampede_auth::MIGRATIONS, stampede_catalog::MIGRATIONS, stampede_persister::MIGRATIONS].concat()).await;
        let mut settings = CheckoutConfig::from_env(&config.env).expect("checkout config");
        let key = TicketKey::generate();
        settings.ticket_keys = Some(TicketKeys { current: key.clone(), previous: None });
        let reserving = ReservationConfig::from_env(&config.env).expect("reservation config");
        let redis = store::connect(&config.redis_url).await.expect("redis");
        let db = stampede_common::db::pool(&config.database_url, 4).expect("pool");
        let tokens = Arc::new(Tokens::new(&config.jwt, 3600));
        let gateway = Arc::new(MockGateway::new(Duration::ZERO, 0.0));
        let reservation = spawn(ReservationService::build(&config, &reserving, redis.clone(), tokens.clone())).await;
        let checkout = spawn(CheckoutService::build(&config, &settings, db.clone(), redis.clone(), tokens.clone(), gateway)).await;
        let mut conn = redis.clone();
        for event in [1, 2] {
            let keys = EventKeys::new(&config.redis_prefix, event);
            publish(&mut conn, &Scripts::load(), &config.redis_prefix, &keys, &meta()).await.expect("publish");
        }
        let keys = EventKeys::new(&config.redis_prefix, 1);
        Self { reservation, checkout, tokens, config, redis, keys, key, db }
    }

    /// Another checkout service on the same stores, whose payment provider
    /// takes `latency` to answer: its provider, and its address.
    pub async fn slow_checkout(&self, latency: Duration) -> (Arc<MockGateway>, SocketAddr) {
        let mut settings = CheckoutConfig::from_env(&self.config.env).expect("checkout config");
        settings.ticket_keys = Some(TicketKeys { current: self.key.clone(), previous: None });
        let gateway = Arc::new(MockGateway::new(latency, 0.0));
        let svc = CheckoutService::build(&self.config, &settings, self.db.clone(), self.redis.clone(), self.tokens.clone(), gateway.clone());
        (gateway, spawn(svc).await)
    }

    pub fn token_as(&self, user: u32, role: Role) -> String {
        self.tokens.issue(&user.to_string(), role).expect("token")
    }

    pub fn token(&self, user: u32) -> String {
        self.token_as(user, Role::Customer)
    }

    /// Holds `body` on `event` for `user` and pays: the order's JSON.
    pub async fn buy(&self, event: i64, user: u32, body: Value) -> Value {
        let path = format!("/api/events/{event}/holds");
        let a = call(self.reservation, Method::POST, &path, Some(&self.token(user)), Some(&body)).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&a.body));
        let hold = a.json()["id"].as_str().expect("id").to_owned();
        let auth = format!("Bearer {}", self.token(user));
        let ikey = hold.replace('-', "_");
        let headers = [("authorization", auth.as_str()), ("content-type", "application/json"), ("idempotency-key", ikey.as_str())];
        let body = serde_json::to_vec(&json!({"payment_method": "pm_card_visa"})).expect("json");
        let paid = send(self.checkout, Method::POST, &format!("/api/holds/{hold}/payment"), &headers, Some(body)).await;
        assert_eq!(paid.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&paid.body));
        paid.json()["order"].clone()
    }

    pub async fn get(&self, user: u32, path: &str) -> Answer {
        call(self.checkout, Method::GET, path, Some(&self.token(user)), None).await
    }

    pub async fn tickets(&self, user: u32) -> Vec<Value> {
        let a = self.get(user, "/api/tickets").await;
        assert_eq!(a.status, StatusCode::OK, "{}", String::from_utf8_lossy(&a.body));
        a.json()["tickets"].as_array().expect("tickets").clone()
    }

    pub async fn code(&self, user: u32, ticket: &str) -> String {
        let a = self.get(user, &format!("/api/tickets/{ticket}/code")).await;
        assert_eq!(a.status, StatusCode::OK, "{}", String::from_utf8_lossy(&a.body));
        a.json()["code"].as_str().expect("code").to_owned()
    }

    pub async fn check_in(&self, event: i64, token: &str, code: &str) -> Answer {
        let path = format!("/api/events/{event}/check-in");
        call(self.checkout, Method::POST, &path, Some(token), Some(&json!({ "code": code }))).await
    }

    pub async fn gate(&self, code: &str) -> Answer {
        self.check_in(1, &self.token_as(900, Role::Gate), code).await
    }

    pub async fn stream_types(&self) -> Vec<String> {
        let mut conn = self.redis.clone();
        let r: redis::streams::StreamRangeReply = conn.xrange_all(self.keys.stream()).await.expect("xrange");
        r.ids.iter().map(|e| e.get::<String>("type").unwrap_or_default()).collect()
    }
}

pub fn problem(a: &Answer, status: u16, code: &str) {
    assert_eq!(a.status.as_u16(), status, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.header("content-type"), Some("application/problem+json"));
    assert_eq!(a.code(), code);
}

impl App {
    /// Users 1 to 4 as accounts (`fan<i>@example.com`), event 1 starting
    /// tomorrow and event 2 an hour ago, in Postgres: what a transfer looks
    /// up.
    pub async fn accounts_and_events(&self) {
        let client = self.db.get().await.expect("db");
        for i in 1..=4i64 {
            client
                .execute(
                    "INSERT INTO users (id, email, password_hash) OVERRIDING SYSTEM VALUE VALUES ($1, $2, 'x')",
                    &[&i, &format!("fan{i}@example.com")],
                )
                .await
                .expect("user");
        }
        drop(client);
        self.event_starting(1, "1 day").await;
        self.event_starting(2, "-1 hour").await;
    }

    /// Event `event` in Postgres, published, starting `starts` from now (an
    /// interval: "1 day", "-1 hour").
    pub async fn event_starting(&self, event: i64, starts: &str) {
        let client = self.db.get().await.expect("db");
        client
            .execute(
                "INSERT INTO events (id, name, venue, starts_at, sale_starts_at, hold_seconds, per_user_limit, status)
                 OVERRIDING SYSTEM VALUE
                 VALUES ($1, 'Gig', 'Hall', now() + $2::text::interval, now() - interval '2 days', 60, 10, 'published')",
                &[&event, &starts],
            )
            .await
            .expect("event");
    }

    pub async fn transfer(&self, user: u32, ticket: &str, body: Value) -> Answer {
        call(self.checkout, Method::POST, &format!("/api/tickets/{ticket}/transfer"), Some(&self.token(user)), Some(&body)).await
    }

    pub async fn stream_entries(&self, kind: &str) -> Vec<redis::streams::StreamId> {
        let mut conn = self.redis.clone();
        let r: redis::streams::StreamRangeReply = conn.xrange_all(self.keys.stream()).await.expect("xrange");
        r.ids.into_iter().filter(|e| e.get::<String>("type").as_deref() == Some(kind)).collect()
    }

    /// A persister on the test's streams until `done` holds of Postgres (or 10 s).
    pub async fn persist_until(&self, sql: &str, done: impl Fn(&[tokio_postgres::Row]) -> bool) -> Vec<tokio_postgres::Row> {
        let settings = PersisterConfig::from_env(&self.config.env).expect("persister config");
        let worker = Arc::new(
            PersisterWorker::build(&self.config, &settings, self.db.clone(), self.redis.clone())
                .with_consumer("t")
                .with_reader(|o| {
                    o.block = Duration::from_millis(100);
                    o.rediscover = Duration::from_millis(100);
                })
                .with_intervals(Duration::from_secs(3600), Duration::from_secs(3600)),
        );
        let (stop, rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(worker.clone().run(rx));
        let client = self.db.get().await.expect("db");
        let deadline = Instant::now() + Duration::from_secs(10);
        let rows = loop {
            let rows = client.query(sql, &[]).await.expect("query");
            if done(&rows) || Instant::now() > deadline {
                break rows;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let _ = stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        rows
    }
}

