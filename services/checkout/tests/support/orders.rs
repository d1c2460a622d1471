//! The notifier tests' input: an event whose fans bought seats, through
//! the same functions checkout uses (shared by `notifier.rs` and
//! `notifier_smtp.rs`, separate binaries since each reads its process's
//! metrics).

use stampede_common::store;
use stampede_common::telemetry;
use stampede_common::testkit::test_config;
use stampede_inventory::{EventKeys, EventMeta, HoldId, HoldRequest, Payment, Scripts, SeatRef, SectionLayout, confirm, hold_seats, publish};

/// An event with `users` fans who each bought two seats: the notifier's
/// input, with its stores.
pub struct Setup {
    pub config: stampede_common::Config,
    pub settings: stampede_checkout::CheckoutConfig,
    pub db: deadpool_postgres::Pool,
    pub conn: store::Redis,
    pub keys: EventKeys,
    pub event: i64,
    pub orders: Vec<String>,
}

pub async fn setup(users: usize) -> Setup {
    // This process's recorder (a process per test under nextest), read back
    // through render().
    telemetry::install_metrics();
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
    let mut fans = Vec::new();
    for i in 0..users {
        let id: i64 = client
            .query_one("INSERT INTO users (email, password_hash) VALUES ($1, 'x') RETURNING id", &[&format!("fan{i}@example.com")])
            .await
            .expect("user")
            .get(0);
        fans.push(id.to_string());
    }
    let keys = EventKeys::new(&config.redis_prefix, event);
    let scripts = Scripts::load();
    let meta = EventMeta {
        sale_ms: 0,
        hold_ms: 600_000,
        limit: 10,
        waiting_room: false,
        verified_email_required: false,
        sections: vec![SectionLayout { id: 1, seated: Some((3, 10)), capacity: 30, price_cents: 4200 }],
    };
    publish(&mut conn, &scripts, &config.redis_prefix, &keys, &meta).await.expect("publish");
    let mut orders = Vec::new();
    for (n, user) in fans.iter().enumerate() {
        for k in 0..2u32 {
            orders.push(buy(&mut conn, &scripts, &keys, event, user, SeatRef { section: 1, row: n as u32 + 1, number: k + 1 }).await);
        }
    }
    Setup { config, settings, db, conn, keys, event, orders }
}

/// Holds and pays for `seat`: the order's public id.
pub async fn buy(conn: &mut store::Redis, scripts: &Scripts, keys: &EventKeys, event: i64, user: &str, seat: SeatRef) -> String {
    let hold = HoldId::generate(event).token;
    hold_seats(conn, scripts, keys, &HoldRequest { user, hold: &hold, idempotency: None, queue_pass: false, email_verified: false }, &[seat]).await.expect("hold");
    let order = stampede_common::ids::random_hex(16);
    let pay = Payment { order: &order, payment: "pay_x", charge: "ch_x", method: "pm_card_visa" };
    confirm(conn, scripts, keys, &hold, user, &pay).await.expect("confirm");
    HoldId { event, token: order }.public()
}

