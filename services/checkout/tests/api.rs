//! The checkout operations of openapi/openapi.yaml against a real Redis and Postgres: holds made
//! through the reservation service, paid through checkout.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::{Method, StatusCode};
use redis::AsyncCommands;
use serde_json::{Value, json};
use stampede_checkout::gateway::{ChargeRequest, PaymentGateway};
use stampede_checkout::charge_reconciler::{ChargeReconciler, Pass};
use stampede_checkout::{CheckoutConfig, CheckoutService, MockGateway};
use stampede_common::Config;
use stampede_common::clock::now_ms;
use stampede_common::store::{self, Redis};
use stampede_common::testkit::client::{Answer, call, send};
use stampede_common::testkit::{spawn, test_config};
use stampede_common::token::{Role, Tokens};
use stampede_inventory::{EventKeys, EventMeta, HoldId, Payment, confirm, Scripts, SeatStatus, SectionLayout, availability, publish, taken_seats};
use stampede_reservation::{ReservationConfig, ReservationService};

const SEATED: i64 = 31;
const GA: i64 = 32;

struct App {
    reservation: SocketAddr,
    checkout: SocketAddr,
    tokens: Arc<Tokens>,
    config: Config,
    settings: CheckoutConfig,
    redis: Redis,
    gateway: Arc<MockGateway>,
    keys: EventKeys,
    db: deadpool_postgres::Pool,
}

impl App {
    /// Services with a mock gateway of `latency`, and event 1 (5 x 4 seats
    /// at 2500, 50 GA places at 1000) holding for `hold_ms`, limit `limit`.
    async fn new(latency_ms: u64, hold_ms: i64, limit: i64) -> Self {
        let config = test_config(&[stampede_auth::MIGRATIONS, stampede_catalog::MIGRATIONS, stampede_persister::MIGRATIONS].concat()).await;
        let settings = CheckoutConfig::from_env(&config.env).expect("checkout config");
        let reserving = ReservationConfig::from_env(&config.env).expect("reservation config");
        let redis = store::connect(&config.redis_url).await.expect("redis");
        let db = stampede_common::db::pool(&config.database_url, 4).expect("pool");
        let tokens = Arc::new(Tokens::new(&config.jwt, 3600));
        let gateway = Arc::new(MockGateway::new(Duration::from_millis(latency_ms), 0.0));
        let reservation = spawn(ReservationService::build(&config, &reserving, redis.clone(), tokens.clone())).await;
        let checkout =
            spawn(CheckoutService::build(&config, &settings, db.clone(), redis.clone(), tokens.clone(), gateway.clone())).await;
        let keys = EventKeys::new(&config.redis_prefix, 1);
        let meta = EventMeta {
            sale_ms: 0,
            hold_ms,
            limit,
            waiting_room: false,
            verified_email_required: false,
            sections: vec![
                SectionLayout { id: SEATED, seated: Some((5, 4)), capacity: 20, price_cents: 2500 },
                SectionLayout { id: GA, seated: None, capacity: 50, price_cents: 1000 },
            ],
        };
        let mut conn = redis.clone();
        publish(&mut conn, &Scripts::load(), &config.redis_prefix, &keys, &meta).await.expect("publish");
        Self { reservation, checkout, tokens, config, settings, redis, gateway, keys, db }
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

/// A charge as a payment request that died right after the provider
/// captured it leaves behind: no order, no refund.
async fn stranded_charge(app: &App, user: u32, hold: &str, key: &str) -> String {
    let user = user.to_string();
    let req = ChargeRequest {
        amount_cents: 2500,
        method: "pm_card_visa",
        idempotency_key: key,
        description: "stranded",
        hold,
        user: &user,
    };
    app.gateway.charge(req).await.expect("charge")
}

fn refunded(app: &App, charge: &str) -> bool {
    app.gateway.charges().iter().any(|c| c.id == charge && c.refunded)
}

#[tokio::test]
async fn the_reconciler_refunds_stranded_charges_and_keeps_paid_ones() {
    let app = App::new(0, 60_000, 6).await;
    let mut checkout = app.settings.clone();
    checkout.charge_grace_seconds = 0;
    let reconciler = ChargeReconciler::build(&app.config, &checkout, app.db.clone(), app.redis.clone(), app.gateway.clone());

    // Paid through the API: its charge is the order's.
    let paid = app.hold(1, json!({"seats": [seat(1, 1)]})).await;
    assert_eq!(app.pay(1, &paid, Some("p1"), "pm_card_visa").await.status, StatusCode::CREATED);
    // A second charge for the paid hold (a request that died after charging
    // with another key): the seats were bought once, this charge bought nothing.
    let twice = stranded_charge(&app, 1, &paid, "twice").await;
    // Stranded on a live hold: a retry may still confirm it.
    let live = app.hold(2, json!({"seats": [seat(2, 1)]})).await;
    let on_live = stranded_charge(&app, 2, &live, "live").await;
    // Stranded on a hold released since.
    let gone = app.hold(3, json!({"seats": [seat(3, 1)]})).await;
    let on_gone = stranded_charge(&app, 3, &gone, "gone").await;
    let released = call(app.reservation, Method::DELETE, &format!("/api/holds/{gone}"), Some(&app.token(3)), None).await;
    assert_eq!(released.status, StatusCode::NO_CONTENT);
    // On a hold nobody knows: not ours to refund blind (another deployment's
    // charge, or lost data): left for an operator.
    let nobody = HoldId::generate(1).public();
    let on_nobody = stranded_charge(&app, 4, &nobody, "nobody").await;

    let pass = reconciler.pass().await.expect("pass");
    assert_eq!(pass, Pass { examined: 5, kept: 1, waiting: 1, refunded: 2, unknown: 1, failed: 0 });
    assert!(refunded(&app, &twice) && refunded(&app, &on_gone));
    assert!(!refunded(&app, &on_nobody), "an unaccounted charge is not refunded by a machine");
    assert!(!refunded(&app, &on_live), "a live hold's charge waits");
    let paid_charge = app.gateway.charges().into_iter().find(|c| c.hold == paid && c.id != twice).expect("paid charge");
    assert!(!paid_charge.refunded, "the order's charge is kept");

    // Each refund is announced, with a payment id derived from the charge.
    let mut conn = app.redis.clone();
    let r: redis::streams::StreamRangeReply = conn.xrange_all(app.keys.stream()).await.expect("xrange");
    let mut announced: Vec<(String, String, String)> = r
        .ids
        .iter()
        .filter(|e| e.get::<String>("type").as_deref() == Some("payment.refunded"))
        .map(|e| {
            let f = |k: &str| e.get::<String>(k).unwrap_or_default();
            assert_eq!(f("payment"), format!("pay_{}", f("charge")));
            (f("charge"), f("reason"), f("user"))
        })
        .collect();
    announced.sort();
    let mut expected = vec![
        (twice.clone(), "stranded_already_paid".to_owned(), "1".to_owned()),
        (on_gone.clone(), "stranded_hold_expired".to_owned(), "3".to_owned()),
    ];
    expected.sort();
    assert_eq!(announced, expected);

    // Again: nothing new. The live hold's charge is still looked at (the
    // watermark stays at it) and refunded once its hold is released.
    let again = reconciler.pass().await.expect("pass");
    assert_eq!((again.waiting, again.refunded, again.failed), (1, 0, 0), "{again:?}");
    let released = call(app.reservation, Method::DELETE, &format!("/api/holds/{live}"), Some(&app.token(2)), None).await;
    assert_eq!(released.status, StatusCode::NO_CONTENT);
    let last = reconciler.pass().await.expect("pass");
    assert_eq!((last.waiting, last.refunded, last.failed), (0, 1, 0), "{last:?}");
    assert!(refunded(&app, &on_live));
    assert!(!app.gateway.charges().into_iter().find(|c| c.id == paid_charge.id).expect("paid").refunded);
}

#[tokio::test]
async fn the_reconciler_reads_postgres_for_holds_redis_no_longer_keeps() {
    let app = App::new(0, 60_000, 6).await;
    let mut checkout = app.settings.clone();
    checkout.charge_grace_seconds = 0;
    let reconciler = ChargeReconciler::build(&app.config, &checkout, app.db.clone(), app.redis.clone(), app.gateway.clone());
    // An order the persister wrote long ago, its Redis records aged out.
    let old = HoldId::generate(1);
    let charge = stranded_charge(&app, 5, &old.public(), "old").await;
    // A hold Postgres knows as expired, gone from Redis.
    let lapsed = HoldId::generate(1);
    let on_lapsed = stranded_charge(&app, 6, &lapsed.public(), "lapsed").await;
    let client = app.db.get().await.expect("pg");
    client
        .batch_execute(&format!(
            "INSERT INTO orders (id, hold_id, event_id, user_id, seats, quantity, amount_cents, status, payment_id, created_at)
             VALUES ('o1', '{h}', 1, 5, ARRAY['{SEATED}:5:1'], 1, 2500, 'confirmed', 'pay_1', now());
             INSERT INTO payments (id, hold_id, order_id, event_id, user_id, amount_cents, status, status_rank,
                                   provider_charge_id, created_at, updated_at)
             VALUES ('pay_1', '{h}', 'o1', 1, 5, 2500, 'captured', 1, '{charge}', now(), now());
             INSERT INTO holds (id, event_id, user_id, seats, quantity, amount_cents, status, status_rank, expires_at, created_at, updated_at)
             VALUES ('{l}', 1, 6, ARRAY['{SEATED}:5:2'], 1, 2500, 'expired', 2, now() - interval '1 hour', now(), now());",
            h = old.token,
            l = lapsed.token,
        ))
        .await
        .expect("rows");
    assert_eq!(reconciler.pass().await.expect("pass"), Pass { examined: 2, kept: 1, waiting: 0, refunded: 1, unknown: 0, failed: 0 });
    assert!(!refunded(&app, &charge), "Postgres's order keeps its charge");
    assert!(refunded(&app, &on_lapsed));
}

/// Runs reconciler passes until one satisfies `done` (10 s at most); every
/// pass before it must have changed nothing (only waited).
async fn passes_until(reconciler: &ChargeReconciler<MockGateway>, done: impl Fn(&Pass) -> bool) -> Pass {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pass = reconciler.pass().await.expect("pass");
        if done(&pass) {
            return pass;
        }
        assert_eq!((pass.refunded, pass.kept, pass.failed), (0, 0, 0), "a pass before the hold lapsed changed something: {pass:?}");
        assert!(Instant::now() < deadline, "the hold never lapsed for the reconciler: {pass:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_reconciler_refunds_a_charge_whose_hold_lapsed_unprocessed() {
    // No expiry worker runs: the hold is still `held` in Redis, past its time.
    let app = App::new(0, 1_000, 6).await;
    let mut checkout = app.settings.clone();
    checkout.charge_grace_seconds = 0;
    let reconciler = ChargeReconciler::build(&app.config, &checkout, app.db.clone(), app.redis.clone(), app.gateway.clone());
    let hold = app.hold(7, json!({"seats": [seat(4, 4)]})).await;
    let charge = stranded_charge(&app, 7, &hold, "lapsing").await;
    let live = reconciler.pass().await.expect("pass");
    assert_eq!((live.waiting, live.refunded), (1, 0), "a live hold's charge waits: {live:?}");
    // Once past its expiry and the clock margin, by Redis's clock, a pass refunds it.
    let lapsed = passes_until(&reconciler, |p| p.waiting == 0).await;
    assert_eq!((lapsed.waiting, lapsed.refunded), (0, 1), "{lapsed:?}");
    assert!(refunded(&app, &charge));
}

/// Two requests with one key at once, the first one's claim having lapsed
/// (its process stalled or died): the provider gives both the same charge,
/// and the one that finds the hold paid with that charge answers with that
/// order (201). It must not refund the charge that paid for the order.
#[tokio::test]
async fn a_twin_request_finding_the_hold_paid_with_its_charge_answers_with_that_order() {
    let app = App::new(600, 60_000, 4).await;
    let hold = app.hold(3, json!({"seats": [seat(5, 1)]})).await;
    let id = HoldId::parse(&hold).expect("hold id");
    // The twin's charge, under the provider key the route uses for this key.
    let charge = stranded_charge(&app, 3, &hold, &format!("{hold}:3:twin-1")).await;
    // This request passes the early checks (the hold is live) and waits 600 ms
    // on the provider, which hands it the same charge...
    let pending = {
        let auth = format!("Bearer {}", app.token(3));
        let addr = app.checkout;
        let path = format!("/api/holds/{hold}/payment");
        tokio::spawn(async move {
            let headers = [("authorization", auth.as_str()), ("content-type", "application/json"), ("idempotency-key", "twin-1")];
            send(addr, Method::POST, &path, &headers, Some(br#"{"payment_method":"pm_card_visa"}"#.to_vec())).await
        })
    };
    // ... while the twin confirms with it: once the request has claimed its
    // key it has read the hold (live) and goes on to the provider.
    let mut conn = app.redis.clone();
    let claim = app.keys.pay_idem("3", "twin-1");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !conn.exists::<_, bool>(&claim).await.expect("exists") {
        assert!(Instant::now() < deadline, "the request never claimed its key");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let pay = Payment { order: "0123456789abcdef0123456789abcdef", payment: "pay_twin", charge: &charge, method: "pm_card_visa" };
    let out = confirm(&mut conn, &Scripts::load(), &app.keys, &id.token, "3", &pay).await.expect("confirm");
    assert!(matches!(out, stampede_inventory::ConfirmOutcome::Confirmed { .. }), "{out:?}");

    let answer = pending.await.expect("request");
    assert_eq!(answer.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&answer.body));
    let body = answer.json();
    assert_eq!(body["order"]["id"], format!("1-{}", pay.order));
    assert_eq!(body["payment"]["id"], "pay_twin");
    assert_eq!(app.gateway.charges().len(), 1, "one charge");
    assert!(!refunded(&app, &charge), "the order's charge is kept");
    assert!(!app.stream_types().await.contains(&"payment.refunded".to_owned()));
}

/// Redis lost a confirmation (a crash with `appendfsync everysec`, say): the
/// hold reads as lapsed there, but the persister had written the order.
/// Postgres's captured payment has the last word: the charge is kept.
#[tokio::test]
async fn the_reconciler_never_refunds_a_charge_postgres_has_as_captured() {
    let app = App::new(0, 1_000, 6).await;
    let mut checkout = app.settings.clone();
    checkout.charge_grace_seconds = 0;
    let reconciler = ChargeReconciler::build(&app.config, &checkout, app.db.clone(), app.redis.clone(), app.gateway.clone());
    let hold = app.hold(8, json!({"seats": [seat(4, 1)]})).await;
    let id = HoldId::parse(&hold).expect("hold id");
    let charge = stranded_charge(&app, 8, &hold, "lost-confirm").await;
    let client = app.db.get().await.expect("pg");
    client
        .batch_execute(&format!(
            "INSERT INTO orders (id, hold_id, event_id, user_id, seats, quantity, amount_cents, status, payment_id, created_at)
             VALUES ('o8', '{h}', 1, 8, ARRAY['{SEATED}:4:1'], 1, 2500, 'confirmed', 'pay_8', now());
             INSERT INTO payments (id, hold_id, order_id, event_id, user_id, amount_cents, status, status_rank,
                                   provider_charge_id, created_at, updated_at)
             VALUES ('pay_8', '{h}', 'o8', 1, 8, 2500, 'captured', 1, '{charge}', now(), now());",
            h = id.token,
        ))
        .await
        .expect("rows");
    // Lapsed in Redis, past the margin: the pass no longer waits, and keeps it.
    let pass = passes_until(&reconciler, |p| p.waiting == 0).await;
    assert_eq!((pass.kept, pass.refunded), (1, 0), "{pass:?}");
    assert!(!refunded(&app, &charge));
}

/// A request charged and confirmed, then its process died before it could
/// store its answer; its claim on the key lapsed. The customer's retry with
/// the same key finds the hold paid with the charge the provider holds under
/// that key: it answers 201 with that order, charges nothing and refunds
/// nothing. Another key for the paid hold is a 409 that charges nothing.
#[tokio::test]
async fn a_retry_after_a_crash_mid_payment_answers_with_the_order_it_made() {
    let app = App::new(0, 60_000, 4).await;
    let hold = app.hold(3, json!({"seats": [seat(5, 2)]})).await;
    let id = HoldId::parse(&hold).expect("hold id");
    let charge = stranded_charge(&app, 3, &hold, &format!("{hold}:3:crash-1")).await;
    let mut conn = app.redis.clone();
    let pay = Payment { order: "fedcba9876543210fedcba9876543210", payment: "pay_dead", charge: &charge, method: "pm_card_visa" };
    let out = confirm(&mut conn, &Scripts::load(), &app.keys, &id.token, "3", &pay).await.expect("confirm");
    assert!(matches!(out, stampede_inventory::ConfirmOutcome::Confirmed { .. }), "{out:?}");

    let retry = app.pay(3, &hold, Some("crash-1"), "pm_card_visa").await;
    assert_eq!(retry.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&retry.body));
    let body = retry.json();
    assert_eq!(body["order"]["id"], format!("1-{}", pay.order));
    assert_eq!(body["payment"]["id"], "pay_dead");
    assert_eq!(body["order"]["seats"], json!([seat(5, 2)]));
    let again = app.pay(3, &hold, Some("crash-1"), "pm_card_visa").await;
    assert_eq!(again.json(), body, "replayed");
    problem(&app.pay(3, &hold, Some("crash-2"), "pm_card_visa").await, 409, "already_paid");
    assert_eq!(app.gateway.charges().len(), 1, "one charge, none for the other key");
    assert!(!refunded(&app, &charge));
    assert!(!app.stream_types().await.contains(&"payment.refunded".to_owned()));
    let orders = app.get(app.checkout, 3, "/api/orders").await;
    assert_eq!(orders.json()["orders"][0]["id"], format!("1-{}", pay.order));
}
