//! Publishing a 100,000-seat event: how long it takes (printed, not
//! asserted: machines differ) and what it costs in Redis (asserted: at most
//! 64 bytes per seat over every key of the event, because free seats cost
//! nothing in the layout of `docs/redis-layout.md`).

use std::sync::Arc;
use std::time::Instant;

use hyper::{Method, StatusCode};
use serde_json::json;
use stampede_catalog::CatalogService;
use stampede_common::testkit::client::call;
use stampede_common::testkit::{spawn, test_config};
use stampede_common::token::{Role, Tokens};
use stampede_inventory::EventKeys;

const ROWS: i64 = 500;
const SEATS_PER_ROW: i64 = 200;

#[tokio::test]
async fn a_100k_seat_event_publishes_fast_and_small() {
    let config = test_config(&[stampede_auth::MIGRATIONS, stampede_catalog::MIGRATIONS].concat()).await;
    let catalog = stampede_catalog::CatalogConfig::from_env(&config.env).expect("catalog config");
    let db = stampede_common::db::pool(&config.database_url, 4).expect("pool");
    let redis = stampede_common::store::connect(&config.redis_url).await.expect("redis");
    let tokens = Arc::new(Tokens::new(&config.jwt, config.access_token_seconds));
    let addr = spawn(CatalogService::build(&config, &catalog, db, redis.clone(), tokens.clone())).await;
    let admin = tokens.issue("1", Role::Admin).expect("sign");

    let body = json!({
        "name": "Stadium night", "venue": "Stadium",
        "starts_at": "2030-06-01T20:00:00Z", "sale_starts_at": "2030-05-01T10:00:00Z",
        "sections": [{"name": "Bowl", "price_cents": 5000, "rows": ROWS, "seats_per_row": SEATS_PER_ROW}]
    });
    let created = call(addr, Method::POST, "/api/events", Some(&admin), Some(&body)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&created.body));
    let id = created.json()["id"].as_str().expect("id").to_owned();
    let seats = ROWS * SEATS_PER_ROW;

    let started = Instant::now();
    let published = call(addr, Method::POST, &format!("/api/events/{id}/publish"), Some(&admin), None).await;
    let elapsed = started.elapsed();
    assert_eq!(published.status, StatusCode::OK, "{}", String::from_utf8_lossy(&published.body));

    // Every key carrying the event's hash tag.
    let keys = EventKeys::new(&config.redis_prefix, id.parse().expect("numeric"));
    let mut conn = redis.clone();
    let names = stampede_inventory::scan_event_keys(&mut conn, &keys).await.expect("scan");
    assert!(names.contains(&keys.meta()) && names.contains(&keys.avail()), "{names:?}");
    let mut bytes: i64 = 0;
    for name in &names {
        let used: Option<i64> = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(name)
            .arg("SAMPLES")
            .arg(0)
            .query_async(&mut conn)
            .await
            .expect("memory usage");
        bytes += used.unwrap_or(0);
    }
    let per_seat = bytes as f64 / seats as f64;
    println!(
        "published {seats} seats in {:.1} ms; {} keys, {bytes} bytes in Redis, {per_seat:.4} bytes/seat",
        elapsed.as_secs_f64() * 1000.0,
        names.len()
    );
    assert!(per_seat <= 64.0, "{per_seat} bytes per seat");

    let available = stampede_inventory::availability(&mut conn, &keys).await.expect("availability");
    let section: i64 = published.json()["sections"][0]["id"].as_str().expect("sid").parse().expect("numeric");
    assert_eq!(available[&section], (seats, 0), "availability equals capacity");
    assert_eq!(published.json()["sections"][0]["available"], seats);

    // The whole seat map still renders (every seat free).
    let started = Instant::now();
    let map = call(addr, Method::GET, &format!("/api/events/{id}/sections/{section}/seats"), None, None).await;
    assert_eq!(map.status, StatusCode::OK);
    let n = map.json()["seats"].as_array().map_or(0, Vec::len);
    println!("seat map of {n} seats: {} bytes in {:.1} ms", map.body.len(), started.elapsed().as_secs_f64() * 1000.0);
    assert_eq!(n as i64, seats);

    // For the record, not a rule of publishing: what the seats cost once
    // every one is sold (`s`, as confirm.lua writes; the order is kept in the
    // order record and in Postgres).
    let seat_key = keys.seats(section);
    for row in 1..=ROWS {
        let mut pipe = redis::pipe();
        for n in 1..=SEATS_PER_ROW {
            pipe.hset(&seat_key, format!("{row}:{n}"), "s").ignore();
        }
        let () = pipe.query_async(&mut conn).await.expect("fill");
    }
    let used: i64 = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg(&seat_key)
        .arg("SAMPLES")
        .arg(0)
        .query_async(&mut conn)
        .await
        .expect("memory usage");
    let started = Instant::now();
    let map = call(addr, Method::GET, &format!("/api/events/{id}/sections/{section}/seats"), None, None).await;
    let sold = map.json()["seats"].as_array().map_or(0, |s| s.iter().filter(|s| s["status"] == "sold").count());
    println!(
        "sold out: the seat hash holds {used} bytes, {:.1} bytes/seat; seat map in {:.1} ms",
        used as f64 / seats as f64,
        started.elapsed().as_secs_f64() * 1000.0
    );
    assert_eq!(sold as i64, seats);
}
