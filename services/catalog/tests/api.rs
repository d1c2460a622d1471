//! The catalog operations of openapi/openapi.yaml against a real Postgres and Redis, through HTTP.

use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::{Method, StatusCode};
use redis::AsyncCommands;
use serde_json::{Value, json};
use stampede_catalog::{CatalogConfig, CatalogService, SeatMapBuilds};
use stampede_common::clock::{now_ms, parse_rfc3339_ms};
use stampede_common::store::Redis;
use stampede_common::testkit::client::{Answer, call, send};
use stampede_common::testkit::{spawn, test_config};
use stampede_common::token::{Claims, Role, Tokens};
use stampede_inventory::EventKeys;

struct App {
    addr: SocketAddr,
    prefix: String,
    redis: Redis,
    admin: String,
    customer: String,
    /// Seat maps the service has built.
    builds: SeatMapBuilds,
    tokens: Arc<Tokens>,
    db: deadpool_postgres::Pool,
}

#[path = "api/organisers.rs"]
mod organisers;
#[path = "api/report.rs"]
mod report;

async fn app() -> App {
    app_with(|_| {}).await
}

/// An app whose configuration `tune` changes first.
async fn app_with(tune: impl FnOnce(&mut CatalogConfig)) -> App {
    let config = test_config(&[stampede_auth::MIGRATIONS, stampede_catalog::MIGRATIONS, stampede_persister::MIGRATIONS].concat()).await;
    let mut catalog = CatalogConfig::from_env(&config.env).expect("catalog config");
    tune(&mut catalog);
    let db = stampede_common::db::pool(&config.database_url, 4).expect("pool");
    let redis = stampede_common::store::connect(&config.redis_url).await.expect("redis");
    let tokens = Arc::new(Tokens::new(&config.jwt, config.access_token_seconds));
    let svc = CatalogService::build(&config, &catalog, db.clone(), redis.clone(), tokens.clone());
    let builds = svc.seat_map_builds();
    let addr = spawn(svc).await;
    let now = now_ms() / 1000;
    let admin = tokens.sign(&Claims { sub: "1".into(), role: Role::Admin, iat: now, exp: now + 3600, sid: None, email_verified: false }).expect("sign");
    let customer = tokens.issue("2", Role::Customer).expect("sign");
    App { addr, prefix: config.redis_prefix.clone(), redis, admin, customer, builds, tokens, db }
}

/// A seated section of 10 × 20 and a general-admission floor of 5000.
fn event_body() -> Value {
    json!({
        "name": "Midnight Run", "venue": "Arena",
        "starts_at": "2030-06-01T20:00:00Z", "sale_starts_at": "2030-05-01T10:00:00Z",
        "sections": [
            {"name": "VIP", "price_cents": 25000, "rows": 10, "seats_per_row": 20},
            {"name": "Floor", "price_cents": 8000, "capacity": 5000, "general_admission": true}
        ]
    })
}

impl App {
    async fn create(&self, body: &Value) -> Answer {
        call(self.addr, Method::POST, "/api/events", Some(&self.admin), Some(body)).await
    }
    async fn create_ok(&self, body: &Value) -> Value {
        let a = self.create(body).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&a.body));
        a.json()
    }
    async fn patch(&self, id: &str, if_match: Option<&str>, body: &Value) -> Answer {
        let auth = format!("Bearer {}", self.admin);
        let mut headers = vec![("content-type", "application/json"), ("authorization", auth.as_str())];
        if let Some(v) = if_match {
            headers.push(("if-match", v));
        }
        let bytes = serde_json::to_vec(body).expect("json");
        send(self.addr, Method::PATCH, &format!("/api/events/{id}"), &headers, Some(bytes)).await
    }
    async fn publish(&self, id: &str) -> Answer {
        call(self.addr, Method::POST, &format!("/api/events/{id}/publish"), Some(&self.admin), None).await
    }
    async fn published(&self, body: &Value) -> Value {
        let ev = self.create_ok(body).await;
        let a = self.publish(ev["id"].as_str().expect("id")).await;
        assert_eq!(a.status, StatusCode::OK, "{}", String::from_utf8_lossy(&a.body));
        a.json()
    }
    async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        call(self.addr, Method::GET, path, token, None).await
    }
    async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        send(self.addr, Method::GET, path, headers, None).await
    }
    fn keys(&self, id: &str) -> EventKeys {
        EventKeys::new(&self.prefix, id.parse().expect("numeric id"))
    }
    fn conn(&self) -> Redis {
        self.redis.clone()
    }
}

fn assert_problem(a: &Answer, status: u16, code: &str) {
    assert_eq!(a.status.as_u16(), status, "body: {}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.header("content-type"), Some("application/problem+json"));
    let body = a.json();
    assert_eq!(body["status"], status);
    assert_eq!(body["code"], code, "body: {body}");
    assert!(body["title"].is_string() && body["type"].is_string() && body["detail"].is_string());
}

fn sid(event: &Value, i: usize) -> String {
    event["sections"][i]["id"].as_str().expect("section id").to_owned()
}

fn id_of(event: &Value) -> String {
    event["id"].as_str().expect("event id").to_owned()
}

#[tokio::test]
async fn create_patch_publish_happy_path() {
    let app = app().await;
    let a = app.create(&event_body()).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&a.body));
    let ev = a.json();
    let id = id_of(&ev);
    assert_eq!(a.header("location"), Some(format!("/api/events/{id}").as_str()));
    assert_eq!((ev["status"].as_str(), ev["version"].as_i64()), (Some("draft"), Some(1)));
    assert_eq!((ev["name"].as_str(), ev["venue"].as_str()), (Some("Midnight Run"), Some("Arena")));
    assert_eq!(parse_rfc3339_ms(ev["starts_at"].as_str().expect("t")), parse_rfc3339_ms("2030-06-01T20:00:00Z"));
    assert_eq!(parse_rfc3339_ms(ev["sale_starts_at"].as_str().expect("t")), parse_rfc3339_ms("2030-05-01T10:00:00Z"));
    assert_eq!((ev["hold_seconds"].as_i64(), ev["per_user_limit"].as_i64()), (Some(600), Some(4)), "defaults");
    assert_eq!(ev["waiting_room"], false);
    let vip = &ev["sections"][0];
    assert!(vip["id"].is_string());
    assert_eq!(
        (vip["name"].as_str(), vip["price_cents"].as_i64(), vip["general_admission"].as_bool()),
        (Some("VIP"), Some(25000), Some(false))
    );
    assert_eq!((vip["rows"].as_i64(), vip["seats_per_row"].as_i64()), (Some(10), Some(20)));
    assert_eq!((vip["capacity"].as_i64(), vip["available"].as_i64()), (Some(200), Some(200)));
    let floor = &ev["sections"][1];
    assert_eq!(floor["general_admission"], true);
    assert!(floor.get("rows").is_none() && floor.get("seats_per_row").is_none());
    assert_eq!((floor["capacity"].as_i64(), floor["available"].as_i64()), (Some(5000), Some(5000)));

    // Bare and quoted If-Match both work; each patch bumps the version.
    let p = app.patch(&id, Some("1"), &json!({"name": "Midnight Run II", "waiting_room": true})).await;
    assert_eq!(p.status, StatusCode::OK, "{}", String::from_utf8_lossy(&p.body));
    assert_eq!((p.json()["version"].as_i64(), p.json()["name"].as_str()), (Some(2), Some("Midnight Run II")));
    assert_eq!(p.json()["waiting_room"], true);
    assert_eq!(p.json()["venue"], "Arena", "fields left out keep their values");
    let p = app.patch(&id, Some("\"2\""), &json!({"hold_seconds": 300, "per_user_limit": 6})).await;
    assert_eq!(p.status, StatusCode::OK);
    assert_eq!((p.json()["version"].as_i64(), p.json()["hold_seconds"].as_i64()), (Some(3), Some(300)));

    let pubd = app.publish(&id).await;
    assert_eq!(pubd.status, StatusCode::OK, "{}", String::from_utf8_lossy(&pubd.body));
    let ev = pubd.json();
    assert_eq!((ev["status"].as_str(), ev["version"].as_i64()), (Some("published"), Some(4)));
    assert_eq!(ev["sections"][0]["available"], 200);
    assert_eq!(ev["sections"][1]["available"], 5000);

    // The inventory is in Redis, with the event's terms.
    let mut conn = app.conn();
    let meta = stampede_inventory::read_meta(&mut conn, &app.keys(&id)).await.expect("redis").expect("published");
    assert_eq!((meta.hold_ms, meta.limit, meta.waiting_room), (300_000, 6, true));
    assert_eq!(meta.sale_ms, parse_rfc3339_ms("2030-05-01T10:00:00Z").expect("t"));
    assert_eq!(meta.sections.len(), 2);
    let avail = stampede_inventory::availability(&mut conn, &app.keys(&id)).await.expect("redis");
    assert_eq!(avail[&sid(&ev, 0).parse::<i64>().expect("sid")], (200, 0));

    // Anyone reads it; availability equals capacity.
    let public = app.get(&format!("/api/events/{id}"), None).await;
    assert_eq!(public.status, StatusCode::OK);
    assert_eq!(public.json()["status"], "published");
    for s in public.json()["sections"].as_array().expect("sections") {
        assert_eq!(s["available"], s["capacity"]);
    }

    // After publishing, the terms still change and Redis follows.
    let p = app
        .patch(
            &id,
            Some("4"),
            &json!({"name": "Renamed", "venue": "Stadium", "starts_at": "2030-06-02T20:00:00Z",
                    "sale_starts_at": "2030-05-02T10:00:00Z", "hold_seconds": 120, "per_user_limit": 2}),
        )
        .await;
    assert_eq!(p.status, StatusCode::OK, "{}", String::from_utf8_lossy(&p.body));
    assert_eq!((p.json()["version"].as_i64(), p.json()["status"].as_str()), (Some(5), Some("published")));
    let meta = stampede_inventory::read_meta(&mut conn, &app.keys(&id)).await.expect("redis").expect("published");
    assert_eq!((meta.hold_ms, meta.limit), (120_000, 2));
    assert_eq!(meta.sale_ms, parse_rfc3339_ms("2030-05-02T10:00:00Z").expect("t"));
    // This process's cache follows its own patch at once.
    let again = app.get(&format!("/api/events/{id}"), None).await;
    assert_eq!((again.json()["name"].as_str(), again.json()["version"].as_i64()), (Some("Renamed"), Some(5)));
}

/// `verified_email_required`: false unless asked, stored, published into
/// the event's Redis meta (`ve`, which the hold functions read), and still
/// changeable after publishing (written to Redis before the commit).
#[tokio::test]
async fn verified_email_required_is_stored_published_and_changeable() {
    let app = app().await;
    let plain = app.published(&event_body()).await;
    assert_eq!(plain["verified_email_required"], false);
    let mut conn = app.conn();
    let meta = stampede_inventory::read_meta(&mut conn, &app.keys(&id_of(&plain))).await.expect("redis").expect("published");
    assert!(!meta.verified_email_required);

    let mut body = event_body();
    body["verified_email_required"] = json!(true);
    let draft = app.create_ok(&body).await;
    assert_eq!(draft["verified_email_required"], true);
    let id = id_of(&draft);
    let ev = app.publish(&id).await.json();
    assert_eq!(ev["verified_email_required"], true);
    let meta = stampede_inventory::read_meta(&mut conn, &app.keys(&id)).await.expect("redis").expect("published");
    assert!(meta.verified_email_required);

    // Lifted after publishing: Postgres and Redis alike.
    let version = ev["version"].as_i64().expect("version").to_string();
    let p = app.patch(&id, Some(&version), &json!({"verified_email_required": false})).await;
    assert_eq!(p.status, StatusCode::OK, "{}", String::from_utf8_lossy(&p.body));
    assert_eq!(p.json()["verified_email_required"], false);
    let meta = stampede_inventory::read_meta(&mut conn, &app.keys(&id)).await.expect("redis").expect("published");
    assert!(!meta.verified_email_required);
    assert_eq!(app.get(&format!("/api/events/{id}"), None).await.json()["verified_email_required"], false);
}

#[tokio::test]
async fn admin_routes_need_the_admin_role() {
    let app = app().await;
    let ev = app.create_ok(&event_body()).await;
    let id = id_of(&ev);
    let body = Some(serde_json::to_vec(&event_body()).expect("json"));
    let customer = format!("Bearer {}", app.customer);
    let cases: [(Method, String); 3] = [
        (Method::POST, "/api/events".into()),
        (Method::PATCH, format!("/api/events/{id}")),
        (Method::POST, format!("/api/events/{id}/publish")),
    ];
    for (method, path) in cases {
        let anon = send(app.addr, method.clone(), &path, &[("if-match", "1")], body.clone()).await;
        assert_problem(&anon, 401, "unauthorized");
        let bad =
            send(app.addr, method.clone(), &path, &[("if-match", "1"), ("authorization", "Bearer nope")], body.clone())
                .await;
        assert_problem(&bad, 401, "unauthorized");
        let cust =
            send(app.addr, method.clone(), &path, &[("if-match", "1"), ("authorization", &customer)], body.clone())
                .await;
        assert_problem(&cust, 403, "forbidden");
    }
    // Nothing changed.
    let admin = app.get(&format!("/api/events/{id}"), Some(&app.admin)).await;
    assert_eq!((admin.json()["version"].as_i64(), admin.json()["status"].as_str()), (Some(1), Some("draft")));
}

#[tokio::test]
async fn if_match_is_required_and_checked() {
    let app = app().await;
    let id = id_of(&app.create_ok(&event_body()).await);
    assert_problem(&app.patch(&id, None, &json!({"name": "X"})).await, 428, "precondition_required");
    assert_problem(&app.patch(&id, Some("abc"), &json!({"name": "X"})).await, 400, "invalid_if_match");
    assert_eq!(app.patch(&id, Some("1"), &json!({"name": "Second"})).await.status, StatusCode::OK);

    let stale = app.patch(&id, Some("1"), &json!({"name": "Lost update", "sections": []})).await;
    assert_problem(&stale, 412, "version_mismatch");
    assert_eq!(stale.json()["current_version"], 2);
    let now = app.get(&format!("/api/events/{id}"), Some(&app.admin)).await.json();
    assert_eq!((now["name"].as_str(), now["version"].as_i64()), (Some("Second"), Some(2)), "nothing changed");
    assert_problem(&app.patch(&id, Some("3"), &json!({"name": "Future"})).await, 412, "version_mismatch");
    assert_problem(&app.patch("999999", Some("1"), &json!({"name": "X"})).await, 404, "not_found");

    // Two admins racing on one version: exactly one wins.
    let (name_a, name_b) = (json!({"name": "A"}), json!({"name": "B"}));
    let (a, b) = tokio::join!(app.patch(&id, Some("2"), &name_a), app.patch(&id, Some("2"), &name_b));
    let mut statuses = [a.status.as_u16(), b.status.as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 412]);
}

#[tokio::test]
async fn republishing_is_409_and_leaves_inventory_intact() {
    let app = app().await;
    let ev = app.published(&event_body()).await;
    let id = id_of(&ev);
    let vip: i64 = sid(&ev, 0).parse().expect("sid");
    // Sell three seats' worth behind the catalog's back, as the scripts would.
    let mut conn = app.conn();
    let keys = app.keys(&id);
    let _: i64 = conn.hincr(keys.avail(), vip.to_string(), -3).await.expect("hincrby");
    let _: () = conn.hset(keys.seats(vip), "1:1", "s-order-1").await.expect("hset");

    let again = app.publish(&id).await;
    assert_problem(&again, 409, "already_published");
    let avail = stampede_inventory::availability(&mut conn, &keys).await.expect("redis");
    assert_eq!(avail[&vip], (197, 0), "counters untouched");
    let seat: Option<String> = conn.hget(keys.seats(vip), "1:1").await.expect("hget");
    assert_eq!(seat.as_deref(), Some("s-order-1"));
    let shown = app.get(&format!("/api/events/{id}"), None).await.json();
    assert_eq!(shown["sections"][0]["available"], 197);
    assert_problem(&app.publish("999999").await, 404, "not_found");
}

#[tokio::test]
async fn seat_layout_is_fixed_once_published() {
    let app = app().await;
    let ev = app.published(&event_body()).await;
    let id = id_of(&ev);
    let mut changed = event_body()["sections"].clone();
    changed[0]["rows"] = json!(11);
    assert_problem(&app.patch(&id, Some("2"), &json!({"sections": changed})).await, 409, "published");
    let mut repriced = event_body()["sections"].clone();
    repriced[1]["price_cents"] = json!(1);
    assert_problem(&app.patch(&id, Some("2"), &json!({"sections": repriced})).await, 409, "published");
    assert_problem(&app.patch(&id, Some("2"), &json!({"sections": []})).await, 409, "published");
    assert_problem(&app.patch(&id, Some("2"), &json!({"waiting_room": true})).await, 409, "published");
    // The same layout sent back is not a change.
    let same = app.patch(&id, Some("2"), &json!({"sections": event_body()["sections"], "name": "Same seats"})).await;
    assert_eq!(same.status, StatusCode::OK, "{}", String::from_utf8_lossy(&same.body));
    assert_eq!(sid(&same.json(), 0), sid(&ev, 0), "section ids are stable");

    // A draft's sections may be replaced.
    let draft = app.create_ok(&event_body()).await;
    let did = id_of(&draft);
    let p = app
        .patch(
            &did,
            Some("1"),
            &json!({"sections": [{"name": "Pit", "price_cents": 100, "capacity": 50, "general_admission": true}]}),
        )
        .await;
    assert_eq!(p.status, StatusCode::OK, "{}", String::from_utf8_lossy(&p.body));
    let secs = p.json()["sections"].as_array().expect("sections").clone();
    assert_eq!(secs.len(), 1);
    assert_eq!((secs[0]["name"].as_str(), secs[0]["available"].as_i64()), (Some("Pit"), Some(50)));
}

#[tokio::test]
async fn validation_names_the_field() {
    let app = app().await;
    let with = |path: &[&str], v: Value| {
        let mut b = event_body();
        let mut at = &mut b;
        for p in &path[..path.len() - 1] {
            at = match p.parse::<usize>() {
                Ok(i) => &mut at[i],
                Err(_) => &mut at[*p],
            };
        }
        at[path[path.len() - 1]] = v;
        b
    };
    let many: Vec<Value> = (0..101)
        .map(|i| json!({"name": format!("S{i}"), "price_cents": 1, "capacity": 1, "general_admission": true}))
        .collect();
    let cases: Vec<(Value, &str)> = vec![
        (with(&["name"], json!("")), "name"),
        (with(&["name"], json!("   ")), "name"),
        (with(&["name"], json!("n".repeat(201))), "name"),
        (with(&["venue"], json!("")), "venue"),
        (with(&["starts_at"], json!("June 1st")), "starts_at"),
        (with(&["sale_starts_at"], json!("2030-06-01T20:00:00Z")), "sale_starts_at"),
        (with(&["sale_starts_at"], json!("2030-07-01T20:00:00Z")), "sale_starts_at"),
        (with(&["hold_seconds"], json!(0)), "hold_seconds"),
        (with(&["hold_seconds"], json!(3601)), "hold_seconds"),
        (with(&["per_user_limit"], json!(0)), "per_user_limit"),
        (with(&["per_user_limit"], json!(51)), "per_user_limit"),
        (with(&["sections"], json!([])), "sections"),
        (with(&["sections"], json!(many)), "sections"),
        (with(&["sections", "0", "name"], json!("")), "sections[0].name"),
        (with(&["sections", "0", "price_cents"], json!(-1)), "sections[0].price_cents"),
        (with(&["sections", "0", "rows"], json!(0)), "sections[0].rows"),
        (with(&["sections", "0", "seats_per_row"], json!(0)), "sections[0].seats_per_row"),
        (with(&["sections", "0", "capacity"], json!(199)), "sections[0].capacity"),
        (with(&["sections", "1", "capacity"], json!(0)), "sections[1].capacity"),
        (with(&["sections", "1", "rows"], json!(3)), "sections[1].rows"),
        (with(&["sections", "1", "capacity"], json!(200_000)), "sections"),
        (
            json!({"name": "A", "venue": "B", "starts_at": "2030-06-01T20:00:00Z", "sale_starts_at": "2030-05-01T10:00:00Z",
                "sections": [{"name": "S", "price_cents": 1, "rows": 501, "seats_per_row": 400}]}),
            "sections",
        ),
        (
            json!({"name": "A", "venue": "B", "starts_at": "2030-06-01T20:00:00Z", "sale_starts_at": "2030-05-01T10:00:00Z",
                "sections": [{"name": "S", "price_cents": 1}]}),
            "sections[0].rows",
        ),
    ];
    for (body, field) in cases {
        let a = app.create(&body).await;
        assert_problem(&a, 400, "invalid_event");
        assert_eq!(a.json()["field"], field, "{}", a.json());
        assert!(a.json()["detail"].as_str().expect("detail").contains(field), "{}", a.json());
    }
    // A seated section may state its capacity when it is right.
    assert_eq!(app.create(&with(&["sections", "0", "capacity"], json!(200))).await.status, StatusCode::CREATED);

    // Unknown fields, wrong types, nulls and broken JSON are 400 too.
    assert_problem(&app.create(&with(&["colour"], json!("red"))).await, 400, "invalid_body");
    assert_problem(&app.create(&with(&["sections", "0", "colour"], json!("red"))).await, 400, "invalid_body");
    assert_problem(&app.create(&with(&["hold_seconds"], json!("600"))).await, 400, "invalid_body");
    assert_problem(&app.create(&with(&["sections", "0", "price_cents"], json!(1.5))).await, 400, "invalid_body");
    assert_problem(&app.create(&with(&["sections"], json!({"name": "x"}))).await, 400, "invalid_body");
    assert_problem(&app.create(&with(&["waiting_room"], json!("yes"))).await, 400, "invalid_body");
    assert_problem(&app.create(&with(&["verified_email_required"], json!("yes"))).await, 400, "invalid_body");
    assert_problem(&app.create(&with(&["verified_email_required"], Value::Null)).await, 400, "invalid_body");
    assert_problem(&app.create(&with(&["name"], Value::Null)).await, 400, "invalid_body");
    let auth = format!("Bearer {}", app.admin);
    let broken =
        send(app.addr, Method::POST, "/api/events", &[("authorization", &auth)], Some(b"{\"name\":".to_vec())).await;
    assert_problem(&broken, 400, "malformed_json");

    // Patches are validated against the merged event.
    let id = id_of(&app.create_ok(&event_body()).await);
    let late = app.patch(&id, Some("1"), &json!({"sale_starts_at": "2031-01-01T00:00:00Z"})).await;
    assert_problem(&late, 400, "invalid_event");
    assert_eq!(late.json()["field"], "sale_starts_at");
    assert_problem(&app.patch(&id, Some("1"), &json!({"name": null})).await, 400, "invalid_body");
    assert_problem(&app.patch(&id, Some("1"), &json!({"status": "published"})).await, 400, "invalid_body");
    assert_problem(
        &app.patch(
            &id,
            Some("1"),
            &json!({"sections": [{"name": "S", "price_cents": -5, "capacity": 1, "general_admission": true}]}),
        )
        .await,
        400,
        "invalid_event",
    );
    let unchanged = app.get(&format!("/api/events/{id}"), Some(&app.admin)).await.json();
    assert_eq!(unchanged["version"], 1);
}

#[tokio::test]
async fn seat_ids_are_stable_and_derived() {
    let app = app().await;
    let draft = app.create_ok(&event_body()).await;
    let id = id_of(&draft);
    let vip = sid(&draft, 0);
    let path = format!("/api/events/{id}/sections/{vip}/seats");
    let before = app.get(&path, Some(&app.admin)).await;
    assert_eq!(before.status, StatusCode::OK);
    assert_eq!(before.header("cache-control"), Some("private, no-store"), "drafts are not cached");
    let seats = before.json()["seats"].as_array().expect("seats").clone();
    assert_eq!(seats.len(), 200);
    assert_eq!(seats[0], json!({"id": format!("{vip}:1:1"), "row": 1, "number": 1, "status": "free"}));
    assert_eq!(seats[21]["id"], format!("{vip}:2:2"));
    assert_eq!(seats[199]["id"], format!("{vip}:10:20"));
    let in_order = seats
        .windows(2)
        .all(|w| (w[0]["row"].as_i64(), w[0]["number"].as_i64()) < (w[1]["row"].as_i64(), w[1]["number"].as_i64()));
    assert!(in_order, "row, then number order");

    app.publish(&id).await;
    let after = app.get(&path, None).await.json();
    assert_eq!(after["seats"].as_array().expect("seats"), &seats, "the same ids once published");
    assert_eq!((after["general_admission"].as_bool(), after["available"].as_i64()), (Some(false), Some(200)));
}

#[tokio::test]
async fn seat_map_reads_holds_and_sales_from_redis() {
    let app = app().await;
    let ev = app.published(&event_body()).await;
    let id = id_of(&ev);
    let vip: i64 = sid(&ev, 0).parse().expect("sid");
    let keys = app.keys(&id);
    let mut conn = app.conn();
    let now = now_ms();
    let values = [
        ("1:1", format!("h{}:holdlive", now + 60_000)),
        ("1:2", format!("h{}:holdgone", now - 1_000)),
        ("1:3", "sorder42".to_owned()),
        ("10:20", "sorder43".to_owned()),
    ];
    for (field, value) in &values {
        let _: () = conn.hset(keys.seats(vip), *field, value).await.expect("hset");
    }
    let map = app.get(&format!("/api/events/{id}/sections/{vip}/seats"), None).await;
    assert_eq!(map.status, StatusCode::OK);
    let seats = map.json()["seats"].as_array().expect("seats").clone();
    let status = |i: usize| seats[i]["status"].as_str().expect("status").to_owned();
    assert_eq!(status(0), "held");
    assert_eq!(status(1), "free", "a hold past its expiry reads free");
    assert_eq!(status(2), "sold");
    assert_eq!(status(3), "free");
    assert_eq!(status(199), "sold");
    assert_eq!(seats.iter().filter(|s| s["status"] == "free").count(), 197);

    // General admission: no seats, a count.
    let floor = sid(&ev, 1);
    let _: i64 = conn.hincr(keys.avail(), &floor, -7).await.expect("hincrby");
    let ga = app.get(&format!("/api/events/{id}/sections/{floor}/seats"), None).await;
    assert_eq!(ga.status, StatusCode::OK);
    assert_eq!(ga.json()["seats"], json!([]));
    assert_eq!((ga.json()["general_admission"].as_bool(), ga.json()["available"].as_i64()), (Some(true), Some(4993)));
    // Availability is never cached.
    let shown = app.get(&format!("/api/events/{id}"), None).await.json();
    assert_eq!(shown["sections"][1]["available"], 4993);
}

#[tokio::test]
async fn drafts_and_bad_ids_are_404() {
    let app = app().await;
    let draft = app.create_ok(&event_body()).await;
    let id = id_of(&draft);
    let vip = sid(&draft, 0);
    for token in [None, Some(app.customer.as_str()), Some("garbage")] {
        assert_problem(&app.get(&format!("/api/events/{id}"), token).await, 404, "not_found");
        assert_problem(&app.get(&format!("/api/events/{id}/sections/{vip}/seats"), token).await, 404, "not_found");
    }
    assert_eq!(app.get(&format!("/api/events/{id}"), Some(&app.admin)).await.status, StatusCode::OK);
    let listing = app.get("/api/events", None).await.json();
    assert_eq!(listing["events"], json!([]), "drafts are not listed");

    let ev = app.published(&event_body()).await;
    let pid = id_of(&ev);
    for path in [
        "/api/events/abc".to_owned(),
        "/api/events/0".to_owned(),
        "/api/events/-1".to_owned(),
        "/api/events/007".to_owned(),
        "/api/events/99999999999999999999".to_owned(),
        "/api/events/123456789".to_owned(),
        format!("/api/events/{pid}/sections/abc/seats"),
        format!("/api/events/{pid}/sections/0/seats"),
        format!("/api/events/{pid}/sections/{vip}/seats"),
        format!("/api/events/{pid}/sections/99999999999999999999/seats"),
        format!("/api/events/{pid}/nothing"),
        "/api/elsewhere".to_owned(),
    ] {
        assert_problem(&app.get(&path, Some(&app.admin)).await, 404, "not_found");
    }
    assert_problem(&app.patch("abc", Some("1"), &json!({})).await, 404, "not_found");
    assert_problem(&app.publish("-3").await, 404, "not_found");
    let wrong = call(app.addr, Method::DELETE, &format!("/api/events/{pid}"), Some(&app.admin), None).await;
    assert_problem(&wrong, 405, "method_not_allowed");
    assert_eq!(wrong.header("allow"), Some("GET, PATCH"));
}

#[tokio::test]
async fn browse_pages_newest_first_with_a_cursor() {
    let app = app().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut body = event_body();
        body["name"] = json!(format!("Show {i}"));
        ids.push(id_of(&app.published(&body).await));
    }
    app.create_ok(&event_body()).await; // a draft, never listed
    ids.reverse();

    let first = app.get("/api/events?limit=2", None).await;
    assert_eq!(first.status, StatusCode::OK);
    let mut seen = Vec::new();
    let mut page = first.json();
    let mut pages = 0;
    loop {
        pages += 1;
        for e in page["events"].as_array().expect("events") {
            assert_eq!(e["status"], "published");
            assert_eq!(e["sections"][0]["available"], 200);
            seen.push(id_of(e));
        }
        let Some(cursor) = page["next_cursor"].as_str().map(str::to_owned) else { break };
        page = app.get(&format!("/api/events?limit=2&cursor={cursor}"), None).await.json();
        assert!(pages < 10, "pagination must end");
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ids, "newest first, each once");
    assert!(page["next_cursor"].is_null());

    let all = app.get("/api/events", None).await.json();
    assert_eq!(all["events"].as_array().expect("events").len(), 5, "default limit covers them");
    assert!(all["next_cursor"].is_null());
    let exact = app.get("/api/events?limit=5", None).await.json();
    assert!(exact["next_cursor"].is_null(), "no empty trailing page");

    for bad in ["limit=0", "limit=201", "limit=-1", "limit=ten", "limit="] {
        assert_problem(&app.get(&format!("/api/events?{bad}"), None).await, 400, "invalid_limit");
    }
    for bad in ["cursor=zz", "cursor=abc", "cursor=%27%3B--", "cursor=7631"] {
        assert_problem(&app.get(&format!("/api/events?{bad}"), None).await, 400, "invalid_cursor");
    }
}

#[tokio::test]
async fn public_reads_carry_etags_and_answer_304() {
    let app = app().await;
    let ev = app.published(&event_body()).await;
    let id = id_of(&ev);
    let vip = sid(&ev, 0);
    // Seat maps carry strong tags of their own: see seat_maps_carry_strong_etags_and_gzip.
    for path in ["/api/events".to_owned(), format!("/api/events/{id}")] {
        let first = app.get(&path, None).await;
        assert_eq!(first.status, StatusCode::OK);
        assert_eq!(first.header("cache-control"), Some("public, max-age=1"), "{path}");
        let tag = first.header("etag").expect("etag").to_owned();
        assert!(tag.starts_with("W/\""), "{tag}");
        let again = app.get_with(&path, &[("if-none-match", &tag)]).await;
        assert_eq!(again.status, StatusCode::NOT_MODIFIED, "{path}");
        assert!(again.body.is_empty());
        assert_eq!(again.header("etag"), Some(tag.as_str()));
        let other = app.get_with(&path, &[("if-none-match", "W/\"nope\"")]).await;
        assert_eq!(other.status, StatusCode::OK);
        assert_eq!(other.body, first.body);
    }
    // A change in Redis changes the body, so the tag.
    let path = format!("/api/events/{id}");
    let tag = app.get(&path, None).await.header("etag").expect("etag").to_owned();
    let mut conn = app.conn();
    let _: i64 = conn.hincr(app.keys(&id).avail(), &vip, -1).await.expect("hincrby");
    let changed = app.get_with(&path, &[("if-none-match", &tag)]).await;
    assert_eq!(changed.status, StatusCode::OK);
    assert_ne!(changed.header("etag"), Some(tag.as_str()));
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let app = app().await;
    app.published(&event_body()).await;
    assert_eq!(app.get("/healthz", None).await.status, StatusCode::OK);
    assert_eq!(app.get("/readyz", None).await.status, StatusCode::OK);
    let metrics = app.get("/metrics", None).await;
    let text = String::from_utf8_lossy(&metrics.body);
    for line in [
        "# HELP catalog_events_published_total",
        "# HELP catalog_publish_duration_seconds",
        "catalog_publish_duration_seconds_bucket",
        "# HELP catalog_events_created_total",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
}

/// `body`'s seated section (`vip`, at least 10 × 20) with two live holds, a
/// lapsed hold and two sales written straight into Redis, as the scripts
/// would, and 7 places gone from the general-admission floor.
async fn sold_and_held(app: &App, body: &Value) -> (String, String, String) {
    let ev = app.published(body).await;
    let id = id_of(&ev);
    let (vip, floor) = (sid(&ev, 0), sid(&ev, 1));
    let keys = app.keys(&id);
    let mut conn = app.conn();
    let now = now_ms();
    let vip_id: i64 = vip.parse().expect("sid");
    for (field, value) in [
        ("1:1", format!("h{}:holdlive", now + 600_000)),
        ("1:2", format!("h{}:holdgone", now - 1_000)),
        ("2:5", format!("h{}:holdlive2", now + 600_000)),
        ("1:3", "sorder42".to_owned()),
        ("10:20", "sorder43".to_owned()),
    ] {
        let _: () = conn.hset(keys.seats(vip_id), field, value).await.expect("hset");
    }
    let _: i64 = conn.hincr(keys.avail(), &floor, -7).await.expect("hincrby");
    (id, vip, floor)
}

/// A `format=rows` body expanded to `(seat id, status word)` in seat order.
fn expand_rows(section: &str, map: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for row in map["rows"].as_array().expect("rows") {
        let r = row["row"].as_i64().expect("row");
        for (i, c) in row["statuses"].as_str().expect("statuses").chars().enumerate() {
            let word = match c {
                'f' => "free",
                'h' => "held",
                's' => "sold",
                other => panic!("unknown status character {other:?}"),
            };
            out.push((format!("{section}:{r}:{}", i + 1), word.to_owned()));
        }
    }
    out
}

fn set_seat_map_interval(ms: u64) -> impl FnOnce(&mut CatalogConfig) {
    move |c| c.seatmap_snapshot_ms = ms
}

#[tokio::test]
async fn rows_format_matches_the_seat_list() {
    let app = app().await;
    let (id, vip, floor) = sold_and_held(&app, &event_body()).await;
    let before = now_ms();
    let list = app.get(&format!("/api/events/{id}/sections/{vip}/seats"), None).await;
    let rows = app.get(&format!("/api/events/{id}/sections/{vip}/seats?format=rows"), None).await;
    let after = now_ms();
    assert_eq!(rows.status, StatusCode::OK, "{}", String::from_utf8_lossy(&rows.body));
    assert_eq!(rows.header("content-type"), Some("application/json"));
    let (list, rows) = (list.json(), rows.json());
    let from_list: Vec<(String, String)> = list["seats"]
        .as_array()
        .expect("seats")
        .iter()
        .map(|s| (s["id"].as_str().expect("id").to_owned(), s["status"].as_str().expect("status").to_owned()))
        .collect();
    assert_eq!(expand_rows(&vip, &rows), from_list, "one character per seat, in seat order");
    let held = from_list.iter().filter(|(_, s)| s == "held").count();
    let sold = from_list.iter().filter(|(_, s)| s == "sold").count();
    assert_eq!((held, sold), (2, 2), "a lapsed hold reads free");
    assert_eq!(rows["rows"][0], json!({"row": 1, "statuses": "hfsfffffffffffffffff"}));
    assert_eq!(rows["rows"].as_array().expect("rows").len(), 10);
    assert_eq!(
        (rows["section_id"].as_str(), rows["general_admission"].as_bool(), rows["available"].as_i64()),
        (Some(vip.as_str()), Some(false), list["available"].as_i64())
    );
    let as_of = parse_rfc3339_ms(rows["as_of"].as_str().expect("as_of")).expect("RFC 3339");
    assert!((before..=after).contains(&as_of), "{before} <= {as_of} <= {after}");

    // General admission: no rows, the count.
    let ga = app.get(&format!("/api/events/{id}/sections/{floor}/seats?format=rows"), None).await;
    assert_eq!(ga.status, StatusCode::OK);
    let ga = ga.json();
    assert_eq!(ga["rows"], json!([]));
    assert_eq!((ga["general_admission"].as_bool(), ga["available"].as_i64()), (Some(true), Some(4993)));
    assert!(ga["as_of"].as_str().and_then(parse_rfc3339_ms).is_some());
}

#[tokio::test]
async fn seat_maps_carry_strong_etags_and_gzip() {
    let app = app_with(set_seat_map_interval(60_000)).await;
    // 50 × 100: big enough for both formats to be gzipped.
    let mut body = event_body();
    body["sections"][0]["rows"] = json!(50);
    body["sections"][0]["seats_per_row"] = json!(100);
    let (id, vip, floor) = sold_and_held(&app, &body).await;
    for path in
        [format!("/api/events/{id}/sections/{vip}/seats"), format!("/api/events/{id}/sections/{vip}/seats?format=rows")]
    {
        let plain = app.get(&path, None).await;
        assert_eq!(plain.status, StatusCode::OK);
        assert_eq!(plain.header("cache-control"), Some("public, no-cache"), "{path}");
        assert_eq!(plain.header("vary"), Some("Accept-Encoding"));
        assert_eq!(plain.header("content-encoding"), None);
        let tag = plain.header("etag").expect("etag").to_owned();
        assert!(tag.starts_with('"') && tag.ends_with('"') && tag.len() > 20, "a strong tag: {tag}");

        let again = app.get_with(&path, &[("if-none-match", &tag)]).await;
        assert_eq!(again.status, StatusCode::NOT_MODIFIED, "{path}");
        assert!(again.body.is_empty());
        assert_eq!((again.header("etag"), again.header("vary")), (Some(tag.as_str()), Some("Accept-Encoding")));
        let listed = app.get_with(&path, &[("if-none-match", &format!("\"x\", W/{tag}"))]).await;
        assert_eq!(listed.status, StatusCode::NOT_MODIFIED, "a weak match of a listed tag");
        let other = app.get_with(&path, &[("if-none-match", "\"nope\"")]).await;
        assert_eq!((other.status, &other.body), (StatusCode::OK, &plain.body));

        let gz = app.get_with(&path, &[("accept-encoding", "br, gzip;q=0.8")]).await;
        assert_eq!(gz.status, StatusCode::OK);
        assert_eq!((gz.header("content-encoding"), gz.header("vary")), (Some("gzip"), Some("Accept-Encoding")));
        assert!(gz.body.len() * 5 < plain.body.len(), "{} bytes gzipped from {}", gz.body.len(), plain.body.len());
        let mut unzipped = Vec::new();
        flate2::read::GzDecoder::new(&gz.body[..]).read_to_end(&mut unzipped).expect("gunzip");
        assert_eq!(unzipped, plain.body, "the same snapshot");
        let gz_tag = gz.header("etag").expect("etag").to_owned();
        assert_ne!(gz_tag, tag, "each content coding has its own strong tag");
        let gz_again = app.get_with(&path, &[("accept-encoding", "gzip"), ("if-none-match", &gz_tag)]).await;
        assert_eq!(gz_again.status, StatusCode::NOT_MODIFIED);
        let refused = app.get_with(&path, &[("accept-encoding", "gzip;q=0, identity")]).await;
        assert_eq!((refused.header("content-encoding"), &refused.body), (None, &plain.body));
    }
    assert_eq!(app.builds.count(), 2, "one snapshot per format served all of the above");

    // A small map is not compressed.
    let ga = app.get_with(&format!("/api/events/{id}/sections/{floor}/seats"), &[("accept-encoding", "gzip")]).await;
    assert_eq!((ga.status, ga.header("content-encoding")), (StatusCode::OK, None));
    assert_eq!(ga.json()["available"], 4993);
}

#[tokio::test]
async fn a_snapshot_serves_its_interval() {
    let app = app_with(set_seat_map_interval(60_000)).await;
    let ev = app.published(&event_body()).await;
    let id = id_of(&ev);
    let vip = sid(&ev, 0);
    let path = format!("/api/events/{id}/sections/{vip}/seats?format=rows");
    let first = app.get(&path, None).await;
    assert_eq!(&first.json()["rows"][0]["statuses"].as_str().expect("statuses")[..1], "f");

    let keys = app.keys(&id);
    let mut conn = app.conn();
    let live = format!("h{}:holdlive", now_ms() + 600_000);
    let _: () = conn.hset(keys.seats(vip.parse().expect("sid")), "1:1", live).await.expect("hset");

    let second = app.get(&path, None).await;
    assert_eq!(second.body, first.body, "the same snapshot, as_of and all");
    assert_eq!(second.header("etag"), first.header("etag"));
    assert_eq!(app.builds.count(), 1);
    // Each format is a snapshot of its own: the seat list is built now.
    let list = app.get(&format!("/api/events/{id}/sections/{vip}/seats"), None).await.json();
    assert_eq!(list["seats"][0]["status"], "held");
    assert_eq!(app.builds.count(), 2);
}

#[tokio::test]
async fn a_snapshot_is_rebuilt_after_its_interval() {
    // A short interval, and the default (500 ms: a hold shows within a second).
    for interval in [Some(150), None] {
        let app = match interval {
            Some(ms) => app_with(set_seat_map_interval(ms)).await,
            None => app().await,
        };
        let ms = interval.unwrap_or(500);
        let ev = app.published(&event_body()).await;
        let id = id_of(&ev);
        let vip = sid(&ev, 0);
        let path = format!("/api/events/{id}/sections/{vip}/seats?format=rows");
        let first = app.get(&path, None).await;
        assert_eq!(first.json()["rows"][0]["statuses"].as_str().map(|s| &s[..2]), Some("ff"));
        let keys = app.keys(&id);
        let mut conn = app.conn();
        let live = format!("h{}:holdlive", now_ms() + 600_000);
        let _: () = conn.hset(keys.seats(vip.parse().expect("sid")), "1:2", live).await.expect("hset");
        tokio::time::sleep(Duration::from_millis(ms + 50)).await;
        let later = app.get(&path, None).await;
        assert_eq!(later.json()["rows"][0]["statuses"].as_str().map(|s| &s[..2]), Some("fh"), "{ms} ms");
        assert_ne!(later.header("etag"), first.header("etag"));
        let as_of = |a: &Answer| parse_rfc3339_ms(a.json()["as_of"].as_str().expect("as_of")).expect("time");
        assert!(as_of(&later) >= as_of(&first) + ms as i64);
        assert_eq!(app.builds.count(), 2);
    }
}

#[tokio::test]
async fn a_seat_list_tag_outlives_its_snapshot() {
    let app = app_with(set_seat_map_interval(100)).await;
    let ev = app.published(&event_body()).await;
    let path = format!("/api/events/{}/sections/{}/seats", id_of(&ev), sid(&ev, 0));
    let tag = app.get(&path, None).await.header("etag").expect("etag").to_owned();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let again = app.get_with(&path, &[("if-none-match", &tag)]).await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED, "nothing changed, so the rebuilt map has the same tag");
    assert_eq!(app.builds.count(), 2);
}

#[tokio::test]
async fn concurrent_requests_share_one_build() {
    let app = app_with(set_seat_map_interval(60_000)).await;
    let body = json!({
        "name": "Big room", "venue": "Arena",
        "starts_at": "2030-06-01T20:00:00Z", "sale_starts_at": "2030-05-01T10:00:00Z",
        "sections": [{"name": "Bowl", "price_cents": 5000, "rows": 100, "seats_per_row": 200}]
    });
    let ev = app.published(&body).await;
    let (id, bowl) = (id_of(&ev), sid(&ev, 0));
    let paths = [
        format!("/api/events/{id}/sections/{bowl}/seats"),
        format!("/api/events/{id}/sections/{bowl}/seats?format=rows"),
    ];
    let (app, paths) = (&app, &paths);
    let answers = futures_util::future::join_all((0..48).map(|i| async move {
        let coding = if i % 3 == 0 { "gzip" } else { "identity" };
        app.get_with(&paths[i % 2], &[("accept-encoding", coding)]).await
    }))
    .await;
    assert!(answers.iter().all(|a| a.status == StatusCode::OK));
    assert_eq!(app.builds.count(), 2, "one build per format for 48 concurrent requests");
    let rows = answers.iter().find(|a| a.header("content-encoding").is_none() && a.json().get("as_of").is_some());
    let rows = rows.expect("an identity rows answer");
    assert_eq!(rows.json()["rows"].as_array().map(Vec::len), Some(100));
    assert!(rows.body.len() < 25_000, "compact: {} bytes for 20,000 seats", rows.body.len());
}

#[tokio::test]
async fn bad_formats_are_400_and_drafts_stay_hidden() {
    let app = app().await;
    let ev = app.published(&event_body()).await;
    let (id, vip) = (id_of(&ev), sid(&ev, 0));
    for bad in ["format=csv", "format=", "format=ROWS", "format=seats", "format"] {
        let a = app.get(&format!("/api/events/{id}/sections/{vip}/seats?{bad}"), None).await;
        assert_problem(&a, 400, "invalid_format");
    }

    let draft = app.create_ok(&event_body()).await;
    let (did, dvip) = (id_of(&draft), sid(&draft, 0));
    let rows = format!("/api/events/{did}/sections/{dvip}/seats?format=rows");
    let builds = app.builds.count();
    for token in [None, Some(app.customer.as_str()), Some("garbage")] {
        assert_problem(&app.get(&rows, token).await, 404, "not_found");
    }
    for _ in 0..2 {
        let a = app.get(&rows, Some(&app.admin)).await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(a.header("cache-control"), Some("private, no-store"), "drafts are not cached");
        assert_eq!(a.header("etag"), None);
        assert_eq!(a.json()["rows"][0]["statuses"], "f".repeat(20));
    }
    assert_eq!(app.builds.count(), builds + 2, "a draft's map is built per request, never shared");
    // Still hidden from customers after an admin has looked.
    assert_problem(&app.get(&rows, Some(&app.customer)).await, 404, "not_found");
}
