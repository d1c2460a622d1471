//! Tickets, signed codes and check-in (openapi/openapi.yaml, "Tickets")
//! against a real Redis and Postgres: holds made through reservation, paid
//! through checkout, tickets read, shown and scanned through checkout, and
//! persisted by a real persister.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ed25519_dalek::pkcs8::{DecodePublicKey, EncodePrivateKey};
use hyper::{Method, StatusCode};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use redis::AsyncCommands;
use serde_json::{Value, json};
use stampede_checkout::CheckoutConfig;
use stampede_checkout::codes::{CodeClaims, TicketKey};
use stampede_common::testkit::client::{Answer, call};
use stampede_common::token::Role;
use stampede_inventory::{EventKeys, Scripts};

mod support;

use support::{App, GA, problem};

/// A call out of shape, refused before anything is written: by the
/// function itself, or, on a Redis Cluster, by Redis when its keys span
/// slots (another event's key).
fn refused(e: &redis::RedisError) -> bool {
    e.to_string().contains("out of shape") || e.code() == Some("CROSSSLOT")
}

fn b64url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

#[tokio::test]
async fn tickets_appear_at_payment_one_per_seat_or_place_and_only_the_owner_reads_them() {
    let app = App::new().await;
    assert!(app.tickets(1).await.is_empty());
    let seated = app.buy(1, 1, json!({"seats": ["31:1:1", "31:1:2"]})).await;
    let ga = app.buy(1, 1, json!({"section_id": GA.to_string(), "quantity": 3})).await;
    let tickets = app.tickets(1).await;
    assert_eq!(tickets.len(), 5, "{tickets:?}");
    let mut seats: Vec<(String, Value, Value)> =
        tickets.iter().map(|t| (t["order_id"].as_str().unwrap_or_default().to_owned(), t["section_id"].clone(), t["seat"].clone())).collect();
    seats.sort_by(|a, b| a.0.cmp(&b.0).then(a.2.to_string().cmp(&b.2.to_string())));
    let (s, g) = (seated["id"].as_str().expect("id"), ga["id"].as_str().expect("id"));
    let mut want = vec![
        (s.to_owned(), json!("31"), json!("31:1:1")),
        (s.to_owned(), json!("31"), json!("31:1:2")),
        (g.to_owned(), json!("32"), Value::Null),
        (g.to_owned(), json!("32"), Value::Null),
        (g.to_owned(), json!("32"), Value::Null),
    ];
    want.sort_by(|a, b| a.0.cmp(&b.0).then(a.2.to_string().cmp(&b.2.to_string())));
    assert_eq!(seats, want);
    for t in &tickets {
        assert_eq!((t["status"].as_str(), t["event_id"].as_str()), (Some("valid"), Some("1")), "{t}");
        let id = t["id"].as_str().expect("id");
        assert!(id.starts_with(t["order_id"].as_str().expect("order")), "{id}");
        // Anyone else: 404, as for a ticket that does not exist.
        problem(&app.get(2, &format!("/api/tickets/{id}/code")).await, 404, "not_found");
    }
    assert!(app.tickets(2).await.is_empty(), "another user sees none of them");
    problem(&app.get(1, "/api/tickets/1-nothere-1/code").await, 404, "not_found");
    problem(&app.get(1, &format!("/api/tickets/{s}-9/code")).await, 404, "not_found");
    assert_eq!(call(app.checkout, Method::GET, "/api/tickets", None, None).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_code_verifies_with_the_served_public_key_and_carries_the_ticket() {
    let app = App::new().await;
    app.buy(1, 1, json!({"seats": ["31:2:3"]})).await;
    let ticket = app.tickets(1).await[0].clone();
    let id = ticket["id"].as_str().expect("id");
    let a = app.get(1, &format!("/api/tickets/{id}/code")).await;
    assert_eq!(a.status, StatusCode::OK);
    let (code, svg) = (a.json()["code"].as_str().expect("code").to_owned(), a.json()["svg"].as_str().expect("svg").to_owned());
    assert!(svg.starts_with("<?xml") && svg.contains("<svg") && svg.contains("</svg>"), "{svg}");

    // Anyone may fetch the key; a gate verifies offline with it.
    let served = call(app.checkout, Method::GET, "/api/events/1/ticket-key", None, None).await;
    assert_eq!(served.status, StatusCode::OK);
    let served = served.json();
    assert_eq!(served["alg"], "EdDSA");
    assert_eq!(served["kid"], app.key.kid.as_str());
    let pem = served["public_key"].as_str().expect("pem");
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"), "{pem}");
    let public = ed25519_dalek::VerifyingKey::from_public_key_pem(pem).expect("an Ed25519 public key");
    let header = jsonwebtoken::decode_header(&code).expect("header");
    assert_eq!((header.alg, header.kid.as_deref()), (Algorithm::EdDSA, Some(app.key.kid.as_str())));
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.validate_exp = false;
    validation.set_required_spec_claims(&["sub"]);
    let claims = jsonwebtoken::decode::<CodeClaims>(&code, &DecodingKey::from_ed_der(public.as_bytes()), &validation).expect("verifies").claims;
    assert_eq!((claims.tid.as_str(), claims.eid.as_str(), claims.seat.as_deref(), claims.sub.as_str(), claims.ver), (id, "1", Some("31:2:3"), "1", 1));
    // Another key does not verify it.
    let other = ed25519_dalek::VerifyingKey::from_public_key_pem(&TicketKey::generate().public_pem).expect("pem");
    assert!(jsonwebtoken::decode::<CodeClaims>(&code, &DecodingKey::from_ed_der(other.as_bytes()), &validation).is_err());

    problem(&call(app.checkout, Method::GET, "/api/events/77/ticket-key", None, None).await, 404, "not_found");
    problem(&call(app.checkout, Method::GET, "/api/events/x/ticket-key", None, None).await, 404, "not_found");
}

#[tokio::test]
async fn forged_codes_are_refused_and_leave_the_ticket_valid() {
    let app = App::new().await;
    app.buy(1, 1, json!({"seats": ["31:1:1"]})).await;
    let id = app.tickets(1).await[0]["id"].as_str().expect("id").to_owned();
    let code = app.code(1, &id).await;
    let parts: Vec<&str> = code.split('.').collect();
    let claims = json!({"tid": id, "eid": "1", "seat": "31:1:1", "sub": "1", "ver": 1, "iat": 1});

    // Signed with another key, under the platform's kid.
    let other = ed25519_dalek::SigningKey::from_bytes(&rand::random());
    let der = other.to_pkcs8_der().expect("der");
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(app.key.kid.clone());
    let other_key = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ed_der(der.as_bytes())).expect("sign");
    // alg none, no signature.
    let none_header = b64url(json!({"alg": "none", "typ": "JWT", "kid": app.key.kid}).to_string().as_bytes());
    let alg_none = format!("{none_header}.{}.", parts[1]);
    // The real signature over edited claims: another seat, another owner, a newer version.
    let edited = |c: Value| format!("{}.{}.{}", parts[0], b64url(c.to_string().as_bytes()), parts[2]);
    let mut other_owner = claims.clone();
    other_owner["sub"] = json!("2");
    let mut other_seat = claims.clone();
    other_seat["seat"] = json!("31:1:2");
    let mut newer = claims.clone();
    newer["ver"] = json!(2);
    // HS256 with the public key as the secret (key confusion).
    let pem = app.key.public_pem.clone();
    let mut hs = Header::new(Algorithm::HS256);
    hs.kid = Some(app.key.kid.clone());
    let confused = jsonwebtoken::encode(&hs, &claims, &EncodingKey::from_secret(pem.as_bytes())).expect("sign");

    for (what, forged) in [
        ("other key", other_key),
        ("alg none", alg_none),
        ("edited owner", edited(other_owner)),
        ("edited seat", edited(other_seat)),
        ("edited version", edited(newer)),
        ("hs256 with the public key", confused),
        ("junk", "not-a-code".to_owned()),
    ] {
        let a = app.gate(&forged).await;
        assert_eq!(a.code(), "invalid_code", "{what}: {}", String::from_utf8_lossy(&a.body));
        problem(&a, 400, "invalid_code");
    }
    assert_eq!(app.tickets(1).await[0]["status"], "valid", "no forged code admitted anyone");
    assert!(!app.stream_types().await.iter().any(|t| t == "ticket.checked_in"));
    let real = app.gate(&code).await;
    assert_eq!(real.status, StatusCode::OK, "{}", String::from_utf8_lossy(&real.body));
    assert_eq!(real.json(), json!({"ticket": id, "seat": "31:1:1", "status": "used"}));
}

#[tokio::test]
async fn thirty_two_gates_scanning_one_code_admit_it_exactly_once() {
    let app = Arc::new(App::new().await);
    app.buy(1, 1, json!({"section_id": GA.to_string(), "quantity": 1})).await;
    let id = app.tickets(1).await[0]["id"].as_str().expect("id").to_owned();
    let code = app.code(1, &id).await;
    let mut gates = tokio::task::JoinSet::new();
    for g in 0..32 {
        let (app, code) = (app.clone(), code.clone());
        gates.spawn(async move { app.check_in(1, &app.token_as(1000 + g, Role::Gate), &code).await });
    }
    let (mut admitted, mut used_at) = (Vec::new(), Vec::new());
    while let Some(a) = gates.join_next().await {
        let a = a.expect("gate");
        match a.status {
            StatusCode::OK => admitted.push(a.json()),
            _ => {
                problem(&a, 409, "already_used");
                used_at.push(a.json()["used_at"].as_str().expect("used_at").to_owned());
            }
        }
    }
    assert_eq!(admitted, vec![json!({"ticket": id, "seat": null, "status": "used"})]);
    assert_eq!(used_at.len(), 31);
    assert!(used_at.windows(2).all(|w| w[0] == w[1]), "every refusal names the one admission: {used_at:?}");
    assert_eq!(app.stream_types().await.iter().filter(|t| *t == "ticket.checked_in").count(), 1);
    assert_eq!(app.tickets(1).await[0]["status"], "used");
    problem(&app.get(1, &format!("/api/tickets/{id}/code")).await, 409, "not_valid");
}

#[tokio::test]
async fn only_gates_and_admins_check_in_and_only_codes_of_their_event() {
    let app = App::new().await;
    app.buy(1, 1, json!({"seats": ["31:3:1"]})).await;
    app.buy(2, 1, json!({"seats": ["31:3:1"]})).await;
    let mut tickets = app.tickets(1).await;
    tickets.sort_by_key(|t| t["event_id"].as_str().unwrap_or_default().to_owned());
    let (one, two) = (tickets[0]["id"].as_str().expect("id").to_owned(), tickets[1]["id"].as_str().expect("id").to_owned());
    let (code_one, code_two) = (app.code(1, &one).await, app.code(1, &two).await);

    problem(&app.check_in(1, &app.token(1), &code_one).await, 403, "forbidden");
    problem(&app.check_in(1, &app.token(5), &code_one).await, 403, "forbidden");
    assert_eq!(call(app.checkout, Method::POST, "/api/events/1/check-in", None, Some(&json!({"code": code_one}))).await.status, StatusCode::UNAUTHORIZED);
    // Event 2's code at event 1's doors, and the reverse.
    problem(&app.gate(&code_two).await, 400, "invalid_code");
    problem(&app.check_in(2, &app.token_as(900, Role::Gate), &code_one).await, 400, "invalid_code");
    problem(&app.check_in(77, &app.token_as(900, Role::Gate), &code_one).await, 404, "not_found");
    problem(&app.gate_body(json!({"code": code_one, "extra": 1})).await, 400, "invalid_body");
    // An admin may scan too.
    let a = app.check_in(2, &app.token_as(901, Role::Admin), &code_two).await;
    assert_eq!(a.status, StatusCode::OK, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.json()["ticket"], two.as_str());
    assert_eq!(app.gate(&code_one).await.status, StatusCode::OK);
}

#[tokio::test]
async fn an_organiser_checks_in_at_its_own_events_only_and_gates_still_do() {
    let app = App::new().await;
    // Event 1 is organiser 700's, event 2 organiser 701's (owners are read
    // from Postgres: these rows stand for the catalog's).
    let client = app.db.get().await.expect("db");
    for (event, owner) in [(1i64, 700i64), (2, 701)] {
        client
            .execute(
                "INSERT INTO events (id, name, venue, starts_at, sale_starts_at, hold_seconds, per_user_limit, status, owner_id)
                 OVERRIDING SYSTEM VALUE
                 VALUES ($1, 'Gig', 'Hall', now() + interval '1 day', now() - interval '2 days', 60, 10, 'published', $2)",
                &[&event, &owner],
            )
            .await
            .expect("event");
    }
    app.buy(1, 1, json!({"seats": ["31:3:1", "31:3:2"]})).await;
    app.buy(2, 1, json!({"seats": ["31:3:1"]})).await;
    let tickets = app.tickets(1).await;
    let of = |event: &str| -> Vec<String> {
        tickets.iter().filter(|t| t["event_id"] == event).map(|t| t["id"].as_str().expect("id").to_owned()).collect()
    };
    let (ones, twos) = (of("1"), of("2"));
    let organiser = app.token_as(700, Role::Organiser);

    // Its own event: admitted.
    let code = app.code(1, &ones[0]).await;
    let a = app.check_in(1, &organiser, &code).await;
    assert_eq!(a.status, StatusCode::OK, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!((a.json()["ticket"].as_str(), a.json()["status"].as_str()), (Some(ones[0].as_str()), Some("used")));
    // Another organiser's event: 403, and the ticket stays valid.
    let other = app.code(1, &twos[0]).await;
    problem(&app.check_in(2, &organiser, &other).await, 403, "forbidden");
    // An event not on sale: 404, as for a gate.
    problem(&app.check_in(77, &organiser, &other).await, 404, "not_found");
    // A gate still checks in anywhere, the other event's ticket included.
    assert_eq!(app.check_in(2, &app.token_as(900, Role::Gate), &other).await.status, StatusCode::OK);
    let second = app.code(1, &ones[1]).await;
    assert_eq!(app.gate(&second).await.status, StatusCode::OK);

    // The organiser's check-in is an audit entry of its event, through the
    // stream (the entry says who checked in and as what); the gates' are not.
    let by: Vec<String> = app.stream_entries("ticket.checked_in").await.iter().filter_map(|e| e.get("by")).collect();
    assert_eq!(by.iter().filter(|r| *r == "organiser").count(), 1, "{by:?}");
    assert_eq!(by.iter().filter(|r| *r == "gate").count(), 1, "{by:?}");
    let sql = "SELECT actor_id, target, event_id, details::text FROM audit_log WHERE action = 'ticket.check_in' ORDER BY id";
    let rows = app.persist_until(sql, |rows| !rows.is_empty()).await;
    let seen: Vec<(Option<i64>, String, Option<i64>)> = rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
    assert_eq!(seen, vec![(Some(700), format!("ticket:{}", ones[0]), Some(1))]);
    let details: Value = serde_json::from_str(rows[0].get::<_, &str>(3)).expect("json");
    assert_eq!((details["role"].as_str(), details["seat"].as_str()), (Some("organiser"), Some("31:3:1")), "{details}");
}

impl App {
    async fn gate_body(&self, body: Value) -> Answer {
        call(self.checkout, Method::POST, "/api/events/1/check-in", Some(&self.token_as(900, Role::Gate)), Some(&body)).await
    }
}

#[tokio::test]
async fn a_code_older_than_the_tickets_version_is_superseded() {
    let app = App::new().await;
    app.buy(1, 1, json!({"seats": ["31:4:4"]})).await;
    let id = app.tickets(1).await[0]["id"].as_str().expect("id").to_owned();
    let old = app.code(1, &id).await;
    // What a transfer does to the record: a new owner and a higher version.
    let token = id.split_once('-').expect("event").1.to_owned();
    let mut conn = app.redis.clone();
    let raw: String = conn.hget(app.keys.tickets(), &token).await.expect("record");
    assert_eq!(raw, "valid|1|1|31|31:4:4||");
    let _: () = conn.hset(app.keys.tickets(), &token, "valid|2|2|31|31:4:4||").await.expect("bump");
    problem(&app.gate(&old).await, 409, "superseded");
    problem(&app.get(1, &format!("/api/tickets/{id}/code")).await, 404, "not_found");
    let new = app.code(2, &id).await;
    assert_eq!(app.gate(&new).await.status, StatusCode::OK);
    problem(&app.gate(&old).await, 409, "superseded");
    problem(&app.gate(&new).await, 409, "already_used");
}

#[tokio::test]
async fn the_check_in_function_refuses_calls_out_of_shape() {
    let app = App::new().await;
    let scripts = Scripts::load();
    let mut conn = app.redis.clone();
    let ticket = "0123456789abcdef0123456789abcdef-1";
    let calls: Vec<(Vec<String>, Vec<&str>)> = vec![
        (vec![app.keys.tickets(), app.keys.stream()], vec![ticket, "1", "1", "9"]),
        (vec![app.keys.tickets(), app.keys.holds()], vec![ticket, "1", "1", "9", "gate"]),
        (vec![app.keys.holds(), app.keys.stream()], vec![ticket, "1", "1", "9", "gate"]),
        (vec![app.keys.tickets(), EventKeys::new(&app.config.redis_prefix, 2).stream()], vec![ticket, "1", "1", "9", "gate"]),
        (vec![app.keys.tickets(), app.keys.stream()], vec!["0123", "1", "1", "9", "gate"]),
        (vec![app.keys.tickets(), app.keys.stream()], vec![ticket, "0", "1", "9", "gate"]),
        (vec![app.keys.tickets(), app.keys.stream()], vec![ticket, "1", "", "9", "gate"]),
        // Only the roles that may check in.
        (vec![app.keys.tickets(), app.keys.stream()], vec![ticket, "1", "1", "9", "customer"]),
        (vec![app.keys.tickets(), app.keys.stream()], vec![ticket, "1", "1", "9", ""]),
    ];
    for (keys, args) in calls {
        let mut inv = scripts.check_in.key(&keys[0]);
        inv.key(&keys[1]);
        for a in &args {
            inv.arg(*a);
        }
        let r: redis::RedisResult<redis::Value> = inv.invoke_async(&mut conn).await;
        assert!(r.is_err_and(|e| refused(&e)), "{keys:?} {args:?}");
    }
    let mut inv = scripts.check_in.key(app.keys.tickets());
    inv.key(app.keys.stream()).arg(ticket).arg("1").arg("1").arg("9").arg("admin");
    let r: Vec<String> = inv.invoke_async(&mut conn).await.expect("call");
    assert_eq!(r, ["not_found"]);
    assert!(app.stream_types().await.is_empty(), "nothing written");
}

#[tokio::test]
async fn tickets_and_check_ins_reach_postgres_through_the_persister() {
    let app = App::new().await;
    app.buy(1, 1, json!({"seats": ["31:5:1", "31:5:2"]})).await;
    app.buy(1, 1, json!({"section_id": GA.to_string(), "quantity": 2})).await;
    let tickets = app.tickets(1).await;
    let scanned = tickets.iter().find(|t| t["seat"] == "31:5:2").expect("seat 5:2")["id"].as_str().expect("id").to_owned();
    let code = app.code(1, &scanned).await;
    assert_eq!(app.check_in(1, &app.token_as(900, Role::Gate), &code).await.status, StatusCode::OK);

    let rows = app
        .persist_until(
            "SELECT event_id || '-' || order_id || '-' || n, owner_id, section_id, seat, version, status,
                    used_at IS NOT NULL, checked_in_by FROM tickets ORDER BY order_id, n",
            |rows| rows.iter().any(|r| r.get::<_, String>(5) == "used") && rows.len() == 4,
        )
        .await;
    assert_eq!(rows.len(), 4, "one row per seat or place");
    for row in &rows {
        let (id, owner, version): (String, i64, i32) = (row.get(0), row.get(1), row.get(4));
        let (status, used, gate): (String, bool, Option<i64>) = (row.get(5), row.get(6), row.get(7));
        assert_eq!((owner, version), (1, 1), "{id}");
        if id == scanned {
            assert_eq!((status.as_str(), used, gate), ("used", true, Some(900)));
            assert_eq!(row.get::<_, Option<String>>(3).as_deref(), Some("31:5:2"));
        } else {
            assert_eq!((status.as_str(), used, gate), ("valid", false, None), "{id}");
        }
    }
    // With Redis's index of the buyer's tickets gone, Postgres still lists them.
    let mut conn = app.redis.clone();
    let _: () = conn.del(format!("{}:u:{{1}}:tickets", app.config.redis_prefix)).await.expect("del");
    let from_pg = app.tickets(1).await;
    assert_eq!(from_pg.len(), 4);
    let used = from_pg.iter().find(|t| t["id"] == scanned.as_str()).expect("scanned");
    assert_eq!((used["status"].as_str(), used["seat"].as_str(), used["section_id"].as_str()), (Some("used"), Some("31:5:2"), Some("31")));
    assert!(app.tickets(2).await.is_empty());
}

#[tokio::test]
async fn a_transfer_moves_the_ticket_voids_the_old_code_and_the_new_code_admits_once() {
    let app = App::new().await;
    app.accounts_and_events().await;
    app.buy(1, 1, json!({"seats": ["31:2:1"]})).await;
    let id = app.tickets(1).await[0]["id"].as_str().expect("id").to_owned();
    let old = app.code(1, &id).await;

    // The address is matched as sign-up stores it: trimmed, lower case.
    let a = app.transfer(1, &id, json!({"to_email": " Fan2@Example.com "})).await;
    assert_eq!(a.status, StatusCode::OK, "{}", String::from_utf8_lossy(&a.body));
    let order = id.rsplit_once('-').expect("n").0.to_owned();
    assert_eq!(
        a.json(),
        json!({"id": id, "order_id": order, "event_id": "1", "section_id": "31", "seat": "31:2:1", "status": "valid"})
    );
    // The giver still sees it, as transferred; the recipient has it, valid.
    let mine = app.tickets(1).await;
    assert_eq!((mine.len(), mine[0]["id"].as_str(), mine[0]["status"].as_str()), (1, Some(id.as_str()), Some("transferred")));
    let theirs = app.tickets(2).await;
    assert_eq!((theirs.len(), theirs[0]["id"].as_str(), theirs[0]["status"].as_str()), (1, Some(id.as_str()), Some("valid")));
    problem(&app.get(1, &format!("/api/tickets/{id}/code")).await, 404, "not_found");
    problem(&app.transfer(1, &id, json!({"to_email": "fan3@example.com"})).await, 404, "not_found");

    // The old code is void at the gate; the recipient's new one admits, once.
    problem(&app.gate(&old).await, 409, "superseded");
    let new = app.code(2, &id).await;
    let admitted = app.gate(&new).await;
    assert_eq!(admitted.status, StatusCode::OK, "{}", String::from_utf8_lossy(&admitted.body));
    problem(&app.gate(&new).await, 409, "already_used");
    problem(&app.gate(&old).await, 409, "superseded");

    let moved = app.stream_entries("ticket.transferred").await;
    assert_eq!(moved.len(), 1);
    let field = |k: &str| moved[0].get::<String>(k).unwrap_or_default();
    assert_eq!(
        (field("ticket"), field("from"), field("user"), field("ver"), field("section"), field("seat")),
        (id.split_once('-').expect("event").1.to_owned(), "1".into(), "2".into(), "2".into(), "31".into(), "31:2:1".into())
    );
    let scans = app.stream_entries("ticket.checked_in").await;
    assert_eq!((scans.len(), scans[0].get::<String>("user").as_deref(), scans[0].get::<String>("ver").as_deref()), (1, Some("2"), Some("2")));
}

#[tokio::test]
async fn transfers_are_refused_per_the_contract() {
    let app = App::new().await;
    app.accounts_and_events().await;
    app.buy(1, 1, json!({"seats": ["31:3:1", "31:3:2", "31:3:3"]})).await;
    app.buy(2, 1, json!({"section_id": GA.to_string(), "quantity": 1})).await;
    let mut mine = app.tickets(1).await;
    mine.sort_by_key(|t| (t["event_id"].as_str().unwrap_or_default().to_owned(), t["seat"].to_string()));
    let ids: Vec<String> = mine.iter().map(|t| t["id"].as_str().expect("id").to_owned()).collect();
    let (used, listed, fine, started) = (&ids[0], &ids[1], &ids[2], &ids[3]);
    let to = json!({"to_email": "fan2@example.com"});

    // Not the caller's (or no such ticket): 404, whoever is asked for.
    problem(&app.transfer(3, fine, to.clone()).await, 404, "not_found");
    problem(&app.transfer(3, fine, json!({"to_email": "nobody@example.com"})).await, 404, "not_found");
    problem(&app.transfer(1, "1-nothere-1", to.clone()).await, 404, "not_found");
    // No account with that address.
    problem(&app.transfer(1, fine, json!({"to_email": "nobody@example.com"})).await, 404, "no_such_user");
    // Used, or listed for resale: 409.
    let code = app.code(1, used).await;
    assert_eq!(app.gate(&code).await.status, StatusCode::OK);
    let a = app.transfer(1, used, to.clone()).await;
    problem(&a, 409, "not_valid");
    assert_eq!(a.json()["status"], "used");
    let token = listed.split_once('-').expect("event").1.to_owned();
    let mut conn = app.redis.clone();
    let _: () = conn.hset(app.keys.tickets(), &token, "listed|1|1|31|31:3:2||").await.expect("list");
    let a = app.transfer(1, listed, to.clone()).await;
    problem(&a, 409, "not_valid");
    assert_eq!(a.json()["status"], "listed");
    // Event 2 started an hour ago.
    problem(&app.transfer(1, started, to.clone()).await, 403, "transfer_closed");
    // To oneself, a malformed body, no token.
    problem(&app.transfer(1, fine, json!({"to_email": "fan1@example.com"})).await, 400, "same_owner");
    problem(&app.transfer(1, fine, json!({"to": "fan2@example.com"})).await, 400, "invalid_body");
    let path = format!("/api/tickets/{fine}/transfer");
    assert_eq!(call(app.checkout, Method::POST, &path, None, Some(&to)).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(call(app.checkout, Method::GET, &path, Some(&app.token(1)), None).await.status, StatusCode::METHOD_NOT_ALLOWED);

    assert!(app.stream_entries("ticket.transferred").await.is_empty(), "no refusal moved anything");
    let statuses: Vec<String> = app.tickets(1).await.iter().map(|t| t["status"].as_str().unwrap_or_default().to_owned()).collect();
    assert!(!statuses.iter().any(|s| s == "transferred"), "{statuses:?}");
    assert_eq!(app.transfer(1, fine, to).await.status, StatusCode::OK);
}

#[tokio::test]
async fn sixteen_concurrent_transfers_of_one_ticket_move_it_once() {
    let app = Arc::new(App::new().await);
    app.accounts_and_events().await;
    app.buy(1, 1, json!({"section_id": GA.to_string(), "quantity": 1})).await;
    let id = app.tickets(1).await[0]["id"].as_str().expect("id").to_owned();
    let mut tries = tokio::task::JoinSet::new();
    for i in 0..16 {
        let (app, id) = (app.clone(), id.clone());
        // To three recipients: exactly one wins, whichever.
        tries.spawn(async move { app.transfer(1, &id, json!({"to_email": format!("fan{}@example.com", 2 + i % 3)})).await });
    }
    let (mut moved, mut refused) = (0, 0);
    while let Some(a) = tries.join_next().await {
        let a = a.expect("transfer");
        if a.status == StatusCode::OK {
            moved += 1;
        } else {
            problem(&a, 404, "not_found");
            refused += 1;
        }
    }
    assert_eq!((moved, refused), (1, 15));
    let moves = app.stream_entries("ticket.transferred").await;
    assert_eq!(moves.len(), 1);
    assert_eq!(moves[0].get::<String>("ver").as_deref(), Some("2"));
    let owner = moves[0].get::<String>("user").expect("user");
    let owner: u32 = owner.parse().expect("id");
    assert_eq!(app.tickets(owner).await[0]["status"], "valid");
    let others: Vec<u32> = (2..=4).filter(|u| *u != owner).collect();
    for u in others {
        assert!(app.tickets(u).await.is_empty(), "user {u}");
    }
}

#[tokio::test]
async fn the_transfer_function_refuses_calls_out_of_shape_and_answers_each_case() {
    let app = App::new().await;
    let scripts = Scripts::load();
    let mut conn = app.redis.clone();
    let ticket = "0123456789abcdef0123456789abcdef-1";
    let later = (stampede_common::clock::now_ms() + 3_600_000).to_string();
    let calls: Vec<(Vec<String>, Vec<&str>)> = vec![
        (vec![app.keys.tickets(), app.keys.stream()], vec![ticket, "1", "2"]),
        (vec![app.keys.tickets(), app.keys.holds()], vec![ticket, "1", "2", &later]),
        (vec![app.keys.holds(), app.keys.stream()], vec![ticket, "1", "2", &later]),
        (vec![app.keys.tickets(), EventKeys::new(&app.config.redis_prefix, 2).stream()], vec![ticket, "1", "2", &later]),
        (vec![app.keys.tickets(), app.keys.stream()], vec!["0123", "1", "2", &later]),
        (vec![app.keys.tickets(), app.keys.stream()], vec![ticket, "", "2", &later]),
        (vec![app.keys.tickets(), app.keys.stream()], vec![ticket, "1", "a|b", &later]),
        (vec![app.keys.tickets(), app.keys.stream()], vec![ticket, "1", "2", "soon"]),
    ];
    let invoke = |keys: &[String], args: &[&str]| {
        let mut inv = scripts.transfer.key(&keys[0]);
        inv.key(&keys[1]);
        for a in args {
            inv.arg(*a);
        }
        inv
    };
    for (keys, args) in &calls {
        let r: redis::RedisResult<redis::Value> = invoke(keys, args).invoke_async(&mut conn).await;
        assert!(r.is_err_and(|e| refused(&e)), "{keys:?} {args:?}");
    }
    let keys = [app.keys.tickets(), app.keys.stream()];
    let caller = app.redis.clone();
    let answer = |args: Vec<String>| {
        let (keys, scripts) = (keys.clone(), &scripts);
        let mut conn = caller.clone();
        async move {
            let mut inv = scripts.transfer.key(&keys[0]);
            inv.key(&keys[1]);
            for a in &args {
                inv.arg(a);
            }
            inv.invoke_async::<Vec<String>, _>(&mut conn).await.expect("call")
        }
    };
    let args = |from: &str, to: &str, starts: &str| vec![ticket.to_owned(), from.to_owned(), to.to_owned(), starts.to_owned()];
    assert_eq!(answer(args("1", "2", &later)).await, ["not_found"]);
    let _: () = conn.hset(app.keys.tickets(), ticket, "valid|1|3|32|||").await.expect("ticket");
    assert_eq!(answer(args("2", "3", &later)).await, ["not_found"], "not the caller's");
    assert_eq!(answer(args("1", "1", &later)).await, ["same_owner"]);
    assert_eq!(answer(args("1", "2", "0")).await, ["closed"]);
    let r = answer(args("1", "2", &later)).await;
    assert_eq!((r[0].as_str(), r[1].as_str(), r[3].as_str(), r[4].as_str()), ("ok", "4", "32", ""));
    let raw: String = conn.hget(app.keys.tickets(), ticket).await.expect("record");
    assert_eq!(raw, "valid|2|4|32||||t", "a new owner, a higher version, moved by transfer");
    let _: () = conn.hset(app.keys.tickets(), ticket, "used|2|4|32||17|9").await.expect("used");
    assert_eq!(answer(args("2", "3", &later)).await, ["not_valid", "used"]);
    assert_eq!(app.stream_types().await, ["ticket.transferred"], "one call moved it");
}

#[tokio::test]
async fn transfers_reach_postgres_with_their_audit_row_and_both_sides_are_emailed() {
    let app = App::new().await;
    app.accounts_and_events().await;
    app.buy(1, 1, json!({"seats": ["31:5:3"]})).await;
    let id = app.tickets(1).await[0]["id"].as_str().expect("id").to_owned();
    assert_eq!(app.transfer(1, &id, json!({"to_email": "fan2@example.com"})).await.status, StatusCode::OK);
    assert_eq!(app.transfer(2, &id, json!({"to_email": "fan3@example.com"})).await.status, StatusCode::OK);

    let rows = app
        .persist_until(
            "SELECT x.from_user, x.to_user, x.version, x.at IS NOT NULL, t.owner_id, t.version, t.status
             FROM ticket_transfers x JOIN tickets t USING (order_id, n) ORDER BY x.version",
            |rows| rows.len() == 2 && rows[0].get::<_, i32>(5) == 3,
        )
        .await;
    let got: Vec<(i64, i64, i32, bool, i64, i32, String)> =
        rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5), r.get(6))).collect();
    assert_eq!(got, vec![(1, 2, 2, true, 3, 3, "valid".into()), (2, 3, 3, true, 3, 3, "valid".into())]);
    // With Redis's indexes gone, Postgres lists it: the givers' as transferred.
    let mut conn = app.redis.clone();
    for u in 1..=3 {
        let _: () = conn.del(format!("{}:u:{{{u}}}:tickets", app.config.redis_prefix)).await.expect("del");
    }
    for (user, status) in [(1, "transferred"), (2, "transferred"), (3, "valid")] {
        let list = app.tickets(user).await;
        assert_eq!((list.len(), list[0]["id"].as_str(), list[0]["status"].as_str()), (1, Some(id.as_str()), Some(status)), "user {user}");
    }

    // The notifier: one e-mail to each side of each transfer.
    let settings = CheckoutConfig::from_env(&app.config.env).expect("checkout config");
    let worker = Arc::new(stampede_checkout::NotifierWorker::build(&app.config, &settings, app.db.clone(), app.redis.clone()));
    let (stop, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(worker.run(rx));
    let dir = std::path::PathBuf::from(&settings.mail.dir);
    let transfers = || {
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .map(|d| d.filter_map(Result::ok).map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n.starts_with("transfer-")).collect())
            .unwrap_or_default();
        names.sort();
        names
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while transfers().len() < 4 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    let want: Vec<String> = ["v2-from", "v2-to", "v3-from", "v3-to"].iter().map(|s| format!("transfer-{id}-{s}.eml")).collect();
    assert_eq!(transfers(), want);
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).expect("mail");
    let first_from = read(&want[0]);
    assert!(first_from.contains("To: fan1@example.com\r\n") && first_from.contains("to fan2@example.com"), "{first_from}");
    let first_to = read(&want[1]);
    assert!(first_to.contains("To: fan2@example.com\r\n") && first_to.contains("Subject: fan1@example.com sent you a ticket for Gig"), "{first_to}");
    assert!(read(&want[3]).contains("To: fan3@example.com\r\n"));
}
