//! Resale at face value or below (openapi/openapi.yaml, "Tickets"): list,
//! withdraw, the open listings, holds on a listing paid through the same
//! payment route, the ticket moving to the buyer with its old codes void,
//! lapsed holds, late payments refunded, and the durable record (listing,
//! payout, ticket owner) through a real persister, against a real Redis and
//! Postgres.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::{Method, StatusCode};
use redis::AsyncCommands;
use serde_json::{Value, json};
use stampede_checkout::CheckoutConfig;
use stampede_common::testkit::client::{Answer, call, send};
use stampede_inventory::{EventKeys, EventMeta, Scripts, publish};

mod support;

use support::{App, GA, meta, problem};

impl App {
    async fn list(&self, user: u32, ticket: &str, price_cents: i64) -> Answer {
        let path = format!("/api/tickets/{ticket}/listing");
        call(self.checkout, Method::POST, &path, Some(&self.token(user)), Some(&json!({ "price_cents": price_cents }))).await
    }

    async fn withdraw(&self, user: u32, listing: &str) -> Answer {
        call(self.checkout, Method::DELETE, &format!("/api/listings/{listing}"), Some(&self.token(user)), None).await
    }

    async fn listings(&self, event: i64) -> Vec<Value> {
        let a = call(self.checkout, Method::GET, &format!("/api/events/{event}/listings"), None, None).await;
        assert_eq!(a.status, StatusCode::OK, "{}", String::from_utf8_lossy(&a.body));
        a.json()["listings"].as_array().expect("listings").clone()
    }

    async fn hold_listing(&self, user: u32, listing: &str) -> Answer {
        call(self.checkout, Method::POST, &format!("/api/listings/{listing}/holds"), Some(&self.token(user)), None).await
    }

    async fn pay(&self, user: u32, hold: &str, key: &str) -> Answer {
        let auth = format!("Bearer {}", self.token(user));
        let headers = [("authorization", auth.as_str()), ("content-type", "application/json"), ("idempotency-key", key)];
        let body = serde_json::to_vec(&json!({"payment_method": "pm_card_visa"})).expect("json");
        send(self.checkout, Method::POST, &format!("/api/holds/{hold}/payment"), &headers, Some(body)).await
    }

    /// The user's ticket ids, by seat (GA places last).
    async fn ticket_ids(&self, user: u32) -> Vec<String> {
        let mut mine = self.tickets(user).await;
        mine.sort_by_key(|t| (t["seat"].is_null(), t["seat"].to_string(), t["id"].to_string()));
        mine.iter().map(|t| t["id"].as_str().expect("id").to_owned()).collect()
    }

    async fn status_of(&self, user: u32, ticket: &str) -> Option<String> {
        self.tickets(user).await.iter().find(|t| t["id"] == ticket).and_then(|t| t["status"].as_str().map(str::to_owned))
    }
}

fn id_of(a: &Answer) -> String {
    assert!(a.status.is_success(), "{} {}", a.status, String::from_utf8_lossy(&a.body));
    a.json()["id"].as_str().expect("id").to_owned()
}

#[tokio::test]
async fn a_fan_lists_a_ticket_a_second_fan_buys_it_and_only_the_new_code_admits() {
    let app = App::new().await;
    app.accounts_and_events().await;
    app.buy(1, 1, json!({"seats": ["31:1:1", "31:1:2"]})).await;
    let ids = app.ticket_ids(1).await;
    let (sold, kept) = (&ids[0], &ids[1]);
    let old_code = app.code(1, sold).await;

    // Listed at face value (the section's price, 2500).
    let a = app.list(1, sold, 2500).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&a.body));
    let listing = a.json();
    let lid = listing["id"].as_str().expect("id").to_owned();
    assert_eq!(
        (listing["ticket_id"].as_str(), listing["seat"].as_str(), listing["price_cents"].as_i64(), listing["status"].as_str()),
        (Some(sold.as_str()), Some("31:1:1"), Some(2500), Some("open"))
    );
    assert_eq!(a.header("location"), Some(format!("/api/listings/{lid}").as_str()));
    assert_eq!(app.status_of(1, sold).await.as_deref(), Some("listed"));
    // A listed ticket shows no code, cannot be transferred, and is not admitted.
    problem(&app.get(1, &format!("/api/tickets/{sold}/code")).await, 409, "not_valid");
    problem(&app.transfer(1, sold, json!({"to_email": "fan3@example.com"})).await, 409, "not_valid");
    let refused = app.gate(&old_code).await;
    problem(&refused, 409, "not_valid");
    assert_eq!(refused.json()["status"], "listed");
    assert_eq!(app.listings(1).await.iter().map(|l| l["id"].clone()).collect::<Vec<_>>(), vec![json!(lid)]);

    // The seller cannot buy it; the second fan holds it like a seat.
    problem(&app.hold_listing(1, &lid).await, 403, "own_listing");
    let h = app.hold_listing(2, &lid).await;
    assert_eq!(h.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&h.body));
    let hold = h.json();
    let hid = hold["id"].as_str().expect("id").to_owned();
    assert_eq!(
        (hold["seats"].clone(), hold["quantity"].as_i64(), hold["amount_cents"].as_i64(), hold["status"].as_str(), hold["listing_id"].as_str()),
        (json!(["31:1:1"]), Some(1), Some(2500), Some("held"), Some(lid.as_str()))
    );
    // Held: gone from the open listings, and the seller cannot withdraw it.
    assert!(app.listings(1).await.is_empty());
    problem(&app.withdraw(1, &lid).await, 409, "held");
    // The reservation service reads it like any hold.
    let read = call(app.reservation, Method::GET, &format!("/api/holds/{hid}"), Some(&app.token(2)), None).await;
    assert_eq!((read.status, read.json()["listing_id"].as_str()), (StatusCode::OK, Some(lid.as_str())));

    // Paid through the payment route: the ticket is the buyer's.
    let paid = app.pay(2, &hid, "resale-1").await;
    assert_eq!(paid.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&paid.body));
    let order = &paid.json()["order"];
    assert_eq!((order["listing_id"].as_str(), order["ticket_id"].as_str(), order["amount_cents"].as_i64()), (Some(lid.as_str()), Some(sold.as_str()), Some(2500)));
    // A retry with the same key replays the answer; the listing is sold.
    let again = app.pay(2, &hid, "resale-1").await;
    assert_eq!((again.status, again.header("idempotent-replayed")), (StatusCode::CREATED, Some("true")));
    problem(&app.withdraw(1, &lid).await, 409, "sold");
    problem(&app.hold_listing(3, &lid).await, 409, "unavailable");
    assert!(app.listings(1).await.is_empty());
    assert_eq!(app.status_of(1, sold).await.as_deref(), Some("resold"));
    assert_eq!(app.status_of(1, kept).await.as_deref(), Some("valid"));
    assert_eq!(app.status_of(2, sold).await.as_deref(), Some("valid"));

    // The seller's code is void; the buyer's admits once; the seller's other ticket too.
    problem(&app.gate(&old_code).await, 409, "superseded");
    let new_code = app.code(2, sold).await;
    assert_eq!(app.gate(&new_code).await.status, StatusCode::OK);
    problem(&app.gate(&new_code).await, 409, "already_used");
    let kept_code = app.code(1, kept).await;
    assert_eq!(app.gate(&kept_code).await.status, StatusCode::OK);
    problem(&app.gate(&old_code).await, 409, "superseded");

    let sales = app.stream_entries("listing.sold").await;
    assert_eq!(sales.len(), 1);
    let field = |k: &str| sales[0].get::<String>(k).unwrap_or_default();
    assert_eq!((field("from"), field("user"), field("ver"), field("price")), ("1".into(), "2".into(), "2".into(), "2500".into()));
}

#[tokio::test]
async fn listing_is_refused_per_the_contract() {
    let app = App::new().await;
    app.accounts_and_events().await;
    app.buy(1, 1, json!({"seats": ["31:2:1", "31:2:2"]})).await;
    app.buy(1, 1, json!({"section_id": GA.to_string(), "quantity": 1})).await;
    app.buy(2, 1, json!({"seats": ["31:2:3"]})).await;
    let ids = app.ticket_ids(1).await;
    let (used, fine, started, ga) = (&ids[0], &ids[1], &ids[2], &ids[3]);

    // Above face value (the seat's section costs 2500; GA 1000): 400, with the face value.
    let a = app.list(1, fine, 2501).await;
    problem(&a, 400, "over_face_value");
    assert_eq!(a.json()["face_value_cents"], 2500);
    problem(&app.list(1, ga, 1001).await, 400, "over_face_value");
    for bad in [0, -5] {
        problem(&app.list(1, fine, bad).await, 400, "invalid_price");
    }
    let path = format!("/api/tickets/{fine}/listing");
    problem(&call(app.checkout, Method::POST, &path, Some(&app.token(1)), Some(&json!({"price": 100}))).await, 400, "invalid_body");
    problem(&call(app.checkout, Method::POST, &path, Some(&app.token(1)), Some(&json!({"price_cents": "100"}))).await, 400, "invalid_body");
    assert_eq!(call(app.checkout, Method::POST, &path, None, Some(&json!({"price_cents": 100}))).await.status, StatusCode::UNAUTHORIZED);
    // Not the caller's, or no such ticket: 404.
    problem(&app.list(3, fine, 100).await, 404, "not_found");
    problem(&app.list(1, "1-0123456789abcdef-9", 100).await, 404, "not_found");
    // Used: 409; listed already: 409; after the event starts: 403.
    let code = app.code(1, used).await;
    assert_eq!(app.gate(&code).await.status, StatusCode::OK);
    let a = app.list(1, used, 100).await;
    problem(&a, 409, "not_valid");
    assert_eq!(a.json()["status"], "used");
    let first = id_of(&app.list(1, ga, 1000).await);
    let a = app.list(1, ga, 900).await;
    problem(&a, 409, "not_valid");
    assert_eq!(a.json()["status"], "listed");
    problem(&app.list(1, started, 100).await, 403, "resale_closed");

    // Withdraw: only the seller's, once; the ticket is valid again and can be listed anew.
    problem(&app.withdraw(2, &first).await, 404, "not_found");
    problem(&app.withdraw(1, "1-0123456789abcdef").await, 404, "not_found");
    problem(&app.withdraw(1, "junk").await, 404, "not_found");
    assert_eq!(app.withdraw(1, &first).await.status, StatusCode::NO_CONTENT);
    problem(&app.withdraw(1, &first).await, 404, "not_found");
    problem(&app.hold_listing(2, &first).await, 409, "unavailable");
    assert_eq!(app.status_of(1, ga).await.as_deref(), Some("valid"));
    let a = app.list(1, ga, 800).await;
    assert_eq!(a.status, StatusCode::CREATED);
    assert_eq!(a.json()["seat"], Value::Null, "a general-admission place has no seat");

    // Holding a listing: no such listing 404; a body other than {} 400.
    problem(&app.hold_listing(2, "1-0123456789abcdef").await, 404, "not_found");
    let lid = a.json()["id"].as_str().expect("id").to_owned();
    let hold_path = format!("/api/listings/{lid}/holds");
    let bad = call(app.checkout, Method::POST, &hold_path, Some(&app.token(2)), Some(&json!({"quantity": 2}))).await;
    problem(&bad, 400, "invalid_body");
    let ok = call(app.checkout, Method::POST, &hold_path, Some(&app.token(2)), Some(&json!({}))).await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&ok.body));
    assert_eq!((ok.json()["section_id"].as_str(), ok.json()["seats"].clone()), (Some("32"), json!([])));
    // Unknown event's listings: 404; wrong methods: 405.
    problem(&call(app.checkout, Method::GET, "/api/events/99/listings", None, None).await, 404, "not_found");
    assert_eq!(call(app.checkout, Method::PUT, &format!("/api/listings/{lid}"), Some(&app.token(1)), None).await.status, StatusCode::METHOD_NOT_ALLOWED);
    // Refusals moved nothing: the only listing events are the two listings and the withdrawal.
    let listed = app.stream_entries("listing.created").await.len();
    let withdrawn = app.stream_entries("listing.withdrawn").await.len();
    assert_eq!((listed, withdrawn), (2, 1));
}

#[tokio::test]
async fn listings_are_open_ones_cheapest_first_and_held_ones_hidden() {
    let app = App::new().await;
    app.accounts_and_events().await;
    app.buy(1, 1, json!({"seats": ["31:3:1", "31:3:2", "31:3:3", "31:3:4"]})).await;
    let ids = app.ticket_ids(1).await;
    let prices = [2000, 1500, 2500, 1500];
    let mut lids = Vec::new();
    for (id, price) in ids.iter().zip(prices) {
        lids.push(id_of(&app.list(1, id, price).await));
    }
    let order = |ls: &[Value]| ls.iter().map(|l| l["id"].as_str().expect("id").to_owned()).collect::<Vec<_>>();
    // Cheapest first; equal prices by listing time.
    assert_eq!(order(&app.listings(1).await), vec![lids[1].clone(), lids[3].clone(), lids[0].clone(), lids[2].clone()]);
    assert_eq!(app.listings(1).await[0]["price_cents"], 1500);
    id_of(&app.hold_listing(2, &lids[1]).await);
    assert_eq!(order(&app.listings(1).await), vec![lids[3].clone(), lids[0].clone(), lids[2].clone()]);
    assert_eq!(app.withdraw(1, &lids[0]).await.status, StatusCode::NO_CONTENT);
    assert_eq!(order(&app.listings(1).await), vec![lids[3].clone(), lids[2].clone()]);
    assert!(app.listings(2).await.is_empty(), "another event's listings are its own");
}

#[tokio::test]
async fn sixteen_buyers_of_one_listing_one_holds_it_and_it_is_sold_once() {
    let app = Arc::new(App::new().await);
    app.accounts_and_events().await;
    app.buy(1, 1, json!({"seats": ["31:4:1"]})).await;
    let ticket = app.ticket_ids(1).await.remove(0);
    let lid = id_of(&app.list(1, &ticket, 2500).await);
    let mut tries = tokio::task::JoinSet::new();
    for buyer in 2..18u32 {
        let (app, lid) = (app.clone(), lid.clone());
        tries.spawn(async move { (buyer, app.hold_listing(buyer, &lid).await) });
    }
    let mut held = Vec::new();
    while let Some(r) = tries.join_next().await {
        let (buyer, a) = r.expect("hold");
        match a.status {
            StatusCode::CREATED => held.push((buyer, a.json()["id"].as_str().expect("id").to_owned())),
            _ => problem(&a, 409, "unavailable"),
        }
    }
    assert_eq!(held.len(), 1, "one buyer holds it");
    let (winner, hid) = held.remove(0);
    // Concurrent payments of that hold with different keys: one ticket moves, once.
    let mut pays = tokio::task::JoinSet::new();
    for i in 0..4 {
        let (app, hid) = (app.clone(), hid.clone());
        pays.spawn(async move { app.pay(winner, &hid, &format!("k{i}")).await });
    }
    let mut created = 0;
    while let Some(r) = pays.join_next().await {
        let a = r.expect("pay");
        match a.status {
            StatusCode::CREATED => created += 1,
            StatusCode::CONFLICT => assert!(["already_paid", "payment_in_progress"].contains(&a.code().as_str()), "{}", a.code()),
            other => panic!("{other}: {}", String::from_utf8_lossy(&a.body)),
        }
    }
    assert_eq!(created, 1);
    assert_eq!(app.stream_entries("listing.sold").await.len(), 1);
    assert_eq!(app.status_of(winner, &ticket).await.as_deref(), Some("valid"));
    let captured = app.stream_entries("payment.captured").await.len();
    assert_eq!(captured, 2, "the original order's payment and the resale's");
}

#[tokio::test]
async fn a_lapsed_listing_hold_frees_the_listing_and_its_late_payment_is_refunded() {
    let app = App::new().await;
    app.accounts_and_events().await;
    // Event 3 holds for 300 ms (its meta's lifetime), starting tomorrow.
    let short = EventMeta { hold_ms: 300, ..meta() };
    let keys3 = EventKeys::new(&app.config.redis_prefix, 3);
    let mut conn = app.redis.clone();
    publish(&mut conn, &Scripts::load(), &app.config.redis_prefix, &keys3, &short).await.expect("publish");
    app.event_starting(3, "1 day").await;
    app.buy(3, 1, json!({"seats": ["31:1:1"]})).await;
    let ticket = app.tickets(1).await[0]["id"].as_str().expect("id").to_owned();
    let lid = id_of(&app.list(1, &ticket, 2000).await);
    // Paid through a provider slower than the hold: it lapses meanwhile,
    // and the charge is refunded.
    let late = id_of(&app.hold_listing(2, &lid).await);
    let (provider, slow) = app.slow_checkout(Duration::from_millis(500)).await;
    let auth = format!("Bearer {}", app.token(2));
    let headers = [("authorization", auth.as_str()), ("content-type", "application/json"), ("idempotency-key", "late-1")];
    let body = serde_json::to_vec(&json!({"payment_method": "pm_card_visa"})).expect("json");
    let a = send(slow, Method::POST, &format!("/api/holds/{late}/payment"), &headers, Some(body)).await;
    problem(&a, 410, "hold_expired");
    let charges = provider.charges();
    assert_eq!((charges.len(), charges[0].refunded), (1, true), "the late charge was refunded");
    let refunds = app.stream_entries_of(&keys3, "payment.refunded").await;
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0].get::<String>("user").as_deref(), Some("2"));
    assert!(app.stream_entries_of(&keys3, "listing.sold").await.is_empty());
    // Lapsed: another buyer may hold it.
    let second = id_of(&app.hold_listing(3, &lid).await);
    // The lapsed hold ended (by whoever came first) frees nothing the second holds.
    let release = call(app.reservation, Method::DELETE, &format!("/api/holds/{late}"), Some(&app.token(2)), None).await;
    assert!(release.status.is_success() || release.status == StatusCode::GONE || release.status == StatusCode::CONFLICT, "{}", release.status);
    let paid = app.pay(3, &second, "in-time").await;
    assert_eq!(paid.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&paid.body));
    assert_eq!(app.status_of(3, &ticket).await.as_deref(), Some("valid"));
    assert_eq!(app.status_of(1, &ticket).await.as_deref(), Some("resold"));
    assert_eq!(app.status_of(2, &ticket).await, None);

    // A released hold frees it at once: listed again, held and released.
    app.buy(3, 1, json!({"seats": ["31:1:2"]})).await;
    let other = app.ticket_ids(1).await.into_iter().find(|t| *t != ticket).expect("second ticket");
    let lid2 = id_of(&app.list(1, &other, 2000).await);
    let h = id_of(&app.hold_listing(2, &lid2).await);
    let release = call(app.reservation, Method::DELETE, &format!("/api/holds/{h}"), Some(&app.token(2)), None).await;
    assert!(release.status.is_success(), "{}: {}", release.status, String::from_utf8_lossy(&release.body));
    let open = call(app.checkout, Method::GET, "/api/events/3/listings", None, None).await.json();
    assert_eq!(open["listings"][0]["id"].as_str(), Some(lid2.as_str()));
    assert_eq!(app.withdraw(1, &lid2).await.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn the_expiry_worker_ends_a_listing_hold_like_any_hold() {
    let app = App::new().await;
    app.accounts_and_events().await;
    let short = EventMeta { hold_ms: 200, ..meta() };
    let keys3 = EventKeys::new(&app.config.redis_prefix, 3);
    let mut conn = app.redis.clone();
    publish(&mut conn, &Scripts::load(), &app.config.redis_prefix, &keys3, &short).await.expect("publish");
    app.event_starting(3, "1 day").await;
    app.buy(3, 1, json!({"section_id": GA.to_string(), "quantity": 1})).await;
    let ticket = app.tickets(1).await[0]["id"].as_str().expect("id").to_owned();
    let lid = id_of(&app.list(1, &ticket, 1000).await);
    let hold = id_of(&app.hold_listing(2, &lid).await);
    let token = hold.split_once('-').expect("event").1.to_owned();
    // Every bucket that has ended, expired as the worker does it.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = stampede_inventory::redis_now_ms(&mut conn).await.expect("time");
        for bucket in stampede_inventory::due_buckets(&mut conn, &keys3, now, 100).await.expect("due") {
            stampede_inventory::expire_bucket(&mut conn, &Scripts::load(), &keys3, bucket, 100).await.expect("expire");
        }
        let rec = stampede_inventory::read_hold(&mut conn, &keys3, &token).await.expect("read").expect("hold");
        if rec.status == "expired" || Instant::now() > deadline {
            assert_eq!(rec.status, "expired");
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let expired = app.stream_entries_of(&keys3, "hold.expired").await;
    assert_eq!((expired.len(), expired[0].get::<String>("listing").as_deref()), (1, Some(lid.split_once('-').expect("e").1)));
    // GA inventory is untouched by the listing hold's end: the sold place stays sold.
    let avail: Vec<i64> = redis::cmd("HMGET").arg(keys3.avail()).arg(GA).arg(format!("sold:{GA}")).query_async(&mut conn).await.expect("avail");
    assert_eq!(avail, vec![49, 1]);
    let open = call(app.checkout, Method::GET, "/api/events/3/listings", None, None).await.json();
    assert_eq!(open["listings"][0]["id"].as_str(), Some(lid.as_str()));
}

#[tokio::test]
async fn resale_reaches_postgres_with_the_payout_and_both_sides_are_emailed() {
    let app = App::new().await;
    app.accounts_and_events().await;
    app.buy(1, 1, json!({"seats": ["31:5:1", "31:5:2"]})).await;
    let ids = app.ticket_ids(1).await;
    let (sold, withdrawn) = (&ids[0], &ids[1]);
    let lid = id_of(&app.list(1, sold, 2200).await);
    let wid = id_of(&app.list(1, withdrawn, 2400).await);
    assert_eq!(app.withdraw(1, &wid).await.status, StatusCode::NO_CONTENT);
    let hid = id_of(&app.hold_listing(2, &lid).await);
    let paid = app.pay(2, &hid, "pg-1").await;
    assert_eq!(paid.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&paid.body));
    let payment = paid.json()["payment"]["id"].as_str().expect("payment").to_owned();

    let rows = app
        .persist_until(
            "SELECT l.status, l.seller_id, l.buyer_id, l.price_cents, l.payment_id, p.amount_cents, p.seller_id, p.status, l.hold_id
             FROM listings l LEFT JOIN payouts p ON p.listing_id = l.id ORDER BY l.price_cents",
            |rows| rows.len() == 2 && rows[1].get::<_, String>(0) == "withdrawn" && rows[0].get::<_, String>(0) == "sold",
        )
        .await;
    type Row = (String, i64, Option<i64>, i64, Option<String>, Option<i64>, Option<i64>, Option<String>);
    let got: Vec<Row> =
        rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5), r.get(6), r.get(7))).collect();
    assert_eq!(
        got,
        vec![
            ("sold".into(), 1, Some(2), 2200, Some(payment.clone()), Some(2200), Some(1), Some("due".into())),
            ("withdrawn".into(), 1, None, 2400, None, None, None, None),
        ]
    );
    let client = app.db.get().await.expect("db");
    let order = sold.split('-').nth(1).expect("order").to_owned();
    let t = client.query_one("SELECT owner_id, version, status FROM tickets WHERE order_id = $1 AND n = 1", &[&order]).await.expect("ticket");
    assert_eq!((t.get::<_, i64>(0), t.get::<_, i32>(1), t.get::<_, String>(2)), (2, 2, "valid".into()));
    let hold_token = hid.split_once('-').expect("e").1.to_owned();
    let h = client.query_one("SELECT status, user_id, amount_cents FROM holds WHERE id = $1", &[&hold_token]).await.expect("hold");
    assert_eq!((h.get::<_, String>(0), h.get::<_, i64>(1), h.get::<_, i64>(2)), ("confirmed".into(), 2, 2200));
    let p = client.query_one("SELECT status, user_id, amount_cents FROM payments WHERE id = $1", &[&payment]).await.expect("payment");
    assert_eq!((p.get::<_, String>(0), p.get::<_, i64>(1), p.get::<_, i64>(2)), ("captured".into(), 2, 2200));
    // The sale sold no inventory: the event's orders are the original one.
    let orders: i64 = client.query_one("SELECT count(*) FROM orders", &[]).await.expect("orders").get(0);
    assert_eq!(orders, 1);
    drop(client);
    // With Redis's indexes gone, Postgres lists it: the seller's as resold.
    let mut conn = app.redis.clone();
    for u in 1..=2 {
        let _: () = conn.del(format!("{}:u:{{{u}}}:tickets", app.config.redis_prefix)).await.expect("del");
    }
    assert_eq!(app.status_of(1, sold).await.as_deref(), Some("resold"));
    assert_eq!(app.status_of(2, sold).await.as_deref(), Some("valid"));

    // The notifier: one e-mail to each side of the sale.
    let settings = CheckoutConfig::from_env(&app.config.env).expect("checkout config");
    let worker = Arc::new(stampede_checkout::NotifierWorker::build(&app.config, &settings, app.db.clone(), app.redis.clone()));
    let (stop, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(worker.run(rx));
    let dir = std::path::PathBuf::from(&settings.mail.dir);
    let want: Vec<String> = ["v2-from", "v2-to"].iter().map(|s| format!("resale-{sold}-{s}.eml")).collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !want.iter().all(|w| dir.join(w).exists()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).expect("mail");
    let seller = read(&want[0]);
    assert!(seller.contains("To: fan1@example.com\r\n") && seller.contains("sold on resale for 22.00"), "{seller}");
    assert!(read(&want[1]).contains("To: fan2@example.com\r\n"));
}

#[tokio::test]
async fn the_resale_functions_refuse_calls_out_of_shape() {
    let app = App::new().await;
    let scripts = Scripts::load();
    let mut conn = app.redis.clone();
    let k = &app.keys;
    let ok_ticket = "0123456789abcdef-1";
    let cases: Vec<(&stampede_inventory::scripts::Function, Vec<String>, Vec<String>)> = vec![
        (&scripts.list, vec![k.holds()], vec![ok_ticket.into(), "1".into(), "abcd".into(), "100".into(), "0".into()]),
        (&scripts.list, vec![k.tickets()], vec!["no-dash-here-x".into(), "1".into(), "abcd".into(), "100".into(), "0".into()]),
        (&scripts.list, vec![k.tickets()], vec![ok_ticket.into(), "1".into(), "abcd".into(), "0".into(), "0".into()]),
        (&scripts.list, vec![k.tickets()], vec![ok_ticket.into(), "1".into(), "ab-cd".into(), "100".into(), "0".into()]),
        (&scripts.unlist, vec![k.tickets()], vec!["abcd".into(), "1".into()]),
        (&scripts.unlist, vec![k.listings()], vec!["abcd".into()]),
        (&scripts.hold_listing, vec![k.meta()], vec!["abcd".into(), "2".into(), "h1".into(), "".into(), "0".into()]),
        (&scripts.hold_listing, vec![k.listings()], vec!["abcd".into(), "2".into(), "h 1".into(), "".into(), "0".into()]),
        (&scripts.buy_listing, vec![k.holds(), k.order("other")], vec!["h1".into(), "2".into(), "o1".into(), "p".into(), "c".into(), "m".into(), "1".into()]),
    ];
    for (f, keys, args) in cases {
        let mut inv = f.key(&keys[0]);
        for key in &keys[1..] {
            inv.key(key);
        }
        for a in &args {
            inv.arg(a);
        }
        let r: redis::RedisResult<redis::Value> = inv.invoke_async(&mut conn).await;
        let e = r.expect_err("out of shape");
        assert!(e.to_string().contains("out of shape"), "{}: {e}", f.name());
    }
    // A seat hold paid through buy_listing, or a listing hold through confirm, is refused too.
    let hold = app.hold_seat_record(1, "31:1:4").await;
    let mut inv = scripts.buy_listing.key(k.holds());
    inv.key(k.order("o1")).arg(&hold).arg("1").arg("o1").arg("p").arg("c").arg("m").arg(1000);
    let r: redis::RedisResult<redis::Value> = inv.invoke_async(&mut conn).await;
    assert!(r.expect_err("seat hold").to_string().contains("out of shape"));
    let stream_len: i64 = conn.xlen(k.stream()).await.expect("xlen");
    assert_eq!(stream_len, 1, "only the hold's own hold.created");
}

impl App {
    async fn stream_entries_of(&self, keys: &EventKeys, kind: &str) -> Vec<redis::streams::StreamId> {
        let mut conn = self.redis.clone();
        let r: redis::streams::StreamRangeReply = conn.xrange_all(keys.stream()).await.expect("xrange");
        r.ids.into_iter().filter(|e| e.get::<String>("type").as_deref() == Some(kind)).collect()
    }

    /// Holds one seat of event `event` for user 1: the hold's token.
    async fn hold_seat_record(&self, event: i64, seat: &str) -> String {
        let a = call(self.reservation, Method::POST, &format!("/api/events/{event}/holds"), Some(&self.token(1)), Some(&json!({ "seats": [seat] }))).await;
        id_of(&a).split_once('-').expect("event").1.to_owned()
    }
}

/// A listing on an event that requires a verified e-mail: an unverified
/// buyer is refused 403 `email_unverified` and the listing stays open; a
/// verified one holds it.
#[tokio::test]
async fn a_listing_on_an_event_requiring_a_verified_email_refuses_unverified_buyers() {
    let app = App::new().await;
    app.accounts_and_events().await;
    app.buy(1, 1, json!({"seats": ["31:1:3"]})).await;
    let ticket = app.ticket_ids(1).await.remove(0);
    let lid = id_of(&app.list(1, &ticket, 2000).await);
    let mut conn = app.redis.clone();
    let _: () = conn.hset(app.keys.meta(), "ve", 1).await.expect("require a verified e-mail");

    problem(&app.hold_listing(2, &lid).await, 403, "email_unverified");
    assert_eq!(app.listings(1).await.len(), 1, "still offered");
    let verified = app.tokens.issue_for_session("2", stampede_common::token::Role::Customer, "family", true).expect("token");
    let h = call(app.checkout, Method::POST, &format!("/api/listings/{lid}/holds"), Some(&verified), None).await;
    assert_eq!(h.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&h.body));
}
