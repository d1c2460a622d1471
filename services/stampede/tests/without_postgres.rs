//! Reservation and expiry need only Redis: with Postgres unreachable,
//! `serve reservation expiry` starts, both roles answer `/readyz` with 200 and
//! holds are taken, and each role's `/metrics` serves the whole process's
//! metrics; a role that needs Postgres (catalog) fails to start with an error
//! instead of hanging or starting half-ready.

use std::time::Duration;

use hyper::{Method, StatusCode};
use serde_json::json;
use stampede_common::testkit::client::call;
use stampede_common::testkit::test_config;
use stampede_common::token::{Role, Tokens};
use stampede_common::{Config, store};
use stampede_inventory::{EventKeys, EventMeta, Scripts, SectionLayout, publish};

/// Nothing ever listens on port 1, so every connection is refused at once.
const DEAD_POSTGRES: &str = "postgres://postgres@127.0.0.1:1/none";

/// Longer than any honest start or failure, short enough to call a hang one.
const START_LIMIT: Duration = Duration::from_secs(20);

/// A test configuration (own Redis prefix, port 0) whose Postgres is down.
async fn config_without_postgres() -> Config {
    let mut config = test_config(&[]).await;
    config.database_url = DEAD_POSTGRES.into();
    config
}

/// Starts `roles` with `config`, failing the test if that takes too long.
async fn start(config: Config, roles: &[&str]) -> anyhow::Result<stampede::Running> {
    let roles: Vec<String> = roles.iter().map(|r| (*r).to_owned()).collect();
    tokio::time::timeout(START_LIMIT, stampede::start(config, &roles))
        .await
        .unwrap_or_else(|_| panic!("starting {roles:?} took over {START_LIMIT:?}"))
}

#[tokio::test]
async fn reservation_and_expiry_start_get_ready_and_hold_without_postgres() {
    let config = config_without_postgres().await;
    let running = start(config.clone(), &["reservation", "expiry"]).await.expect("Redis-only roles start without Postgres");
    for role in ["reservation", "expiry"] {
        let ready = call(running.addr(role), Method::GET, "/readyz", None, None).await;
        assert_eq!(ready.status, StatusCode::OK, "{role}: {}", String::from_utf8_lossy(&ready.body));
        assert_eq!(ready.json()["status"], "ready", "{role}");
    }

    let keys = EventKeys::new(&config.redis_prefix, 1);
    let meta = EventMeta {
        sale_ms: 0,
        hold_ms: 60_000,
        limit: 4,
        waiting_room: false,
        verified_email_required: false,
        sections: vec![SectionLayout { id: 21, seated: Some((1, 2)), capacity: 2, price_cents: 1000 }],
    };
    let mut redis = store::connect(&config.redis_url).await.expect("redis");
    assert!(publish(&mut redis, &Scripts::load(), &config.redis_prefix, &keys, &meta).await.expect("publish"));
    let token = Tokens::new(&config.jwt, 3600).issue("1", Role::Customer).expect("token");
    let body = json!({"seats": ["21:1:1"]});
    let hold = call(running.addr("reservation"), Method::POST, "/api/events/1/holds", Some(&token), Some(&body)).await;
    assert_eq!(hold.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&hold.body));
    assert_eq!(hold.json()["seats"], json!(["21:1:1"]));

    // Both roles share the process's registry, and each port serves all of
    // it: the hold counter and both roles' request counts, on either port.
    for role in ["reservation", "expiry"] {
        let metrics = call(running.addr(role), Method::GET, "/metrics", None, None).await;
        assert_eq!(metrics.status, StatusCode::OK, "{role}");
        let text = String::from_utf8_lossy(&metrics.body);
        for line in [
            "holds_total{outcome=\"created\"}",
            "http_requests_total{service=\"reservation\",route=\"/readyz\",status=\"200\"}",
            "http_requests_total{service=\"expiry\",route=\"/readyz\",status=\"200\"}",
        ] {
            assert!(text.contains(line), "{role}'s /metrics lacks {line:?}:\n{text}");
        }
    }
    running.stop().await;
}

#[tokio::test]
async fn a_role_that_needs_postgres_fails_to_start_without_it() {
    for roles in [&["catalog"][..], &["reservation", "catalog"]] {
        let config = config_without_postgres().await;
        let Err(e) = start(config, roles).await else {
            panic!("{roles:?} started without Postgres");
        };
        assert!(format!("{e:#}").contains("migrating at start"), "{roles:?}: {e:#}");
    }
}
