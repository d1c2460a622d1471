//! The sales report (`GET /api/events/{id}/report`, JSON and CSV): seats and
//! places from Redis as the sale left them, money from Postgres's ledger;
//! for the event's organiser and admins only.

use hyper::{Method, StatusCode};
use serde_json::json;
use stampede_common::testkit::client::call;
use stampede_common::token::Role;
use stampede_inventory::{EventKeys, HoldOutcome, HoldRequest, Payment, Scripts, SeatRef, confirm, hold_general, hold_seats};

use super::{app, assert_problem, id_of};

#[tokio::test]
async fn the_report_counts_redis_seats_and_postgres_money_for_its_organiser_only() {
    let app = app().await;
    let olga = app.tokens.issue("101", Role::Organiser).expect("sign");
    let body = json!({
        "name": "Report night", "venue": "Hall",
        "starts_at": "2030-06-01T20:00:00Z", "sale_starts_at": "2020-01-01T10:00:00Z",
        "sections": [
            {"name": "=VIP, front", "price_cents": 25000, "rows": 10, "seats_per_row": 20},
            {"name": "Floor", "price_cents": 8000, "capacity": 5000, "general_admission": true}
        ]
    });
    let created = call(app.addr, Method::POST, "/api/events", Some(&olga), Some(&body)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&created.body));
    let doc = created.json();
    let id = id_of(&doc);
    let (vip, floor) = (doc["sections"][0]["id"].as_str().expect("vip").to_owned(), doc["sections"][1]["id"].as_str().expect("floor").to_owned());
    let path = format!("/api/events/{id}/report");

    // A draft: everything available, nothing sold.
    let draft = call(app.addr, Method::GET, &path, Some(&olga), None).await;
    assert_eq!(draft.status, StatusCode::OK, "{}", String::from_utf8_lossy(&draft.body));
    assert_eq!((draft.json()["status"].as_str(), draft.json()["available"].as_i64(), draft.json()["sold"].as_i64()), (Some("draft"), Some(5200), Some(0)));

    let published = call(app.addr, Method::POST, &format!("/api/events/{id}/publish"), Some(&olga), None).await;
    assert_eq!(published.status, StatusCode::OK, "{}", String::from_utf8_lossy(&published.body));
    // The sale in Redis: two VIP seats and two places sold, three places held.
    let (event, vip_id, floor_id): (i64, i64, i64) = (id.parse().expect("id"), vip.parse().expect("vip"), floor.parse().expect("floor"));
    let keys = EventKeys::new(&app.prefix, event);
    let scripts = Scripts::load();
    let mut conn = app.redis.clone();
    let req = |user: &'static str, hold: &'static str| HoldRequest { user, hold, idempotency: None, queue_pass: false, email_verified: true };
    let seats = [SeatRef::parse(&format!("{vip}:1:1")).expect("seat"), SeatRef::parse(&format!("{vip}:1:2")).expect("seat")];
    assert!(matches!(hold_seats(&mut conn, &scripts, &keys, &req("5", "h1"), &seats).await.expect("hold"), HoldOutcome::Held { .. }));
    assert!(matches!(hold_general(&mut conn, &scripts, &keys, &req("6", "h2"), floor_id, 2).await.expect("hold"), HoldOutcome::Held { .. }));
    assert!(matches!(hold_general(&mut conn, &scripts, &keys, &req("7", "h3"), floor_id, 3).await.expect("hold"), HoldOutcome::Held { .. }));
    for (hold, user, order) in [("h1", "5", "o1"), ("h2", "6", "o2")] {
        let pay = Payment { order, payment: &format!("pay_{order}"), charge: &format!("ch_{order}"), method: "pm_card_visa" };
        confirm(&mut conn, &scripts, &keys, hold, user, &pay).await.expect("confirm");
    }
    // The ledger as the persister writes it: the two orders, a refunded
    // payment, a sold resale listing (and one withdrawn: not counted).
    let client = app.db.get().await.expect("pg");
    client
        .batch_execute(&format!(
            "INSERT INTO orders (id, hold_id, event_id, user_id, section_id, seats, quantity, amount_cents, status, payment_id, created_at) VALUES
               ('o1', 'h1', {event}, 5, NULL, ARRAY['{vip}:1:1', '{vip}:1:2'], 2, 50000, 'confirmed', 'pay_o1', now()),
               ('o2', 'h2', {event}, 6, {floor_id}, ARRAY[]::text[], 2, 16000, 'confirmed', 'pay_o2', now());
             INSERT INTO order_seats (event_id, seat_id, order_id) VALUES ({event}, '{vip}:1:1', 'o1'), ({event}, '{vip}:1:2', 'o1');
             INSERT INTO payments (id, hold_id, order_id, event_id, user_id, amount_cents, status, status_rank, provider_charge_id, refund_reason, created_at, updated_at)
               VALUES ('pay_x', 'h9', NULL, {event}, 8, 1234, 'refunded', 2, 'ch_x', 'hold_expired', now(), now());
             INSERT INTO listings (id, event_id, order_id, n, seller_id, price_cents, status, status_rank, created_at, updated_at) VALUES
               ('l1', {event}, 'o1', 1, 5, 9000, 'sold', 3, now(), now()),
               ('l2', {event}, 'o2', 1, 6, 7000, 'withdrawn', 2, now(), now());"
        ))
        .await
        .expect("ledger");

    let a = call(app.addr, Method::GET, &path, Some(&olga), None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(
        a.json(),
        json!({
            "event_id": id, "status": "published",
            "sold": 4, "held": 3, "available": 5193,
            "revenue_cents": 66000, "refunds_cents": 1234, "resale_cents": 9000,
            "by_section": [
                {"section_id": vip, "name": "=VIP, front", "capacity": 200, "sold": 2, "held": 0, "available": 198, "revenue_cents": 50000},
                {"section_id": floor, "name": "Floor", "capacity": 5000, "sold": 2, "held": 3, "available": 4995, "revenue_cents": 16000}
            ]
        })
    );
    let _ = vip_id;

    // CSV: a row per section (a name that looks like a formula is defused
    // and quoted), the totals, refunds and resale.
    let csv = call(app.addr, Method::GET, &format!("{path}?format=csv"), Some(&app.admin), None).await;
    assert_eq!((csv.status, csv.header("content-type")), (StatusCode::OK, Some("text/csv; charset=utf-8")));
    assert_eq!(
        String::from_utf8_lossy(&csv.body),
        format!(
            "section_id,name,capacity,sold,held,available,revenue_cents\r\n\
             {vip},\"'=VIP, front\",200,2,0,198,50000\r\n\
             {floor},Floor,5000,2,3,4995,16000\r\n\
             total,,5200,4,3,5193,66000\r\n\
             refunds,,,,,,1234\r\n\
             resale,,,,,,9000\r\n"
        )
    );

    // Only its organiser and admins: another organiser 404, a customer 403.
    let otto = app.tokens.issue("102", Role::Organiser).expect("sign");
    assert_problem(&call(app.addr, Method::GET, &path, Some(&otto), None).await, 404, "not_found");
    assert_problem(&call(app.addr, Method::GET, &path, Some(&app.customer), None).await, 403, "forbidden");
    assert_eq!(call(app.addr, Method::GET, &path, None, None).await.status, StatusCode::UNAUTHORIZED);
    assert_problem(&call(app.addr, Method::GET, &format!("{path}?format=xml"), Some(&olga), None).await, 400, "invalid_format");
    assert_problem(&call(app.addr, Method::GET, "/api/events/999999/report", Some(&app.admin), None).await, 404, "not_found");
}
