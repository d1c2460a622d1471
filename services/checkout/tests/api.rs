//! The checkout rows of API.md against a real Redis and Postgres: holds made
//! through the reservation service, paid through checkout.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::{Method, StatusCode};
use redis::AsyncCommands;
use serde_json::{Value, json};
use stampede_checkout::{CheckoutService, MockGateway};
use stampede_common::Config;
use stampede_common::clock::now_ms;
use stampede_common::store::{self, Redis};
use stampede_common::testkit::client::{Answer, call, send};
use stampede_common::testkit::{spawn, test_config};
use stampede_common::token::{Role, Tokens};
use stampede_inventory::{EventKeys, EventMeta, Scripts, SeatStatus, SectionLayout, availability, publish, taken_seats};
use stampede_reservation::ReservationService;

const SEATED: i64 = 31;
const GA: i64 = 32;

struct App {
    reservation: SocketAddr,
    checkout: SocketAddr,
    tokens: Arc<Tokens>,
    config: Config,
    redis: Redis,
    gateway: Arc<MockGateway>,
    keys: EventKeys,
}

impl App {
    /// Services with a mock gateway of `latency`, and event 1 (5 x 4 seats
    /// at 2500, 50 GA places at 1000) holding for `hold_ms`, limit `limit`.
    async fn new(latency_ms: u64, hold_ms: i64, limit: i64) -> Self {
        let config = test_config().await;
        let redis = store::connect(&config.redis_url).await.expect("redis");
        let db = stampede_common::db::pool(&config.database_url, 4).expect("pool");
        let tokens = Arc::new(Tokens::new(&config.jwt, 3600));
        let gateway = Arc::new(MockGateway::new(Duration::from_millis(latency_ms), 0.0));
        let reservation = spawn(ReservationService::build(&config, redis.clone(), tokens.clone())).await;
        let checkout = spawn(CheckoutService::build(&config, db, redis.clone(), tokens.clone(), gateway.clone())).await;
        let keys = EventKeys::new(&config.redis_prefix, 1);
        let meta = EventMeta {
            sale_ms: 0,
            hold_ms,
            limit,
            waiting_room: false,
            sections: vec![
                SectionLayout { id: SEATED, seated: Some((5, 4)), capacity: 20, price_cents: 2500 },
                SectionLayout { id: GA, seated: None, capacity: 50, price_cents: 1000 },
            ],
        };
        let mut conn = redis.clone();
        publish(&mut conn, &Scripts::load(), &config.redis_prefix, &keys, &meta).await.expect("publish");
        Self { reservation, checkout, tokens, config, redis, gateway, keys }
    }

    fn token(&self, user: u32) -> String {
        self.tokens.issue(&user.to_string(), Role::Customer).expect("token")
    }

    async fn hold(&self, user: u32, body: Value) -> String {
        let a = call(self.reservation, Method::POST, "/api/events/1/holds", Some(&self.token(user)), Some(&body)).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&a.body));
        a.json()["id"].as_str().expect("id").to_owned()
    }

    async fn pay(&self, user: u32, hold: &str, key: Option<&str>, method: &str) -> Answer {
        let auth = format!("Bearer {}", self.token(user));
        let mut headers = vec![("authorization", auth.as_str()), ("content-type", "application/json")];
        if let Some(k) = key {
            headers.push(("idempotency-key", k));
        }
        let body = serde_json::to_vec(&json!({"payment_method": method})).expect("json");
        send(self.checkout, Method::POST, &format!("/api/holds/{hold}/payment"), &headers, Some(body)).await
    }

    async fn get(&self, addr: SocketAddr, user: u32, path: &str) -> Answer {
        call(addr, Method::GET, path, Some(&self.token(user)), None).await
    }

    async fn stream_types(&self) -> Vec<String> {
        let mut conn = self.redis.clone();
        let r: redis::streams::StreamRangeReply = conn.xrange_all(self.keys.stream()).await.expect("xrange");
        r.ids.iter().map(|e| e.get::<String>("type").unwrap_or_default()).collect()
    }
}

fn seat(row: u32, n: u32) -> String {
    format!("{SEATED}:{row}:{n}")
}

fn problem(a: &Answer, status: u16, code: &str) {
    assert_eq!(a.status.as_u16(), status, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.header("content-type"), Some("application/problem+json"));
    assert_eq!(a.code(), code);
}

#[tokio::test]
async fn pay_confirms_sells_the_seats_and_the_order_is_readable_at_once() {
    let app = App::new(0, 60_000, 4).await;
    let hold = app.hold(1, json!({"seats": [seat(1, 1), seat(1, 2)]})).await;
    let paid = app.pay(1, &hold, Some("k1"), "pm_card_visa").await;
    assert_eq!(paid.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&paid.body));
    let body = paid.json();
    assert_eq!(body["order"]["status"], "confirmed");
    assert_eq!(body["order"]["seats"], json!([seat(1, 1), seat(1, 2)]));
    assert_eq!(body["order"]["amount_cents"], 5000);
    assert_eq!(body["payment"]["status"], "captured");
    assert_eq!(body["payment"]["amount_cents"], 5000);
    let order_id = body["order"]["id"].as_str().expect("order id");

    let read = app.get(app.checkout, 1, &format!("/api/orders/{order_id}")).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.json()["seats"], json!([seat(1, 1), seat(1, 2)]));
    assert_eq!(read.json()["payment"]["status"], "captured");
    let list = app.get(app.checkout, 1, "/api/orders").await;
    assert_eq!(list.json()["orders"][0]["id"], order_id);
    problem(&app.get(app.checkout, 2, &format!("/api/orders/{order_id}")).await, 404, "not_found");
    assert_eq!(app.get(app.checkout, 2, "/api/orders").await.json()["orders"], json!([]));
    problem(&app.get(app.checkout, 1, "/api/orders/1-nothere").await, 404, "not_found");

    let mut conn = app.redis.clone();
    let taken = taken_seats(&mut conn, &app.keys, SEATED, now_ms()).await.expect("map");
    assert_eq!(taken[&(1, 1)], SeatStatus::Sold);
    assert_eq!(taken[&(1, 2)], SeatStatus::Sold);
    let avail = availability(&mut conn, &app.keys).await.expect("avail");
    assert_eq!(avail[&SEATED], (18, 2), "available drops, sold rises");
    let h = app.get(app.reservation, 1, &format!("/api/holds/{hold}")).await;
    assert_eq!(h.json()["status"], "confirmed");
    problem(&call(app.reservation, Method::DELETE, &format!("/api/holds/{hold}"), Some(&app.token(1)), None).await, 409, "already_confirmed");
    let types = app.stream_types().await;
    assert_eq!(types, ["hold.created", "order.confirmed", "payment.captured"]);

    // GA works the same way.
    let ga = app.hold(3, json!({"section_id": GA.to_string(), "quantity": 3})).await;
    assert_eq!(app.pay(3, &ga, Some("k1"), "pm_card_visa").await.status, StatusCode::CREATED);
    let avail = availability(&mut conn, &app.keys).await.expect("avail");
    assert_eq!(avail[&GA], (47, 3));
}

#[tokio::test]
async fn retries_replay_and_a_paid_hold_is_not_charged_again() {
    let app = App::new(0, 60_000, 4).await;
    let hold = app.hold(1, json!({"seats": [seat(2, 1)]})).await;
    problem(&app.pay(1, &hold, None, "pm_card_visa").await, 400, "idempotency_key_required");
    problem(&app.pay(1, &hold, Some("bad key!"), "pm_card_visa").await, 400, "invalid_idempotency_key");
    let first = app.pay(1, &hold, Some("k1"), "pm_card_visa").await;
    let again = app.pay(1, &hold, Some("k1"), "pm_card_visa").await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(first.body, again.body, "the same key answers the same body");
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    problem(&app.pay(1, &hold, Some("k2"), "pm_card_visa").await, 409, "already_paid");
    assert_eq!(app.gateway.charges().len(), 1, "charged once");
    // A key is bound to its hold.
    let other = app.hold(1, json!({"seats": [seat(2, 2)]})).await;
    problem(&app.pay(1, &other, Some("k1"), "pm_card_visa").await, 409, "idempotency_key_reused");
    // Someone else's hold is not there.
    problem(&app.pay(2, &other, Some("x"), "pm_card_visa").await, 404, "not_found");
    problem(&app.pay(1, "nonsense", Some("x"), "pm_card_visa").await, 404, "not_found");
    let wrong = send(app.checkout, Method::POST, &format!("/api/holds/{other}/payment"),
        &[("authorization", &format!("Bearer {}", app.token(1))), ("idempotency-key", "k9")], Some(b"{\"payment_method\": 7}".to_vec())).await;
    problem(&wrong, 400, "invalid_body");
}

#[tokio::test]
async fn ten_concurrent_identical_requests_charge_once() {
    let app = Arc::new(App::new(150, 60_000, 4).await);
    let hold = app.hold(1, json!({"seats": [seat(3, 1), seat(3, 2)]})).await;
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (app, hold) = (app.clone(), hold.clone());
        tasks.push(tokio::spawn(async move { app.pay(1, &hold, Some("same-key"), "pm_card_visa").await }));
    }
    let mut bodies = Vec::new();
    for t in tasks {
        let a = t.await.expect("task");
        assert_eq!(a.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&a.body));
        bodies.push(a.body);
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "every answer is the first one");
    assert_eq!(app.gateway.charges().len(), 1);
    assert_eq!(app.stream_types().await.iter().filter(|t| *t == "payment.captured").count(), 1);
}

#[tokio::test]
async fn a_decline_keeps_the_hold() {
    let app = App::new(0, 60_000, 4).await;
    let hold = app.hold(1, json!({"seats": [seat(4, 1)]})).await;
    let declined = app.pay(1, &hold, Some("d1"), "pm_card_declined").await;
    problem(&declined, 402, "declined");
    assert_eq!(app.pay(1, &hold, Some("d1"), "pm_card_declined").await.body, declined.body, "replayed");
    assert_eq!(app.get(app.reservation, 1, &format!("/api/holds/{hold}")).await.json()["status"], "held");
    assert!(app.gateway.charges().is_empty());
    assert_eq!(app.pay(1, &hold, Some("d2"), "pm_card_visa").await.status, StatusCode::CREATED);
}

#[tokio::test]
async fn a_hold_that_lapses_during_a_slow_payment_is_refunded() {
    let app = App::new(900, 400, 4).await;
    let hold = app.hold(1, json!({"seats": [seat(5, 1)]})).await;
    let late = app.pay(1, &hold, Some("slow"), "pm_card_visa").await;
    problem(&late, 410, "hold_expired");
    let charges = app.gateway.charges();
    assert_eq!(charges.len(), 1);
    assert!(charges[0].refunded, "the late charge was refunded");
    let types = app.stream_types().await;
    assert_eq!(types, ["hold.created", "payment.refunded"]);
    // The seat is anyone's again, and an expired hold is never charged.
    let _again = app.hold(2, json!({"seats": [seat(5, 1)]})).await;
    problem(&app.pay(1, &hold, Some("after"), "pm_card_visa").await, 410, "hold_expired");
    assert_eq!(app.gateway.charges().len(), 1);
}

#[tokio::test]
async fn the_per_user_limit_counts_confirmed_orders() {
    let app = App::new(0, 60_000, 3).await;
    let hold = app.hold(1, json!({"seats": [seat(1, 3), seat(1, 4)]})).await;
    assert_eq!(app.pay(1, &hold, Some("k"), "pm_card_visa").await.status, StatusCode::CREATED);
    let a = call(app.reservation, Method::POST, "/api/events/1/holds", Some(&app.token(1)), Some(&json!({"seats": [seat(2, 3), seat(2, 4)]}))).await;
    problem(&a, 429, "limit_exceeded");
    let _ = app.hold(1, json!({"seats": [seat(2, 3)]})).await;
    let _ = &app.config;
}
