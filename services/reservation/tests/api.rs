//! The reservation operations of openapi/openapi.yaml and the hold invariants, through HTTP,
//! against a real Redis.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::{Method, StatusCode};
use rand::Rng;
use redis::AsyncCommands;
use serde_json::{Value, json};
use stampede_common::clock::now_ms;
use stampede_common::store::{self, Redis};
use stampede_common::testkit::client::{Answer, call, send};
use stampede_common::testkit::{spawn, test_config};
use stampede_common::token::{Role, Tokens};
use stampede_common::Config;
use stampede_inventory::{
    ConfirmOutcome, EventKeys, EventMeta, HoldId, Payment, Scripts, SectionLayout, availability, confirm, publish, read_hold, taken_seats,
};
use stampede_reservation::{ExpiryWorker, Passes, ReservationConfig, ReservationService};

const SEATED: i64 = 21;
const GA: i64 = 22;

struct App {
    addr: SocketAddr,
    tokens: Arc<Tokens>,
    config: Config,
    reservation: ReservationConfig,
    redis: Redis,
}

impl App {
    async fn new() -> Self {
        let config = test_config(&[]).await;
        let reservation = ReservationConfig::from_env(&config.env).expect("reservation config");
        Self::with(config, reservation).await
    }

    async fn with(config: Config, reservation: ReservationConfig) -> Self {
        stampede_common::telemetry::install_metrics(); // before build, so its metric descriptions register
        let redis = store::connect(&config.redis_url).await.expect("redis");
        let tokens = Arc::new(Tokens::new(&config.jwt, 3600));
        let addr = spawn(ReservationService::build(&config, &reservation, redis.clone(), tokens.clone())).await;
        Self { addr, tokens, config, reservation, redis }
    }

    /// Publishes event `id`: a seated section of `rows` x `per_row` at 1000
    /// and a GA section of `ga` places at 500.
    #[allow(clippy::too_many_arguments)]
    async fn publish(&self, id: i64, rows: u32, per_row: u32, ga: i64, hold_ms: i64, limit: i64, sale_ms: i64) -> EventKeys {
        let keys = EventKeys::new(&self.config.redis_prefix, id);
        let meta = EventMeta {
            sale_ms,
            hold_ms,
            limit,
            waiting_room: false,
            verified_email_required: false,
            sections: vec![
                SectionLayout { id: SEATED, seated: Some((rows, per_row)), capacity: (rows * per_row) as i64, price_cents: 1000 },
                SectionLayout { id: GA, seated: None, capacity: ga, price_cents: 500 },
            ],
        };
        let mut conn = self.redis.clone();
        assert!(publish(&mut conn, &Scripts::load(), &self.config.redis_prefix, &keys, &meta).await.expect("publish"));
        keys
    }

    /// Publishes event `id` with a waiting room: 1 row of 10 seats at 1000
    /// and 10 GA places at 500, limit 4, on sale from `sale_ms`.
    async fn publish_wr(&self, id: i64, sale_ms: i64) -> EventKeys {
        let keys = EventKeys::new(&self.config.redis_prefix, id);
        let meta = EventMeta {
            sale_ms,
            hold_ms: 60_000,
            limit: 4,
            waiting_room: true,
            verified_email_required: false,
            sections: vec![
                SectionLayout { id: SEATED, seated: Some((1, 10)), capacity: 10, price_cents: 1000 },
                SectionLayout { id: GA, seated: None, capacity: 10, price_cents: 500 },
            ],
        };
        let mut conn = self.redis.clone();
        assert!(publish(&mut conn, &Scripts::load(), &self.config.redis_prefix, &keys, &meta).await.expect("publish"));
        keys
    }

    /// A hold with an `X-Queue-Pass` header.
    async fn hold_with_pass(&self, user: u32, event: i64, body: Value, pass: &str) -> Answer {
        let auth = format!("Bearer {}", self.token(user));
        let headers = [("authorization", auth.as_str()), ("content-type", "application/json"), ("x-queue-pass", pass)];
        send(self.addr, Method::POST, &format!("/api/events/{event}/holds"), &headers, Some(serde_json::to_vec(&body).expect("json"))).await
    }

    async fn join(&self, user: u32, event: i64) -> Answer {
        call(self.addr, Method::POST, &format!("/api/events/{event}/queue"), Some(&self.token(user)), None).await
    }

    async fn queue(&self, user: u32, event: i64, ticket: &str) -> Answer {
        call(self.addr, Method::GET, &format!("/api/events/{event}/queue/{ticket}"), Some(&self.token(user)), None).await
    }

    /// Joins and reads the status at once: the user's pass (admitted) or `None`.
    async fn pass(&self, user: u32, event: i64) -> Option<String> {
        let joined = self.join(user, event).await;
        assert_eq!(joined.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&joined.body));
        let status = self.queue(user, event, joined.json()["ticket"].as_str().expect("ticket")).await;
        assert_eq!(status.status, StatusCode::OK);
        status.json()["pass"].as_str().map(str::to_owned)
    }

    fn token(&self, user: u32) -> String {
        self.tokens.issue(&user.to_string(), Role::Customer).expect("token")
    }

    async fn hold(&self, user: u32, event: i64, body: Value) -> Answer {
        call(self.addr, Method::POST, &format!("/api/events/{event}/holds"), Some(&self.token(user)), Some(&body)).await
    }
}

/// Waits until the hold `answer` made has lapsed and its deadline bucket
/// has ended, by the clock the scripts read (Redis's, on this host): the
/// deadline is the one in the hold's record, so the wait is as long as it
/// must be, never a guess.
async fn wait_lapsed(app: &App, keys: &EventKeys, answer: &Answer) {
    let id = HoldId::parse(answer.json()["id"].as_str().expect("hold id")).expect("hold id");
    let mut conn = app.redis.clone();
    let rec = read_hold(&mut conn, keys, &id.token).await.expect("read").expect("exists");
    let bucket = stampede_inventory::keys::TIMER_BUCKET_MS;
    let until = (rec.expires_ms + bucket - 1) / bucket * bucket;
    while now_ms() <= until {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The `hold.expired` entries on the event's stream, counted by hold.
async fn expiries(app: &App, keys: &EventKeys) -> HashMap<String, usize> {
    let mut conn = app.redis.clone();
    let entries: redis::streams::StreamRangeReply = conn.xrange_all(keys.stream()).await.expect("xrange");
    let mut expired: HashMap<String, usize> = HashMap::new();
    for e in &entries.ids {
        if e.get::<String>("type").as_deref() == Some("hold.expired") {
            *expired.entry(e.get::<String>("hold").expect("hold")).or_default() += 1;
        }
    }
    expired
}

fn seat(row: u32, n: u32) -> String {
    format!("{SEATED}:{row}:{n}")
}

fn problem(a: &Answer, status: u16, code: &str) {
    assert_eq!(a.status.as_u16(), status, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.header("content-type"), Some("application/problem+json"));
    assert_eq!(a.code(), code);
}

/// An event published with `verified_email_required`: an unverified
/// account (the access token's `email_verified` claim) is refused 403
/// `email_unverified` on every kind of hold, a verified one holds, and an
/// event without it holds for both.
#[tokio::test]
async fn verified_email_required_refuses_unverified_accounts() {
    let app = App::new().await;
    let keys = EventKeys::new(&app.config.redis_prefix, 31);
    let meta = EventMeta {
        sale_ms: 0,
        hold_ms: 60_000,
        limit: 4,
        waiting_room: false,
        verified_email_required: true,
        sections: vec![
            SectionLayout { id: SEATED, seated: Some((1, 10)), capacity: 10, price_cents: 1000 },
            SectionLayout { id: GA, seated: None, capacity: 10, price_cents: 500 },
        ],
    };
    let mut conn = app.redis.clone();
    assert!(publish(&mut conn, &Scripts::load(), &app.config.redis_prefix, &keys, &meta).await.expect("publish"));
    app.publish(32, 1, 10, 10, 60_000, 4, 0).await;
    let token = |user: u32, verified: bool| app.tokens.issue_for_session(&user.to_string(), Role::Customer, "family", verified).expect("token");
    let hold = |user: u32, verified: bool, event: i64, body: Value| {
        let token = token(user, verified);
        async move { call(app.addr, Method::POST, &format!("/api/events/{event}/holds"), Some(&token), Some(&body)).await }
    };
    let bodies = [
        json!({"seats": [seat(1, 1)]}),
        json!({"section_id": GA.to_string(), "quantity": 1}),
        json!({"section_id": SEATED.to_string(), "quantity": 1}),
    ];
    for body in &bodies {
        let refused = hold(1, false, 31, body.clone()).await;
        problem(&refused, 403, "email_unverified");
        assert!(refused.json()["detail"].as_str().expect("detail").contains("verified e-mail"));
    }
    let counts = availability(&mut conn, &keys).await.expect("avail");
    assert_eq!((counts[&SEATED].0, counts[&GA].0), (10, 10), "a refusal takes nothing");
    for (user, body) in [2, 3, 4].into_iter().zip(&bodies) {
        let held = hold(user, true, 31, body.clone()).await;
        assert_eq!(held.status, StatusCode::CREATED, "verified: {body} {}", String::from_utf8_lossy(&held.body));
    }
    // An event without the flag: unverified and verified alike.
    for (user, body) in [5, 6, 7].into_iter().zip(&bodies) {
        assert_eq!(hold(user, false, 32, body.clone()).await.status, StatusCode::CREATED, "no flag, unverified: {body}");
    }
    assert_eq!(hold(8, true, 32, json!({"seats": [seat(1, 9)]})).await.status, StatusCode::CREATED);
    // The refusals are counted under their own outcome.
    let metrics = stampede_common::telemetry::render();
    assert!(metrics.lines().any(|l| l.starts_with("holds_total{outcome=\"email_unverified\"}")), "holds_total has the outcome");
}

#[tokio::test]
async fn hold_read_and_release_own_holds_only() {
    let app = App::new().await;
    app.publish(1, 5, 10, 100, 60_000, 4, 0).await;
    let a = app.hold(1, 1, json!({"seats": [seat(1, 1), seat(1, 2)]})).await;
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.json());
    let hold = a.json();
    assert_eq!(hold["status"], "held");
    assert_eq!(hold["event_id"], "1");
    assert_eq!(hold["seats"], json!([seat(1, 1), seat(1, 2)]));
    assert_eq!(hold["quantity"], 2);
    assert_eq!(hold["amount_cents"], 2000);
    let id = hold["id"].as_str().expect("id").to_owned();
    assert!(id.starts_with("1-") && id.len() == 18, "unguessable id (64 random bits): {id}");
    let expires = stampede_common::clock::parse_rfc3339_ms(hold["expires_at"].as_str().expect("expires_at")).expect("rfc3339");
    assert!(expires > now_ms() + 50_000);

    let path = format!("/api/holds/{id}");
    let mine = call(app.addr, Method::GET, &path, Some(&app.token(1)), None).await;
    assert_eq!(mine.status, StatusCode::OK);
    assert_eq!(mine.json()["id"], hold["id"]);
    problem(&call(app.addr, Method::GET, &path, Some(&app.token(2)), None).await, 404, "not_found");
    problem(&call(app.addr, Method::DELETE, &path, Some(&app.token(2)), None).await, 404, "not_found");
    problem(&call(app.addr, Method::GET, &path, None, None).await, 401, "unauthorized");
    problem(&call(app.addr, Method::GET, "/api/holds/../../etc/passwd", Some(&app.token(1)), None).await, 404, "not_found");
    problem(&call(app.addr, Method::GET, "/api/holds/1-zz", Some(&app.token(1)), None).await, 404, "not_found");

    let taken = app.hold(2, 1, json!({"seats": [seat(1, 3), seat(1, 2)]})).await;
    problem(&taken, 409, "unavailable");
    assert_eq!(taken.json()["seats"], json!([seat(1, 2)]));

    assert_eq!(call(app.addr, Method::DELETE, &path, Some(&app.token(1)), None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(call(app.addr, Method::GET, &path, Some(&app.token(1)), None).await.json()["status"], "released");
    assert_eq!(call(app.addr, Method::DELETE, &path, Some(&app.token(1)), None).await.status, StatusCode::NO_CONTENT, "idempotent");
    let now_free = app.hold(2, 1, json!({"seats": [seat(1, 3), seat(1, 2)]})).await;
    assert_eq!(now_free.status, StatusCode::CREATED, "seats are free at once after DELETE");

    let ga = app.hold(3, 1, json!({"section_id": GA.to_string(), "quantity": 3})).await;
    assert_eq!(ga.status, StatusCode::CREATED);
    assert_eq!(ga.json()["seats"], json!([]));
    assert_eq!(ga.json()["quantity"], 3);
    assert_eq!(ga.json()["section_id"], GA.to_string());
    assert_eq!(ga.json()["amount_cents"], 1500);
}

#[tokio::test]
async fn bad_input_is_a_clear_4xx() {
    let app = App::new().await;
    app.publish(1, 2, 2, 10, 60_000, 4, 0).await;
    app.publish(2, 2, 2, 10, 60_000, 4, now_ms() + 3_600_000).await;
    for (body, status, code) in [
        (json!({"section_id": GA.to_string(), "quantity": 0}), 400, "invalid_quantity"),
        (json!({"section_id": GA.to_string(), "quantity": -2}), 400, "invalid_quantity"),
        (json!({"section_id": GA.to_string(), "quantity": 51}), 400, "invalid_quantity"),
        (json!({"section_id": GA.to_string(), "quantity": 5}), 429, "limit_exceeded"),
        (json!({"section_id": GA.to_string(), "quantity": "2"}), 400, "invalid_body"),
        (json!({"section_id": "999", "quantity": 1}), 400, "unknown_section"),
        (json!({"section_id": "1000000000000000000", "quantity": 1}), 400, "unknown_section"),
        (json!({"section_id": 9_223_372_036_854_775_807_i64, "quantity": 1}), 400, "unknown_section"),
        (json!({"section_id": SEATED.to_string(), "quantity": 0}), 400, "invalid_quantity"),
        (json!({"section_id": SEATED.to_string(), "quantity": 5}), 429, "limit_exceeded"),
        (json!({"section_id": SEATED.to_string(), "quantity": 3}), 409, "unavailable"),
        (json!({"section_id": SEATED.to_string(), "quantity": 1, "adjacent": "no"}), 400, "invalid_body"),
        (json!({"section_id": SEATED.to_string(), "adjacent": false}), 400, "invalid_body"),
        (json!({"seats": [seat(1, 1)], "adjacent": false}), 400, "invalid_body"),
        (json!({"seats": [seat(3, 1)]}), 400, "unknown_seats"),
        (json!({"seats": ["1; DROP TABLE holds"]}), 400, "unknown_seats"),
        (json!({"seats": [seat(1, 1), seat(1, 1)]}), 400, "duplicate_seats"),
        (json!({"seats": []}), 400, "invalid_seats"),
        (json!({"seats": [seat(1, 1)], "section_id": GA.to_string(), "quantity": 1}), 400, "invalid_body"),
        (json!({}), 400, "invalid_body"),
        (json!({"seats": "1:1:1"}), 400, "invalid_body"),
        (json!({"seats": [seat(1, 1)], "extra": true}), 400, "invalid_body"),
    ] {
        let a = app.hold(1, 1, body.clone()).await;
        assert_eq!(a.status.as_u16(), status, "{body} → {}", String::from_utf8_lossy(&a.body));
        assert_eq!(a.code(), code, "{body}");
    }
    let malformed = send(app.addr, Method::POST, "/api/events/1/holds", &[("authorization", &format!("Bearer {}", app.token(1)))], Some(b"{\"seats\":[".to_vec())).await;
    problem(&malformed, 400, "malformed_json");
    problem(&app.hold(1, 2, json!({"seats": [seat(1, 1)]})).await, 403, "not_on_sale");
    problem(&app.hold(1, 3, json!({"seats": [seat(1, 1)]})).await, 404, "not_found");
    problem(&app.hold(1, 0, json!({"seats": [seat(1, 1)]})).await, 404, "not_found");
    let path_junk = call(app.addr, Method::POST, "/api/events/abc/holds", Some(&app.token(1)), Some(&json!({"seats": [seat(1, 1)]}))).await;
    problem(&path_junk, 404, "not_found");
    let anon = call(app.addr, Method::POST, "/api/events/1/holds", None, Some(&json!({"seats": [seat(1, 1)]}))).await;
    problem(&anon, 401, "unauthorized");
    problem(&call(app.addr, Method::PUT, "/api/events/1/holds", Some(&app.token(1)), None).await, 405, "method_not_allowed");
    // Nothing above changed the inventory.
    let mut conn = app.redis.clone();
    let avail = availability(&mut conn, &EventKeys::new(&app.config.redis_prefix, 1)).await.expect("avail");
    assert_eq!(avail[&SEATED].0, 4);
    assert_eq!(avail[&GA].0, 10);
}

#[tokio::test]
async fn idempotency_key_makes_a_retry_return_the_same_hold() {
    let app = App::new().await;
    app.publish(1, 2, 5, 10, 60_000, 4, 0).await;
    let auth = format!("Bearer {}", app.token(1));
    let headers = [("authorization", auth.as_str()), ("content-type", "application/json"), ("idempotency-key", "mobile-retry-7")];
    let body = serde_json::to_vec(&json!({"seats": [seat(1, 1)]})).expect("json");
    let first = send(app.addr, Method::POST, "/api/events/1/holds", &headers, Some(body.clone())).await;
    let again = send(app.addr, Method::POST, "/api/events/1/holds", &headers, Some(body)).await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(first.json()["id"], again.json()["id"]);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    let bad = [("authorization", auth.as_str()), ("idempotency-key", "no spaces allowed")];
    let refused = send(app.addr, Method::POST, "/api/events/1/holds", &bad, Some(b"{\"seats\":[\"21:1:2\"]}".to_vec())).await;
    problem(&refused, 400, "invalid_idempotency_key");
}

/// 64 clients, a 50-seat event, random 1–2 seat holds by many users: no seat
/// is ever in two live holds, and the counters match the seat map.
#[tokio::test]
async fn concurrent_seat_holds_never_double_book() {
    let app = Arc::new(App::new().await);
    let keys = app.publish(1, 5, 10, 1, 600_000, 4, 0).await;
    let mut tasks = Vec::new();
    for client in 0..64u32 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let mut won: Vec<(String, Vec<String>)> = Vec::new();
            for attempt in 0..12u32 {
                let (n, picks) = {
                    let mut rng = rand::rng();
                    let n = rng.random_range(1..=2);
                    let picks: Vec<String> = (0..n).map(|_| seat(rng.random_range(1..=5), rng.random_range(1..=10))).collect();
                    (n, picks)
                };
                if n == 2 && picks[0] == picks[1] {
                    continue;
                }
                let a = app.hold(client * 100 + attempt, 1, json!({"seats": picks})).await;
                match a.status.as_u16() {
                    201 => won.push((a.json()["id"].as_str().expect("id").to_owned(), picks)),
                    409 => assert_eq!(a.code(), "unavailable"),
                    other => panic!("unexpected {other}: {}", String::from_utf8_lossy(&a.body)),
                }
            }
            won
        }));
    }
    let mut owner: HashMap<String, String> = HashMap::new();
    for t in tasks {
        for (hold, seats) in t.await.expect("client") {
            for s in seats {
                if let Some(other) = owner.insert(s.clone(), hold.clone()) {
                    panic!("seat {s} held by both {other} and {hold}");
                }
            }
        }
    }
    assert!(!owner.is_empty());
    let mut conn = app.redis.clone();
    let taken = taken_seats(&mut conn, &keys, SEATED, now_ms()).await.expect("map");
    assert_eq!(taken.len(), owner.len(), "the seat map shows exactly the seats granted");
    let avail = availability(&mut conn, &keys).await.expect("avail");
    assert_eq!(avail[&SEATED].0, 50 - owner.len() as i64);
}

/// General admission under a rush: demand far beyond capacity, and the
/// count ends exactly at zero, never below.
#[tokio::test]
async fn concurrent_general_admission_ends_exactly_at_zero() {
    let app = Arc::new(App::new().await);
    let keys = app.publish(1, 1, 1, 120, 600_000, 4, 0).await;
    let mut tasks = Vec::new();
    for client in 0..64u32 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = 0i64;
            for attempt in 0..40u32 {
                let qty = if attempt % 3 == 0 { 1 } else { rand::rng().random_range(1..=3) };
                let a = app.hold(client * 1000 + attempt, 1, json!({"section_id": GA.to_string(), "quantity": qty})).await;
                match a.status.as_u16() {
                    201 => got += qty,
                    409 => {
                        if a.json()["available"] == 0 {
                            break;
                        }
                    }
                    other => panic!("unexpected {other}: {}", String::from_utf8_lossy(&a.body)),
                }
            }
            got
        }));
    }
    let mut granted = 0;
    for t in tasks {
        granted += t.await.expect("client");
    }
    let mut conn = app.redis.clone();
    let avail = availability(&mut conn, &keys).await.expect("avail");
    assert_eq!(granted, 120, "every place is granted once, none twice");
    assert_eq!(avail[&GA].0, 0);
}

/// One user firing many requests at once never exceeds the limit.
#[tokio::test]
async fn per_user_limit_holds_under_concurrency() {
    let app = Arc::new(App::new().await);
    app.publish(1, 10, 10, 100, 600_000, 4, 0).await;
    let mut tasks = Vec::new();
    for i in 0..48u32 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let body = if i % 2 == 0 {
                json!({"seats": [seat(i / 10 + 1, i % 10 + 1)]})
            } else {
                json!({"section_id": GA.to_string(), "quantity": 1})
            };
            let a = app.hold(7, 1, body).await;
            assert!(a.status == StatusCode::CREATED || a.code() == "limit_exceeded", "{}", String::from_utf8_lossy(&a.body));
            a.status == StatusCode::CREATED
        }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += t.await.expect("task") as i32;
    }
    assert_eq!(ok, 4);
}

/// With the expiry worker stopped, a lapsed hold is still free to others;
/// started later, the worker emits exactly one hold.expired per lapsed hold
/// even with notifications and sweeps both firing.
#[tokio::test]
async fn lazy_expiry_without_the_worker_then_exactly_one_expiry_each() {
    let app = App::new().await;
    let keys = app.publish(1, 2, 5, 10, 400, 6, 0).await;
    let first = app.hold(1, 1, json!({"seats": [seat(1, 1), seat(1, 2)]})).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let ga = app.hold(1, 1, json!({"section_id": GA.to_string(), "quantity": 4})).await;
    assert_eq!(ga.status, StatusCode::CREATED);
    wait_lapsed(&app, &keys, &first).await;
    wait_lapsed(&app, &keys, &ga).await;
    let hold_path = format!("/api/holds/{}", first.json()["id"].as_str().expect("id"));
    assert_eq!(call(app.addr, Method::GET, &hold_path, Some(&app.token(1)), None).await.json()["status"], "expired");
    let second = app.hold(2, 1, json!({"seats": [seat(1, 1), seat(1, 2)]})).await;
    assert_eq!(second.status, StatusCode::CREATED, "a lapsed hold's seats are free with no worker running");
    let ga2 = app.hold(2, 1, json!({"section_id": GA.to_string(), "quantity": 4})).await;
    assert_eq!(ga2.status, StatusCode::CREATED, "and so are its places: {}", String::from_utf8_lossy(&ga2.body));
    // The second holds lapse too.
    wait_lapsed(&app, &keys, &second).await;
    wait_lapsed(&app, &keys, &ga2).await;

    let worker = Arc::new(ExpiryWorker::build(&app.config, &app.reservation, app.redis.clone()));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(worker.clone().run(stop_rx));
    // Extra sweeps racing the worker's own.
    for _ in 0..5 {
        worker.sweep().await.expect("sweep");
    }
    // Until the worker has expired all four, then stopped: anything it
    // appended twice is on the stream by the time it returns.
    let deadline = Instant::now() + Duration::from_secs(10);
    while expiries(&app, &keys).await.len() < 4 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop_tx.send(true);
    running.await.expect("worker");

    let mut conn = app.redis.clone();
    let expired = expiries(&app, &keys).await;
    assert_eq!(expired.len(), 4, "every lapsed hold expired: {expired:?}");
    assert!(expired.values().all(|n| *n == 1), "exactly once each: {expired:?}");
    let avail = availability(&mut conn, &keys).await.expect("avail");
    assert_eq!((avail[&SEATED].0, avail[&GA].0), (10, 10), "counters converge to capacity");
    assert!(taken_seats(&mut conn, &keys, SEATED, 0).await.expect("raw map").is_empty(), "seat map converges");
    assert_eq!(conn.zcard::<_, i64>(keys.deadlines()).await.expect("zcard"), 0);
}

/// The notification path alone (sweeps an hour apart) releases a hold
/// within moments of its timer firing.
#[tokio::test]
async fn keyspace_notifications_prompt_the_release() {
    // Redis announces an expiry when its active-expiry cycle samples the key,
    // so with thousands of other TTL keys (the rest of the suite's holds) in
    // the same database the notification can lag by many seconds: this test
    // keeps its keys in a database of their own. (In production the
    // sweeper bounds that lag; notifications only make release prompter.)
    let mut config = test_config(&[]).await;
    if store::is_cluster_url(&config.redis_url) {
        return keyspace_notifications_from_every_primary_prompt_the_release(config).await;
    }
    let server = config.redis_url.rsplit_once('/').map_or(config.redis_url.as_str(), |(server, _db)| server);
    config.redis_url = format!("{server}/13");
    let mut reservation = ReservationConfig::from_env(&config.env).expect("reservation config");
    reservation.expiry_sweep_ms = 3_600_000;
    let mut conn = store::connect(&config.redis_url).await.expect("redis db 13");
    let _: () = redis::cmd("FLUSHDB").query_async(&mut conn).await.expect("flush db 13");
    let app = App::with(config, reservation).await;
    let keys = app.publish(1, 1, 5, 1, 300, 4, 0).await;
    let worker = Arc::new(ExpiryWorker::build(&app.config, &app.reservation, app.redis.clone()));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(worker.run(stop_rx));
    // Subscribed: a client of database 13 (only this test uses it) with a
    // pattern subscription. (The first sweep ran at once.)
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let clients: String = redis::cmd("CLIENT").arg("LIST").query_async(&mut conn).await.expect("client list");
        if clients.lines().any(|c| c.split(' ').any(|f| f == "db=13") && c.split(' ').any(|f| f.starts_with("psub=") && f != "psub=0")) {
            break;
        }
        assert!(Instant::now() < deadline, "the expiry worker never subscribed: {clients}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let held: HashSet<u32> = [1, 2].into();
    for u in &held {
        assert_eq!(app.hold(*u, 1, json!({"seats": [seat(1, *u)]})).await.status, StatusCode::CREATED);
    }
    let mut conn = app.redis.clone();
    let mut converged = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if availability(&mut conn, &keys).await.expect("avail")[&SEATED].0 == 5 {
            converged = true;
            break;
        }
    }
    let _ = stop_tx.send(true);
    running.await.expect("worker");
    assert!(converged, "notifications released both holds without a sweep");
}

/// On a Redis Cluster (a cluster has one database, so the test's keys
/// share it with the rest of the suite's): a hold on every shard is
/// released by its primary's notification, with sweeps an hour apart; the
/// worker has a pattern subscription on every primary.
async fn keyspace_notifications_from_every_primary_prompt_the_release(config: Config) {
    let mut reservation = ReservationConfig::from_env(&config.env).expect("reservation config");
    reservation.expiry_sweep_ms = 3_600_000;
    let nodes = cluster_primaries(&config.redis_url).await;
    assert_eq!(nodes.len(), 3, "the local cluster has three primaries: {nodes:?}");
    let app = App::with(config, reservation).await;
    // One event on each primary: the shard its hash tag's slot falls on.
    let mut events = Vec::new();
    let mut probe = single(&nodes[0].0).await;
    for (node, ranges) in &nodes {
        let mut found = None;
        for e in 1..200i64 {
            let key = EventKeys::new(&app.config.redis_prefix, e).meta();
            let slot: i64 = redis::cmd("CLUSTER").arg("KEYSLOT").arg(&key).query_async(&mut probe).await.expect("keyslot");
            if ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&slot)) {
                found = Some(e);
                break;
            }
        }
        events.push(found.unwrap_or_else(|| panic!("no event on the shard of {node}")));
    }
    let worker = Arc::new(ExpiryWorker::build(&app.config, &app.reservation, app.redis.clone()));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(worker.run(stop_rx));
    let deadline = Instant::now() + Duration::from_secs(10);
    for (node, _) in &nodes {
        let mut conn = single(node).await;
        loop {
            let clients: String = redis::cmd("CLIENT").arg("LIST").query_async(&mut conn).await.expect("client list");
            if clients.lines().any(|c| c.split(' ').any(|f| f.starts_with("psub=") && f != "psub=0")) {
                break;
            }
            assert!(Instant::now() < deadline, "no subscriber on the primary {node}: {clients}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let mut keys = Vec::new();
    for event in &events {
        keys.push(app.publish(*event, 1, 5, 1, 300, 4, 0).await);
        assert_eq!(app.hold(1, *event, json!({"seats": [seat(1, 1)]})).await.status, StatusCode::CREATED);
    }
    let mut conn = app.redis.clone();
    // Redis announces an expiry when it finds the key lapsed: its sampler
    // may take seconds among the suite's other keys with a TTL (a cluster
    // has one database to share), a read finds it at once. So once the
    // timers have lapsed, the test reads them: each primary announces its
    // own, and only the worker's subscriptions carry that to a release.
    tokio::time::sleep(Duration::from_millis(700)).await;
    for k in &keys {
        let buckets: Vec<i64> = conn.zrange(k.deadlines(), 0, -1).await.expect("deadlines");
        for b in buckets {
            let _: bool = conn.exists(k.timer(b)).await.expect("exists");
        }
    }
    let mut converged = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut all = true;
        for k in &keys {
            all &= availability(&mut conn, k).await.expect("avail")[&SEATED].0 == 5;
        }
        if all {
            converged = true;
            break;
        }
    }
    let _ = stop_tx.send(true);
    running.await.expect("worker");
    assert!(converged, "notifications from every primary released the holds of events {events:?} without a sweep");
}

/// The primaries of the cluster behind `url` (a seed list): each one's
/// address and slot ranges.
async fn cluster_primaries(url: &str) -> Vec<(String, Vec<(i64, i64)>)> {
    let seed = store::cluster_seeds(url).expect("a cluster")[0].clone();
    let mut conn = single(&seed).await;
    let nodes: String = redis::cmd("CLUSTER").arg("NODES").query_async(&mut conn).await.expect("cluster nodes");
    let mut out = Vec::new();
    for line in nodes.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        if f.len() < 9 || !f[2].contains("master") || f[2].contains("fail") {
            continue;
        }
        let addr = f[1].split('@').next().unwrap_or_default();
        let ranges = f[8..]
            .iter()
            .filter_map(|r| match r.split_once('-') {
                Some((lo, hi)) => Some((lo.parse().ok()?, hi.parse().ok()?)),
                None => r.parse().ok().map(|s| (s, s)),
            })
            .collect();
        out.push((format!("redis://{addr}/"), ranges));
    }
    out
}

/// A connection to one node (not the cluster).
async fn single(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url).expect("url").get_multiplexed_async_connection().await.expect("node")
}

/// Joining hands out places first come, first served, one ticket per user;
/// a ticket is readable by its user only.
#[tokio::test]
async fn waiting_room_join_is_idempotent_fifo_and_private() {
    let app = App::new().await;
    app.publish_wr(1, now_ms() + 3_600_000).await; // nobody is admitted before the sale
    app.publish(2, 1, 2, 2, 60_000, 4, 0).await;

    let first = app.join(1, 1).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&first.body));
    assert_eq!(first.json()["position"], 1);
    let ticket = first.json()["ticket"].as_str().expect("ticket").to_owned();
    assert_eq!(first.header("location"), Some(format!("/api/events/1/queue/{ticket}").as_str()));
    for (user, position) in [(2, 2), (3, 3)] {
        let a = app.join(user, 1).await;
        assert_eq!(a.status, StatusCode::CREATED);
        assert_eq!(a.json()["position"], position, "first come, first served");
        assert_ne!(a.json()["ticket"], ticket.as_str());
    }
    let again = app.join(1, 1).await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!((again.json()["ticket"].as_str(), again.json()["position"].as_i64()), (Some(ticket.as_str()), Some(1)), "joining twice keeps the place");

    let status = app.queue(1, 1, &ticket).await;
    assert_eq!(status.status, StatusCode::OK);
    assert_eq!(status.json(), json!({"position": 1, "admitted": false, "sold_out": false}));
    problem(&app.queue(2, 1, &ticket).await, 404, "not_found");
    problem(&app.queue(1, 1, "0123456789abcdef0123456789abcdef").await, 404, "not_found");
    problem(&app.queue(1, 1, "a.b").await, 404, "not_found");
    problem(&app.queue(1, 2, &ticket).await, 404, "not_found");
    problem(&app.queue(1, 3, &ticket).await, 404, "not_found");

    problem(&app.join(1, 2).await, 409, "no_waiting_room");
    problem(&app.join(1, 3).await, 404, "not_found");
    problem(&call(app.addr, Method::POST, "/api/events/abc/queue", Some(&app.token(1)), None).await, 404, "not_found");
    problem(&call(app.addr, Method::POST, "/api/events/1/queue", None, None).await, 401, "unauthorized");
    problem(&call(app.addr, Method::GET, &format!("/api/events/1/queue/{ticket}"), None, None).await, 401, "unauthorized");
    problem(&call(app.addr, Method::GET, "/api/events/1/queue", Some(&app.token(1)), None).await, 405, "method_not_allowed");
    problem(&call(app.addr, Method::DELETE, &format!("/api/events/1/queue/{ticket}"), Some(&app.token(1)), None).await, 405, "method_not_allowed");
    // Before the sale, holds are refused for that reason first.
    problem(&app.hold(1, 1, json!({"seats": [seat(1, 1)]})).await, 403, "not_on_sale");
}

/// Admission follows the configured rate from the sale's start: `initial`
/// at once, then `per_second` more each second — never sooner.
#[tokio::test]
async fn admission_follows_the_rate_from_the_sale_start() {
    let config = test_config(&[]).await;
    let mut reservation = ReservationConfig::from_env(&config.env).expect("reservation config");
    reservation.queue_initial_admit = 1;
    reservation.queue_admit_per_second = 1;
    let app = App::with(config, reservation).await;
    let sale = now_ms();
    app.publish_wr(1, sale).await;
    let mut tickets = Vec::new();
    for user in 1..=3 {
        let a = app.join(user, 1).await;
        assert_eq!(a.json()["position"], user);
        tickets.push(a.json()["ticket"].as_str().expect("ticket").to_owned());
    }
    let first = app.queue(1, 1, &tickets[0]).await.json();
    assert_eq!((first["position"].as_i64(), first["admitted"].as_bool()), (Some(0), Some(true)), "the first place is admitted at once: {first}");
    let pass = first["pass"].as_str().expect("a pass once admitted").to_owned();

    // Position 3 is admitted once 1 + 1/s × elapsed ≥ 3: two seconds after the sale starts.
    let mut waited = false;
    loop {
        let before = now_ms() - sale;
        let a = app.queue(3, 1, &tickets[2]).await.json();
        let after = now_ms() - sale;
        if a["admitted"] == true {
            assert!(after >= 1_950, "admitted {after} ms after the sale start, before the rate allows");
            assert_eq!(a["position"], 0);
            assert!(a["pass"].as_str().is_some());
            break;
        }
        assert!(before < 2_050, "still waiting {before} ms after the sale start: {a}");
        assert_eq!((a["position"].as_i64(), a.get("pass")), (Some(3), None));
        waited = true;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert!(waited, "position 3 had to wait");
    assert_eq!(app.queue(2, 1, &tickets[1]).await.json()["admitted"], true, "and so has position 2 by now");

    let held = app.hold_with_pass(1, 1, json!({"seats": [seat(1, 1)]}), &pass).await;
    assert_eq!(held.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&held.body));
}

/// A hold on a waiting-room event needs the pass issued to that user for
/// that event, untampered and unexpired; a refusal changes nothing.
#[tokio::test]
async fn a_queue_pass_is_bound_to_its_user_event_and_time() {
    let app = App::new().await;
    let keys = app.publish_wr(1, 0).await;
    app.publish_wr(2, 0).await;
    let seats = json!({"seats": [seat(1, 1)]});
    let ga = json!({"section_id": GA.to_string(), "quantity": 2});
    problem(&app.hold(1, 1, seats.clone()).await, 403, "queue_pass_required");
    problem(&app.hold(1, 1, ga.clone()).await, 403, "queue_pass_required");

    let p1 = app.pass(1, 1).await.expect("admitted at once (initial admission)");
    let p2 = app.pass(1, 2).await.expect("admitted");
    let minted = Passes::new(&app.config.jwt);
    let mut tampered = p1.clone();
    let last = if tampered.pop() == Some('0') { '1' } else { '0' };
    tampered.push(last);
    for (user, pass, why) in [
        (2, p1.as_str(), "another user's pass"),
        (1, p2.as_str(), "a pass for another event"),
        (1, tampered.as_str(), "a tampered pass"),
        (1, &minted.issue("1", 1, now_ms() - 1_000), "an expired pass"),
        (1, "garbage", "junk"),
    ] {
        let a = app.hold_with_pass(user, 1, seats.clone(), pass).await;
        assert_eq!((a.status.as_u16(), a.code()), (403, "queue_pass_required".to_owned()), "{why}");
    }
    let mut conn = app.redis.clone();
    let avail = availability(&mut conn, &keys).await.expect("avail");
    assert_eq!((avail[&SEATED].0, avail[&GA].0), (10, 10), "refused holds changed nothing");

    for (event, body, pass) in [(1, seats.clone(), &p1), (1, ga, &p1), (2, seats, &p2)] {
        let a = app.hold_with_pass(1, event, body, pass).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&a.body));
    }
    let fresh = minted.issue("1", 1, now_ms() + 60_000);
    assert_eq!(app.hold_with_pass(1, 1, json!({"seats": [seat(1, 2)]}), &fresh).await.status, StatusCode::CREATED);

    let metrics = call(app.addr, Method::GET, "/metrics", None, None).await;
    let text = String::from_utf8_lossy(&metrics.body);
    for line in ["holds_total{outcome=\"queue_pass_required\"}", "# HELP queue_joins_total", "# HELP queue_admitted_total", "queue_joins_total ", "queue_admitted_total "] {
        assert!(text.contains(line), "/metrics lacks {line}");
    }
}

/// An event without a waiting room ignores `X-Queue-Pass`, valid or not.
#[tokio::test]
async fn events_without_a_waiting_room_ignore_the_pass_header() {
    let app = App::new().await;
    app.publish(1, 1, 5, 5, 60_000, 4, 0).await;
    let valid_elsewhere = Passes::new(&app.config.jwt).issue("1", 9, now_ms() + 60_000);
    for (n, pass) in [(1, "garbage"), (2, valid_elsewhere.as_str()), (3, "")] {
        let a = app.hold_with_pass(1, 1, json!({"seats": [seat(1, n)]}), pass).await;
        assert_eq!(a.status, StatusCode::CREATED, "{pass}: {}", String::from_utf8_lossy(&a.body));
    }
    assert_eq!(app.hold(1, 1, json!({"seats": [seat(1, 4)]})).await.status, StatusCode::CREATED);
}

/// The seats a created hold names, as `(row, number)` of SEATED.
fn seats_of(a: &Answer) -> Vec<(u32, u32)> {
    a.json()["seats"]
        .as_array()
        .expect("seats")
        .iter()
        .map(|s| {
            let s = s.as_str().expect("seat id");
            let mut it = s.split(':');
            assert_eq!(it.next(), Some(SEATED.to_string().as_str()), "{s}");
            (it.next().and_then(|r| r.parse().ok()).expect("row"), it.next().and_then(|n| n.parse().ok()).expect("number"))
        })
        .collect()
}

fn best(quantity: i64) -> Value {
    json!({"section_id": SEATED.to_string(), "quantity": quantity})
}

/// The seat index marks exactly the seats of the seat map.
async fn assert_index(app: &App, keys: &EventKeys, per_row: u32) {
    let mut conn = app.redis.clone();
    let occ: Option<Vec<u8>> = conn.get(keys.occ(SEATED)).await.expect("occ");
    let occ = occ.unwrap_or_default();
    let taken = taken_seats(&mut conn, keys, SEATED, 0).await.expect("raw map");
    let marked: HashSet<(u32, u32)> =
        occ.iter().enumerate().filter(|(_, b)| **b == 1).map(|(i, _)| (i as u32 / per_row + 1, i as u32 % per_row + 1)).collect();
    assert!(occ.iter().all(|b| *b <= 1));
    assert_eq!(marked, taken.keys().copied().collect::<HashSet<_>>(), "the seat index is the seat map");
}

/// A hold a buyer got: its id, the buyer and its seats.
type Won = (String, String, Vec<(u32, u32)>);

/// 64 buyers at once asking for 2–4 best-available seats, then for single
/// seats until none is left: no seat is in two holds, every block is
/// adjacent, every seat is held once and, paid for, sold once; then 409.
#[tokio::test]
async fn concurrent_best_available_buyers_never_share_a_seat_and_sell_out_exactly() {
    let app = Arc::new(App::new().await);
    let (rows, per_row) = (8u32, 20u32);
    let keys = app.publish(1, rows, per_row, 1, 600_000, 4, 0).await;
    let mut tasks = Vec::new();
    for client in 0..64u32 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let mut won: Vec<Won> = Vec::new();
            let (mut attempt, mut refused) = (0u32, 0);
            // Blocks of 2–4 while any may fit, then single seats.
            for single in [false, true] {
                loop {
                    attempt += 1;
                    let qty = if single { 1 } else { rand::rng().random_range(2..=4) };
                    let user = client * 1000 + attempt;
                    let a = app.hold(user, 1, best(qty)).await;
                    match a.status.as_u16() {
                        201 => {
                            refused = 0;
                            let seats = seats_of(&a);
                            assert_eq!(seats.len() as i64, qty);
                            assert!(a.json()["section_id"].is_null());
                            for w in seats.windows(2) {
                                assert!(w[1].0 == w[0].0 && w[1].1 == w[0].1 + 1, "a block of adjacent seats: {seats:?}");
                            }
                            won.push((a.json()["id"].as_str().expect("id").to_owned(), user.to_string(), seats));
                        }
                        409 => {
                            assert_eq!(a.code(), "unavailable");
                            assert_eq!(a.header("content-type"), Some("application/problem+json"));
                            refused += 1;
                            if a.json()["available"] == 0 || (!single && refused >= 3) {
                                break;
                            }
                            // A single seat is refused only when none is left.
                            assert!(refused < 50, "single seats refused {refused} times while {} are available", a.json()["available"]);
                        }
                        other => panic!("unexpected {other}: {}", String::from_utf8_lossy(&a.body)),
                    }
                }
            }
            won
        }));
    }
    let mut owner: HashMap<(u32, u32), String> = HashMap::new();
    let mut holds = Vec::new();
    for t in tasks {
        for (hold, user, seats) in t.await.expect("client") {
            for s in &seats {
                if let Some(other) = owner.insert(*s, hold.clone()) {
                    panic!("seat {s:?} held by both {other} and {hold}");
                }
            }
            holds.push((hold, user));
        }
    }
    let capacity = (rows * per_row) as usize;
    assert_eq!(owner.len(), capacity, "every seat is held");
    let mut conn = app.redis.clone();
    assert_eq!(availability(&mut conn, &keys).await.expect("avail")[&SEATED], (0, 0));
    assert_index(&app, &keys, per_row).await;

    // Paid for: every seat sold once.
    let scripts = Scripts::load();
    for (i, (hold, user)) in holds.iter().enumerate() {
        let token = HoldId::parse(hold).expect("hold id").token;
        let order = format!("ord{i}");
        let pay = Payment { order: &order, payment: &format!("pay{i}"), charge: &format!("ch{i}"), method: "card" };
        let out = confirm(&mut conn, &scripts, &keys, &token, user, &pay).await.expect("confirm");
        assert!(matches!(out, ConfirmOutcome::Confirmed { .. }), "{out:?}");
    }
    assert_eq!(availability(&mut conn, &keys).await.expect("avail")[&SEATED], (0, capacity as i64));
    let taken = taken_seats(&mut conn, &keys, SEATED, now_ms()).await.expect("map");
    assert_eq!(taken.len(), capacity);
    assert!(taken.values().all(|s| *s == stampede_inventory::SeatStatus::Sold));
    assert_index(&app, &keys, per_row).await;
    for adjacent in [true, false] {
        let a = app.hold(99_999, 1, json!({"section_id": SEATED.to_string(), "quantity": 1, "adjacent": adjacent})).await;
        problem(&a, 409, "unavailable");
        assert_eq!(a.json()["available"], 0);
    }
}

/// Best available through HTTP: the centre of row 1 first, `adjacent:
/// false` across fragments, owner-only reads, idempotency, the limit, and
/// a release that puts the seats back first in line.
#[tokio::test]
async fn best_available_holds_over_http() {
    let app = App::new().await;
    let keys = app.publish(1, 3, 10, 10, 60_000, 4, 0).await;
    let first = app.hold(1, 1, best(2)).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&first.body));
    assert_eq!(seats_of(&first), vec![(1, 5), (1, 6)]);
    let body = first.json();
    assert_eq!((body["quantity"].as_i64(), body["amount_cents"].as_i64(), body["status"].as_str()), (Some(2), Some(2000), Some("held")));
    let path = first.header("location").expect("location").to_owned();
    let read = call(app.addr, Method::GET, &path, Some(&app.token(1)), None).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(seats_of(&read), vec![(1, 5), (1, 6)]);
    problem(&call(app.addr, Method::GET, &path, Some(&app.token(2)), None).await, 404, "not_found");

    // Row 1 is left with 1–4 and 7–10; user 2 takes 3 and 8.
    assert_eq!(app.hold(2, 1, json!({"seats": [seat(1, 3), seat(1, 8)]})).await.status, StatusCode::CREATED);
    let scattered = app.hold(3, 1, json!({"section_id": SEATED.to_string(), "quantity": 3, "adjacent": false})).await;
    assert_eq!(seats_of(&scattered), vec![(1, 4), (1, 7), (1, 2)], "nearest the centre of row 1, wherever they are");
    let block = app.hold(4, 1, best(4)).await;
    assert_eq!(seats_of(&block), vec![(2, 4), (2, 5), (2, 6), (2, 7)], "row 1 has no 4 together left");

    // Idempotency: the retry answers the same hold, seats and all.
    let auth = format!("Bearer {}", app.token(5));
    let headers = [("authorization", auth.as_str()), ("content-type", "application/json"), ("idempotency-key", "best-1")];
    let body = serde_json::to_vec(&best(3)).expect("json");
    let once = send(app.addr, Method::POST, "/api/events/1/holds", &headers, Some(body.clone())).await;
    let again = send(app.addr, Method::POST, "/api/events/1/holds", &headers, Some(body)).await;
    assert_eq!((once.status, again.status), (StatusCode::CREATED, StatusCode::CREATED));
    assert_eq!(once.json()["id"], again.json()["id"]);
    assert_eq!(seats_of(&once), seats_of(&again));
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    // The limit (4) counts them.
    problem(&app.hold(5, 1, best(2)).await, 429, "limit_exceeded");

    // Released, the centre of row 1 is the best again.
    let delete = call(app.addr, Method::DELETE, &path, Some(&app.token(1)), None).await;
    assert_eq!(delete.status, StatusCode::NO_CONTENT);
    assert_eq!(seats_of(&app.hold(6, 1, best(2)).await), vec![(1, 5), (1, 6)]);
    let mut conn = app.redis.clone();
    assert_eq!(availability(&mut conn, &keys).await.expect("avail")[&SEATED].0, 30 - 2 - 2 - 3 - 4 - 3);
    assert_index(&app, &keys, 10).await;
}

/// A lapsed hold's seats are held again by best available with no expiry
/// worker running, counted once.
#[tokio::test]
async fn best_available_reuses_a_lapsed_holds_seats() {
    let app = App::new().await;
    // Holds of a second: long enough that none lapses before the row is
    // seen full on a busy machine.
    let keys = app.publish(1, 1, 10, 1, 1_000, 4, 0).await;
    let first = app.hold(1, 1, best(4)).await;
    assert_eq!(seats_of(&first), vec![(1, 4), (1, 5), (1, 6), (1, 7)]);
    let second = app.hold(2, 1, best(3)).await;
    assert_eq!(second.status, StatusCode::CREATED);
    let third = app.hold(3, 1, best(3)).await;
    assert_eq!(third.status, StatusCode::CREATED);
    problem(&app.hold(4, 1, best(1)).await, 409, "unavailable");
    for lapsing in [&first, &second, &third] {
        wait_lapsed(&app, &keys, lapsing).await;
    }
    let mut conn = app.redis.clone();
    let _: () = conn.hset(keys.meta(), "hold_ms", 60_000).await.expect("hset");
    // Four seats: hold_best.lua ends lapsed holds bucket by bucket until as
    // many holds as seats wanted are ended, so asking for more seats than
    // there are lapsed holds ends all three, however their deadlines fall
    // into buckets (asking for two could end two and leave one counted).
    let again = app.hold(4, 1, best(4)).await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&again.body));
    assert_eq!(seats_of(&again), vec![(1, 4), (1, 5), (1, 6), (1, 7)]);
    assert_eq!(availability(&mut conn, &keys).await.expect("avail")[&SEATED].0, 6);
    assert_index(&app, &keys, 10).await;
}
