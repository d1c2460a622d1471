//! The flash-sale rush, as Goose load tests. Scenarios (pick with Goose's
//! `--scenarios`):
//!
//! - `rush`: buyers as a person is one. Each visit opens the event page; on
//!   an event with a waiting room the buyer joins the line there and polls
//!   it every 2 s as the web client does (or after its think time, when
//!   longer) until admitted, or until it says `sold_out`. Most buyers then
//!   ask for 2–4 best-available seats together in a section (another
//!   section on 409, and on the visit's last try seats not necessarily
//!   together); a minority (`STAMPEDE_LOADTEST_PICK_PERCENT`, default 20)
//!   load the section's compact seat map (`?format=rows`), look at it, and
//!   hold 1–4 free seats side by side (a fresh map and another pick on
//!   409). With a hold, the buyer pays (80 %), releases it (10 %) or walks
//!   away and lets it expire (10 %), then comes back for more until the
//!   per-user limit; at the limit or when nothing is left it looks at the
//!   event page now and then (and buys again if seats come back);
//! - `ga-rush`: the same on a general-admission section (1–4 places);
//! - `browse`: read-only traffic on the event list, event and seat maps.
//!
//! Every step is one page view, and between two of them the buyer thinks:
//! a random pause of `STAMPEDE_LOADTEST_THINK_MS` (`MIN-MAX` or one figure,
//! milliseconds; default `500-3000`). `0` takes the pauses away: closed-loop
//! users that measure throughput, not what a buyer feels. A waiting room's
//! line is polled no more often than every 2 s, whatever the think time.
//!
//! Requests are named by kind in Goose's reports: `sign in`, `event`,
//! `event list`, `queue join`, `queue status`, `seat map`, `hold best`,
//! `hold seats`, `hold ga`, `pay`, `release`.
//!
//! Users are pre-provisioned (`stampede admin seed-users --count N
//! --password P`): Goose user *i* signs in once as `user<i+1>@<domain>`.
//! Settings come from the environment: `STAMPEDE_LOADTEST_EVENT` (the event
//! id), `STAMPEDE_LOADTEST_PASSWORD`, `STAMPEDE_LOADTEST_DOMAIN` (default
//! `load.test`), and the two above. Everything else is Goose's own flags
//! (`--host`, `--users`, `--increase-rate`, `--run-time`, `--report-file`, …).

use std::time::{Duration, Instant};

use goose::prelude::*;
use rand::Rng;
use rand::seq::IndexedRandom;
use serde_json::{Value, json};

/// How often a buyer in a waiting room's line asks for its turn (the web
/// client's interval).
const QUEUE_POLL: Duration = Duration::from_secs(2);
/// Holds tried in one visit before the buyer starts over from the event page.
const ATTEMPTS: u8 = 3;

/// Where a buyer is in a visit: the next step it takes.
#[derive(Clone, Debug, PartialEq)]
enum Step {
    /// The event page: where every visit starts.
    Event,
    /// In the waiting room's line.
    Queue,
    /// Choosing: best available, or (a seat picker) loading a seat map.
    Choose,
    /// A seat picker looking at a map: the seats it will ask for.
    Pick(Vec<String>),
    /// A hold to pay for, release or walk away from.
    Settle(String),
    /// At the per-user limit or nothing left: looks at the event page now and then.
    Done,
}

/// A signed-in buyer's state.
#[derive(Clone)]
struct Buyer {
    token: String,
    /// `ga-rush`: buys places in general-admission sections.
    ga: bool,
    step: Step,
    /// This visit picks seats from the map instead of asking for best available.
    picker: bool,
    /// Holds refused in this visit.
    attempts: u8,
    /// Sections with something left, as of the last event page (and minus
    /// those that refused this visit's best-available hold).
    sections: Vec<String>,
    /// The section this visit's picker is looking at.
    section: Option<String>,
    /// Reached the per-user limit: only looks from now on.
    at_limit: bool,
    /// The waiting room: the place in line, then the pass it turned into.
    ticket: Option<String>,
    pass: Option<String>,
    last_poll: Option<Instant>,
}

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn event_id() -> String {
    env("STAMPEDE_LOADTEST_EVENT", "1")
}

/// `MIN-MAX` or `N` milliseconds → the think time's bounds.
fn think_time(spec: &str) -> Result<(Duration, Duration), String> {
    let ms = |s: &str| s.trim().parse::<u64>().map(Duration::from_millis).map_err(|_| format!("not milliseconds: {s:?}"));
    let (min, max) = match spec.split_once('-') {
        Some((a, b)) => (ms(a)?, ms(b)?),
        None => (ms(spec)?, ms(spec)?),
    };
    if min > max {
        return Err(format!("the think time's minimum is above its maximum: {spec:?}"));
    }
    Ok((min, max))
}

fn pick_percent() -> u32 {
    env("STAMPEDE_LOADTEST_PICK_PERCENT", "20").parse().map_or(20, |p: u32| p.min(100))
}

fn failed(detail: &str) -> Box<TransactionError> {
    Box::new(TransactionError::Custom(detail.to_owned()))
}

/// Signs in once as `user<i+1>@<domain>`.
async fn sign_in(user: &mut GooseUser, ga: bool) -> TransactionResult {
    let email = format!("user{}@{}", user.weighted_users_index + 1, env("STAMPEDE_LOADTEST_DOMAIN", "load.test"));
    let body = json!({"email": email, "password": env("STAMPEDE_LOADTEST_PASSWORD", "load-test-password")});
    let rb = user.get_request_builder(&GooseMethod::Post, "/api/auth/signin")?.json(&body);
    let req = GooseRequest::builder().method(GooseMethod::Post).path("/api/auth/signin").name("sign in").set_request_builder(rb).build();
    let mut goose = user.request(req).await?;
    let token = match goose.response {
        Ok(r) if r.status().as_u16() == 200 => {
            let v: Value = r.json().await.map_err(|e| failed(&e.to_string()))?;
            v["access_token"].as_str().unwrap_or_default().to_owned()
        }
        _ => {
            return user.set_failure("sign-in failed", &mut goose.request, None, None);
        }
    };
    user.set_session_data(Buyer {
        token,
        ga,
        step: Step::Event,
        picker: false,
        attempts: 0,
        sections: Vec::new(),
        section: None,
        at_limit: false,
        ticket: None,
        pass: None,
        last_poll: None,
    });
    Ok(())
}

async fn sign_in_seated(user: &mut GooseUser) -> TransactionResult {
    sign_in(user, false).await
}

async fn sign_in_ga(user: &mut GooseUser) -> TransactionResult {
    sign_in(user, true).await
}

fn buyer(user: &GooseUser) -> Option<Buyer> {
    user.get_session_data::<Buyer>().cloned()
}

fn update(user: &mut GooseUser, f: impl FnOnce(&mut Buyer)) {
    if let Some(b) = user.get_session_data_mut::<Buyer>() {
        f(b);
    }
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
    let (token, pass) = user.get_session_data::<Buyer>().map(|b| (b.token.clone(), b.pass.clone())).unwrap_or_default();
    let mut rb = user.get_request_builder(&method, path)?.bearer_auth(token);
    // Services other than a waiting-room event's holds ignore the pass.
    if let Some(pass) = pass {
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

async fn get_event(user: &mut GooseUser) -> Result<(u16, Value), Box<TransactionError>> {
    let path = format!("/api/events/{}", event_id());
    send(user, GooseMethod::Get, &path, "event", None, None, &[200]).await
}

/// The ids of the sections of one kind with something left.
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

/// The seats a person picks from a compact seat map (`?format=rows`: one
/// status character per seat, `f` free): `want` free seats side by side in
/// a random row that has them, else any `want` free seats (fewer if fewer
/// are free).
fn pick_seats(section: &str, map: &Value, want: usize, rng: &mut impl Rng) -> Vec<String> {
    let Some(rows) = map["rows"].as_array() else { return Vec::new() };
    let id = |row: u64, i: usize| format!("{section}:{row}:{}", i + 1);
    let mut blocks = Vec::new();
    let mut free = Vec::new();
    for row in rows {
        let (Some(r), Some(statuses)) = (row["row"].as_u64(), row["statuses"].as_str()) else { continue };
        let mut run = 0;
        for (i, c) in statuses.bytes().enumerate() {
            run = if c == b'f' { run + 1 } else { 0 };
            if c == b'f' {
                free.push(id(r, i));
            }
            if run >= want {
                blocks.push((r, i + 1 - want));
            }
        }
    }
    if let Some(&(r, first)) = blocks.choose(rng) {
        return (first..first + want).map(|i| id(r, i)).collect();
    }
    free.choose_multiple(rng, want).cloned().collect()
}

/// The path of a section's compact seat map.
fn map_path(section: &str) -> String {
    format!("/api/events/{}/sections/{section}/seats?format=rows", event_id())
}

/// One step of a buyer (`rush` and `ga-rush`): one page view, then Goose's
/// think time.
async fn step(user: &mut GooseUser) -> TransactionResult {
    let Some(b) = buyer(user) else { return Ok(()) };
    match b.step.clone() {
        Step::Event => visit(user, &b).await,
        Step::Queue => queue(user, &b).await,
        Step::Choose if b.ga => hold_ga(user, &b).await,
        Step::Choose if b.picker => seat_map(user, &b).await,
        Step::Choose => hold_best(user, &b).await,
        Step::Pick(seats) => hold_seats(user, seats).await,
        Step::Settle(hold) => settle(user, &hold).await,
        Step::Done => linger(user, &b).await,
    }
}

/// A visit starts at the event page; on a waiting-room event without a
/// pass the page puts the buyer in line (as the web client does).
async fn visit(user: &mut GooseUser, b: &Buyer) -> TransactionResult {
    let (status, event) = get_event(user).await?;
    if status != 200 {
        return Ok(());
    }
    let left = sections(&event, b.ga);
    let picker = !b.ga && rand::rng().random_range(0..100) < pick_percent();
    let waiting = event["waiting_room"].as_bool() == Some(true) && b.pass.is_none();
    let next = if left.is_empty() {
        Step::Done
    } else if waiting {
        if b.ticket.is_none() {
            let path = format!("/api/events/{}/queue", event_id());
            let (code, placed) = send(user, GooseMethod::Post, &path, "queue join", None, None, &[201]).await?;
            let ticket = placed["ticket"].as_str().filter(|_| code == 201).map(str::to_owned);
            let joined = ticket.is_some();
            update(user, |b| {
                b.ticket = ticket;
                b.last_poll = Some(Instant::now());
            });
            if !joined {
                return Ok(());
            }
        }
        Step::Queue
    } else {
        Step::Choose
    };
    update(user, |b| {
        b.step = next;
        b.sections = left;
        b.picker = picker;
        b.attempts = 0;
        b.section = None;
    });
    Ok(())
}

/// In line: asks for its turn every [`QUEUE_POLL`].
async fn queue(user: &mut GooseUser, b: &Buyer) -> TransactionResult {
    let Some(ticket) = b.ticket.clone() else {
        update(user, |b| b.step = Step::Event);
        return Ok(());
    };
    if let Some(wait) = b.last_poll.and_then(|t| QUEUE_POLL.checked_sub(t.elapsed())) {
        tokio::time::sleep(wait).await;
    }
    let path = format!("/api/events/{}/queue/{ticket}", event_id());
    let (code, status) = send(user, GooseMethod::Get, &path, "queue status", None, None, &[200]).await?;
    let pass = status["pass"].as_str().filter(|_| status["admitted"] == true).map(str::to_owned);
    let sold_out = status["sold_out"] == true;
    update(user, |b| {
        b.last_poll = Some(Instant::now());
        if code == 404 {
            // A ticket the service no longer knows: join again.
            b.ticket = None;
            b.step = Step::Event;
        } else if pass.is_some() {
            b.pass = pass;
            b.step = Step::Choose;
        } else if sold_out {
            b.step = Step::Done;
        }
    });
    Ok(())
}

/// After a refused hold: another try in this visit, or back to the event page.
fn refused(user: &mut GooseUser, section: Option<&str>) {
    update(user, |b| {
        b.attempts += 1;
        if let Some(s) = section {
            b.sections.retain(|x| x != s);
        }
        b.step = if b.attempts >= ATTEMPTS || b.sections.is_empty() { Step::Event } else { Step::Choose };
    });
}

/// The answer to a hold: on to paying, another try, the limit, or back in line.
fn held(user: &mut GooseUser, status: u16, hold: &Value, section: Option<&str>) {
    match status {
        201 => update(user, |b| b.step = Step::Settle(hold["id"].as_str().unwrap_or_default().to_owned())),
        409 => refused(user, section),
        429 => update(user, |b| {
            b.at_limit = true;
            b.step = Step::Done;
        }),
        _ => update(user, |b| {
            // A pass that lapsed: back to the line from the event page.
            if hold["code"] == "queue_pass_required" {
                b.pass = None;
            }
            b.step = Step::Event;
        }),
    }
}

fn holds_path() -> String {
    format!("/api/events/{}/holds", event_id())
}

/// "N best available" in a random section with seats left: 2–4 seats
/// together, or (the visit's last try) not necessarily together.
async fn hold_best(user: &mut GooseUser, b: &Buyer) -> TransactionResult {
    let Some(section) = b.sections.choose(&mut rand::rng()).cloned() else {
        update(user, |b| b.step = Step::Event);
        return Ok(());
    };
    let quantity = rand::rng().random_range(2..=4);
    let body = json!({"section_id": section, "quantity": quantity, "adjacent": b.attempts + 1 < ATTEMPTS});
    let (status, hold) = send(user, GooseMethod::Post, &holds_path(), "hold best", Some(&body), None, &[201, 409, 429]).await?;
    // 409: no block that size left in this section; another section next.
    held(user, status, &hold, Some(&section));
    Ok(())
}

/// A seat picker loads a section's compact map and chooses 1–4 seats to ask for.
async fn seat_map(user: &mut GooseUser, b: &Buyer) -> TransactionResult {
    let section = match b.section.clone().or_else(|| b.sections.choose(&mut rand::rng()).cloned()) {
        Some(s) => s,
        None => {
            update(user, |b| b.step = Step::Event);
            return Ok(());
        }
    };
    let (status, map) = send(user, GooseMethod::Get, &map_path(&section), "seat map", None, None, &[200]).await?;
    if status != 200 {
        update(user, |b| b.step = Step::Event);
        return Ok(());
    }
    let want = rand::rng().random_range(1..=4);
    let seats = pick_seats(&section, &map, want, &mut rand::rng());
    if seats.is_empty() {
        update(user, |b| b.section = None);
        refused(user, Some(&section));
        return Ok(());
    }
    update(user, |b| {
        b.section = Some(section);
        b.step = Step::Pick(seats);
    });
    Ok(())
}

/// The picker asks for the seats it chose; on 409 it looks at a fresh map.
async fn hold_seats(user: &mut GooseUser, seats: Vec<String>) -> TransactionResult {
    let body = json!({"seats": seats});
    let (status, hold) = send(user, GooseMethod::Post, &holds_path(), "hold seats", Some(&body), None, &[201, 409, 429]).await?;
    held(user, status, &hold, None);
    Ok(())
}

/// 1–4 places of a general-admission section.
async fn hold_ga(user: &mut GooseUser, b: &Buyer) -> TransactionResult {
    let Some(section) = b.sections.choose(&mut rand::rng()).cloned() else {
        update(user, |b| b.step = Step::Event);
        return Ok(());
    };
    let quantity = rand::rng().random_range(1..=4);
    let body = json!({"section_id": section, "quantity": quantity});
    let (status, hold) = send(user, GooseMethod::Post, &holds_path(), "hold ga", Some(&body), None, &[201, 409, 429]).await?;
    held(user, status, &hold, Some(&section));
    Ok(())
}

/// After a hold: pay (80 %), release (10 %) or walk away (10 %); then the
/// next visit.
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
    update(user, |b| b.step = Step::Event);
    Ok(())
}

/// A buyer at the limit, or who found nothing left, looks at the event page
/// now and then; when seats come back (lapsed holds) it tries again.
async fn linger(user: &mut GooseUser, b: &Buyer) -> TransactionResult {
    let (status, event) = get_event(user).await?;
    if status == 200 && !b.at_limit && !sections(&event, b.ga).is_empty() {
        update(user, |b| b.step = Step::Event);
    }
    Ok(())
}

/// Read-only traffic: the list, the event, one seat map.
async fn browse(user: &mut GooseUser) -> TransactionResult {
    send(user, GooseMethod::Get, "/api/events?limit=20", "event list", None, None, &[200]).await?;
    let (_, event) = get_event(user).await?;
    let section = sections(&event, false).choose(&mut rand::rng()).cloned();
    if let Some(section) = section {
        send(user, GooseMethod::Get, &map_path(&section), "seat map", None, None, &[200]).await?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), GooseError> {
    let (min, max) = think_time(&env("STAMPEDE_LOADTEST_THINK_MS", "500-3000")).map_err(|detail| GooseError::InvalidOption {
        option: "STAMPEDE_LOADTEST_THINK_MS".to_owned(),
        value: env("STAMPEDE_LOADTEST_THINK_MS", ""),
        detail,
    })?;
    GooseAttack::initialize()?
        .register_scenario(
            scenario!("rush")
                .set_wait_time(min, max)?
                .register_transaction(transaction!(sign_in_seated).set_on_start().set_name("sign in"))
                .register_transaction(transaction!(step).set_name("rush")),
        )
        .register_scenario(
            scenario!("ga-rush")
                .set_wait_time(min, max)?
                .register_transaction(transaction!(sign_in_ga).set_on_start().set_name("sign in"))
                .register_transaction(transaction!(step).set_name("ga rush")),
        )
        .register_scenario(
            scenario!("browse")
                .set_wait_time(min, max)?
                .register_transaction(transaction!(sign_in_seated).set_on_start().set_name("sign in"))
                .register_transaction(transaction!(browse).set_name("browse")),
        )
        .execute()
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    #[test]
    fn think_times_parse() {
        let ms = Duration::from_millis;
        assert_eq!(think_time("500-3000"), Ok((ms(500), ms(3000))));
        assert_eq!(think_time("0"), Ok((ms(0), ms(0))));
        assert_eq!(think_time(" 100 - 200 "), Ok((ms(100), ms(200))));
        assert!(think_time("3000-500").is_err());
        assert!(think_time("soon").is_err());
    }

    #[test]
    fn a_picker_takes_seats_side_by_side_when_a_row_has_them() {
        let map = json!({"rows": [{"row": 1, "statuses": "fhfhf"}, {"row": 2, "statuses": "sffhf"}]});
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..20 {
            assert_eq!(pick_seats("A", &map, 2, &mut rng), ["A:2:2", "A:2:3"]);
        }
        // No three together: any three free seats.
        let three = pick_seats("A", &map, 3, &mut rng);
        assert_eq!(three.len(), 3);
        let free = ["A:1:1", "A:1:3", "A:1:5", "A:2:2", "A:2:3", "A:2:5"];
        assert!(three.iter().all(|s| free.contains(&s.as_str())), "{three:?}");
        assert!(pick_seats("A", &json!({"rows": [{"row": 1, "statuses": "shs"}]}), 1, &mut rng).is_empty());
    }
}
