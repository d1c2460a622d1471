//! The notifier: one confirmation e-mail per order, also when every message
//! is delivered again and when two notifiers run at once.

use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands;
use stampede_checkout::NotifierWorker;
use stampede_common::store;
use stampede_common::testkit::test_config;
use stampede_inventory::{EventKeys, EventMeta, HoldId, HoldRequest, Payment, Scripts, SeatRef, SectionLayout, confirm, hold_seats, publish};

#[tokio::test]
async fn one_email_per_order_under_redelivery_and_two_workers() {
    let config = test_config(&[stampede_auth::MIGRATIONS, stampede_catalog::MIGRATIONS, stampede_persister::MIGRATIONS].concat()).await;
    let settings = stampede_checkout::CheckoutConfig::from_env(&config.env).expect("checkout config");
    let db = stampede_common::db::pool(&config.database_url, 4).expect("pool");
    let mut conn = store::connect(&config.redis_url).await.expect("redis");
    let client = db.get().await.expect("pg");
    let event: i64 = client
        .query_one(
            "INSERT INTO events (name, venue, starts_at, sale_starts_at, hold_seconds, per_user_limit, status)
             VALUES ('Night <Show>', 'Hall', now() + interval '1 day', now(), 600, 10, 'published') RETURNING id",
            &[],
        )
        .await
        .expect("event")
        .get(0);
    let mut users = Vec::new();
    for i in 0..3 {
        let id: i64 = client
            .query_one("INSERT INTO users (email, password_hash) VALUES ($1, 'x') RETURNING id", &[&format!("fan{i}@example.com")])
            .await
            .expect("user")
            .get(0);
        users.push(id.to_string());
    }
    let keys = EventKeys::new(&config.redis_prefix, event);
    let scripts = Scripts::load();
    let meta = EventMeta {
        sale_ms: 0,
        hold_ms: 600_000,
        limit: 10,
        waiting_room: false,
        sections: vec![SectionLayout { id: 1, seated: Some((3, 10)), capacity: 30, price_cents: 4200 }],
    };
    publish(&mut conn, &scripts, &config.redis_prefix, &keys, &meta).await.expect("publish");
    let mut orders = Vec::new();
    for (n, user) in users.iter().enumerate() {
        for k in 0..2u32 {
            let hold = HoldId::generate(event).token;
            let seat = SeatRef { section: 1, row: n as u32 + 1, number: k + 1 };
            hold_seats(&mut conn, &scripts, &keys, &HoldRequest { user, hold: &hold, idempotency: None, queue_pass: false }, &[seat]).await.expect("hold");
            let order = stampede_common::ids::random_hex(16);
            let pay = Payment { order: &order, payment: "pay_x", charge: "ch_x", method: "pm_card_visa" };
            confirm(&mut conn, &scripts, &keys, &hold, user, &pay).await.expect("confirm");
            orders.push(HoldId { event, token: order }.public());
        }
    }

    let run = |config: stampede_common::Config, db: deadpool_postgres::Pool, redis: store::Redis| async move {
        let settings = stampede_checkout::CheckoutConfig::from_env(&config.env).expect("checkout config");
        let worker = Arc::new(NotifierWorker::build(&config, &settings, db, redis));
        let (tx, rx) = tokio::sync::watch::channel(false);
        (tokio::spawn(worker.run(rx)), tx)
    };
    let mail_dir = std::path::PathBuf::from(&settings.mail_dir);
    let count = || std::fs::read_dir(&mail_dir).map(|d| d.filter_map(Result::ok).filter(|e| e.file_name().to_string_lossy().ends_with(".eml")).count()).unwrap_or(0);

    // Two notifiers at once.
    let (a, stop_a) = run(config.clone(), db.clone(), conn.clone()).await;
    let (b, stop_b) = run(config.clone(), db.clone(), conn.clone()).await;
    for _ in 0..100 {
        if count() == orders.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(count(), orders.len(), "one e-mail per order");

    // Every message delivered again: rewind the group.
    let _: () = redis::cmd("XGROUP").arg("SETID").arg(keys.stream()).arg("notifier").arg("0").query_async(&mut conn).await.expect("setid");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let _ = (stop_a.send(true), stop_b.send(true));
    let _ = (a.await, b.await);
    assert_eq!(count(), orders.len(), "redelivery sends nothing twice");
    for order in &orders {
        let text = std::fs::read_to_string(mail_dir.join(format!("{order}.eml"))).expect("e-mail for each order");
        assert!(text.contains("Night &lt;Show&gt;") && text.contains("Night <Show>"));
        assert!(text.contains("Total: 42.00"));
        assert!(text.contains("@example.com"));
    }
    let pending: redis::Value = conn.xpending(keys.stream(), "notifier").await.expect("xpending");
    if let redis::Value::Array(v) = pending {
        assert_eq!(v.first(), Some(&redis::Value::Int(0)), "everything acknowledged");
    }
}
