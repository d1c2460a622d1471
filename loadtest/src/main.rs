//! The flash-sale rush, as Goose load tests. Scenarios (pick with Goose's
//! `--scenarios`):
//!
//! - `rush`: a signed-in buyer looks at the event and a (compact) seat map, holds 1–4
//!   random free seats (another pick on 409, as a person would), then pays
//!   (80 %), releases (10 %) or abandons the hold to expire (10 %);
//! - `ga-rush`: the same on a general-admission section;
//! - `browse`: read-only traffic on the event list, event and seat maps.
//!
//! On an event with a waiting room, a buyer of `rush` or `ga-rush` first
//! takes a place in line, polls it (about once a second, as the web client
//! does) until admitted, and sends the pass it gets with every hold; a 403
//! `queue_pass_required` (the pass lapsed) sends it back to the line.
//!
//! Users are pre-provisioned (`stampede admin seed-users --count N
//! --password P`): Goose user *i* signs in once as `user<i+1>@<domain>`.
//! Settings come from the environment: `STAMPEDE_LOADTEST_EVENT` (the event
//! id), `STAMPEDE_LOADTEST_PASSWORD`, `STAMPEDE_LOADTEST_DOMAIN` (default
//! `load.test`). Everything else is Goose's own flags (`--host`, `--users`,
//! `--increase-rate`, `--run-time`, `--report-file`, …).

use std::time::Duration;

use goose::prelude::*;
use rand::Rng;
use rand::seq::IndexedRandom;
use serde_json::{Value, json};

/// A signed-in buyer's state.
#[derive(Clone)]
struct Buyer {
    token: String,
    /// Reached the per-user limit or found the section sold out: browses only.
    done: bool,
    /// The waiting room: the place in line, then the pass it turned into.
    ticket: Option<String>,
    pass: Option<String>,
}

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn event_id() -> String {
    env("STAMPEDE_LOADTEST_EVENT", "1")
}

fn failed(detail: &str) -> Box<TransactionError> {
    Box::new(TransactionError::Custom(detail.to_owned()))
}

/// Signs in once as `user<i+1>@<domain>`.
async fn sign_in(user: &mut GooseUser) -> TransactionResult {
    let email = format!("user{}@{}", user.weighted_users_index + 1, env("STAMPEDE_LOADTEST_DOMAIN", "load.test"));
    let body = json!({"email": email, "password": env("STAMPEDE_LOADTEST_PASSWORD", "load-test-password")});
    let mut goose = user.post_json("/api/auth/signin", &body).await?;
    let token = match goose.response {
        Ok(r) if r.status().as_u16() == 200 => {
            let v: Value = r.json().await.map_err(|e| failed(&e.to_string()))?;
            v["access_token"].as_str().unwrap_or_default().to_owned()
        }
        _ => {
            return user.set_failure("sign-in failed", &mut goose.request, None, None);
        }
    };
    user.set_session_data(Buyer { token, done: false, ticket: None, pass: None });
    Ok(())
}

fn token(user: &GooseUser) -> String {
    user.get_session_data::<Buyer>().map(|b| b.token.clone()).unwrap_or_default()
}

/// Sends `method path` with the buyer's token (and JSON body), names it
/// `name`, counts `ok` statuses as successes, and returns status and body.
async fn send(
    user: &mut GooseUser,
    method: GooseMethod,
    path: &str,
    name: &str,
    body: Option<&Value>,
    idempotency: Option<&str>,
    ok: &[u16],
) -> Result<(u16, Value), Box<TransactionError>> {
    let mut rb = user.get_request_builder(&method, path)?.bearer_auth(token(user));
    // Services other than a waiting-room event's holds ignore the pass.
    if let Some(pass) = user.get_session_data::<Buyer>().and_then(|b| b.pass.clone()) {
        rb = rb.header("X-Queue-Pass", pass);
    }
    if let Some(b) = body {
        rb = rb.json(b);
    }
    if let Some(k) = idempotency {
        rb = rb.header("Idempotency-Key", k);
    }
    let req = GooseRequest::builder().method(method).path(path).name(name).set_request_builder(rb).build();
    let mut goose = user.request(req).await?;
    let (status, value) = match goose.response {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
        Err(_) => (0, Value::Null),
    };
    if ok.contains(&status) {
        user.set_success(&mut goose.request)?;
    }
    Ok((status, value))
}

async fn get_event(user: &mut GooseUser) -> Result<Value, Box<TransactionError>> {
    let path = format!("/api/events/{}", event_id());
    let (_, event) = send(user, GooseMethod::Get, &path, "event", None, None, &[200]).await?;
    Ok(event)
}

fn sections(event: &Value, general_admission: bool) -> Vec<String> {
    event["sections"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|s| s["general_admission"].as_bool() == Some(general_admission) && s["available"].as_i64().unwrap_or(0) > 0)
                .filter_map(|s| s["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// After a hold: pay (80 %), release (10 %) or walk away (10 %).
async fn settle(user: &mut GooseUser, hold: &str) -> TransactionResult {
    let roll = rand::rng().random_range(0..100);
    if roll < 80 {
        let key = format!("k{}", rand::rng().random::<u64>());
        let path = format!("/api/holds/{hold}/payment");
        let body = json!({"payment_method": "pm_card_visa"});
        // 410: the hold lapsed while paying (refunded); counted, not a failure.
        send(user, GooseMethod::Post, &path, "pay", Some(&body), Some(&key), &[201, 410]).await?;
    } else if roll < 90 {
        send(user, GooseMethod::Delete, &format!("/api/holds/{hold}"), "release", None, None, &[204]).await?;
    }
    Ok(())
}

/// Whether the buyer may hold on `event` now: always without a waiting room;
/// with one, once the place in line has turned into a pass. A buyer still in
/// line polls once and waits a second.
async fn admitted(user: &mut GooseUser, event: &Value) -> Result<bool, Box<TransactionError>> {
    if event["waiting_room"].as_bool() != Some(true) {
        return Ok(true);
    }
    let Some(buyer) = user.get_session_data::<Buyer>().cloned() else { return Ok(false) };
    if buyer.pass.is_some() {
        return Ok(true);
    }
    let ticket = match buyer.ticket {
        Some(t) => t,
        None => {
            let path = format!("/api/events/{}/queue", event_id());
            let (status, placed) = send(user, GooseMethod::Post, &path, "queue join", None, None, &[201]).await?;
            match placed["ticket"].as_str() {
                Some(t) if status == 201 => t.to_owned(),
                _ => return Ok(false),
            }
        }
    };
    let path = format!("/api/events/{}/queue/{ticket}", event_id());
    let (code, status) = send(user, GooseMethod::Get, &path, "queue status", None, None, &[200]).await?;
    let pass = status["pass"].as_str().filter(|_| status["admitted"] == true).map(str::to_owned);
    let in_line = pass.is_none();
    if let Some(b) = user.get_session_data_mut::<Buyer>() {
        // A ticket the service no longer knows: join again next time.
        b.ticket = (code != 404).then_some(ticket);
        b.pass = pass;
    }
    if in_line {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(!in_line)
}

/// A hold refused for want of a pass: back to the line.
fn lost_pass(user: &mut GooseUser, problem: &Value) {
    if problem["code"] == "queue_pass_required"
        && let Some(b) = user.get_session_data_mut::<Buyer>()
    {
        b.pass = None;
    }
}

fn mark_done(user: &mut GooseUser) {
    if let Some(b) = user.get_session_data_mut::<Buyer>() {
        b.done = true;
    }
}

fn is_done(user: &GooseUser) -> bool {
    user.get_session_data::<Buyer>().is_none_or(|b| b.done)
}

/// The ids of the free seats of a compact seat map (`?format=rows`: one
/// status character per seat, `f` free).
fn free_seats(section: &str, map: &Value) -> Vec<String> {
    let Some(rows) = map["rows"].as_array() else { return Vec::new() };
    let mut free = Vec::new();
    for row in rows {
        let (Some(r), Some(statuses)) = (row["row"].as_u64(), row["statuses"].as_str()) else { continue };
        free.extend(statuses.bytes().enumerate().filter(|(_, c)| *c == b'f').map(|(i, _)| format!("{section}:{r}:{}", i + 1)));
    }
    free
}

/// One attempt to buy seats on a seated section.
async fn rush(user: &mut GooseUser) -> TransactionResult {
    if is_done(user) {
        return linger(user).await;
    }
    let event = get_event(user).await?;
    if !admitted(user, &event).await? {
        return Ok(());
    }
    let seated = sections(&event, false);
    let Some(section) = seated.choose(&mut rand::rng()).cloned() else {
        mark_done(user);
        return Ok(());
    };
    let path = format!("/api/events/{}/holds", event_id());
    for _attempt in 0..3 {
        let map_path = format!("/api/events/{}/sections/{section}/seats?format=rows", event_id());
        let (_, map) = send(user, GooseMethod::Get, &map_path, "seat map", None, None, &[200]).await?;
        let free = free_seats(&section, &map);
        if free.is_empty() {
            return Ok(());
        }
        let want = rand::rng().random_range(1..=4).min(free.len());
        let picks: Vec<String> = free.choose_multiple(&mut rand::rng(), want).cloned().collect();
        let (status, hold) = send(user, GooseMethod::Post, &path, "hold", Some(&json!({"seats": picks})), None, &[201, 409, 429]).await?;
        match status {
            201 => return settle(user, hold["id"].as_str().unwrap_or_default()).await,
            409 => continue, // someone was faster: pick again from a fresh map
            429 => {
                mark_done(user);
                return Ok(());
            }
            _ => {
                lost_pass(user, &hold);
                return Ok(());
            }
        }
    }
    Ok(())
}

/// One attempt to buy places in a general-admission section.
async fn ga_rush(user: &mut GooseUser) -> TransactionResult {
    if is_done(user) {
        return linger(user).await;
    }
    let event = get_event(user).await?;
    if !admitted(user, &event).await? {
        return Ok(());
    }
    let ga = sections(&event, true);
    let Some(section) = ga.choose(&mut rand::rng()).cloned() else {
        mark_done(user);
        return Ok(());
    };
    let quantity = rand::rng().random_range(1..=4);
    let path = format!("/api/events/{}/holds", event_id());
    let body = json!({"section_id": section, "quantity": quantity});
    let (status, hold) = send(user, GooseMethod::Post, &path, "hold ga", Some(&body), None, &[201, 409, 429]).await?;
    match status {
        201 => settle(user, hold["id"].as_str().unwrap_or_default()).await,
        429 => {
            mark_done(user);
            Ok(())
        }
        _ => {
            lost_pass(user, &hold);
            Ok(())
        }
    }
}

/// A buyer who is done (at the limit, or the section sold out) looks around
/// now and then, as a person would, instead of hammering the event page.
async fn linger(user: &mut GooseUser) -> TransactionResult {
    browse(user).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok(())
}

/// Read-only traffic: the list, the event, one seat map.
async fn browse(user: &mut GooseUser) -> TransactionResult {
    send(user, GooseMethod::Get, "/api/events?limit=20", "event list", None, None, &[200]).await?;
    let event = get_event(user).await?;
    let section = sections(&event, false).choose(&mut rand::rng()).cloned();
    if let Some(section) = section {
        let map_path = format!("/api/events/{}/sections/{section}/seats?format=rows", event_id());
        send(user, GooseMethod::Get, &map_path, "seat map", None, None, &[200]).await?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), GooseError> {
    let think = Duration::from_millis(0);
    GooseAttack::initialize()?
        .register_scenario(
            scenario!("rush")
                .set_wait_time(think, think)?
                .register_transaction(transaction!(sign_in).set_on_start().set_name("sign in"))
                .register_transaction(transaction!(rush).set_name("rush")),
        )
        .register_scenario(
            scenario!("ga-rush")
                .set_wait_time(think, think)?
                .register_transaction(transaction!(sign_in).set_on_start().set_name("sign in"))
                .register_transaction(transaction!(ga_rush).set_name("ga rush")),
        )
        .register_scenario(
            scenario!("browse")
                .set_wait_time(Duration::from_millis(200), Duration::from_millis(1000))?
                .register_transaction(transaction!(sign_in).set_on_start().set_name("sign in"))
                .register_transaction(transaction!(browse).set_name("browse")),
        )
        .execute()
        .await?;
    Ok(())
}
