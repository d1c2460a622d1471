//! `POST /api/events/{id}/holds`, `GET /api/holds/{id}`, `DELETE /api/holds/{id}`.
//! A hold on a waiting-room event needs a valid `X-Queue-Pass` ([`crate::pass`]).

use std::time::Instant;

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use metrics::{Counter, Histogram, counter, histogram};
use serde::Deserialize;
use stampede_common::Problem;
use stampede_common::clock::now_ms;
use stampede_common::http::{self, Resp};
use stampede_common::ids::is_token;
use stampede_inventory::{
    EventKeys, HoldId, HoldOutcome, HoldRecord, HoldRequest, HoldView, Reason, ReleaseOutcome, SeatRef, hold_best, hold_seats, read_hold,
    release,
};

use crate::ReservationService;

/// The most seats or places one request may name (the per-user limit is at most 50).
const MAX_PER_REQUEST: usize = 50;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateHold {
    seats: Option<Vec<String>>,
    section_id: Option<Id>,
    quantity: Option<i64>,
    /// With `section_id` and `quantity` on a seated section: one block of
    /// adjacent seats (the default) or the best seats wherever they are.
    adjacent: Option<bool>,
}

/// An id given as a string (the contract) or, leniently, a number.
#[derive(Deserialize)]
#[serde(untagged)]
enum Id {
    Text(String),
    Number(i64),
}

impl Id {
    fn parse(&self) -> Option<i64> {
        match self {
            Id::Text(s) => s.parse().ok(),
            Id::Number(n) => Some(*n),
        }
        // The scripts take ids of up to 18 digits; the catalog never issues more.
        .filter(|n| (1..1_000_000_000_000_000_000).contains(n))
    }
}

/// The hold route's series, registered once: a labelled series looked up
/// in the registry on every request builds and hashes its key each time.
pub(crate) struct HoldMetrics {
    outcomes: Vec<(&'static str, Counter)>,
    hold: Histogram,
    hold_best: Histogram,
}

impl HoldMetrics {
    const OUTCOMES: [&'static str; 8] = [
        "created",
        "replayed",
        "unavailable",
        "limit_exceeded",
        "not_on_sale",
        "queue_pass_required",
        "email_unverified",
        "invalid",
    ];

    pub(crate) fn register() -> Self {
        Self {
            outcomes: Self::OUTCOMES.iter().map(|o| (*o, counter!("holds_total", "outcome" => *o))).collect(),
            hold: histogram!("redis_script_duration_seconds", "script" => "hold"),
            hold_best: histogram!("redis_script_duration_seconds", "script" => "hold_best"),
        }
    }

    fn outcome(&self, label: &'static str) {
        match self.outcomes.iter().find(|(o, _)| *o == label) {
            Some((_, c)) => c.increment(1),
            None => counter!("holds_total", "outcome" => label).increment(1),
        }
    }
}

pub(crate) async fn create(svc: &ReservationService, event: Option<i64>, req: Request<Incoming>) -> Result<Resp, Problem> {
    let who = svc.tokens.authenticate(req.headers())?;
    let event = event.ok_or_else(|| Problem::not_found("no such event"))?;
    let idem = match http::header(req.headers(), "idempotency-key") {
        None => None,
        Some(k) if is_token(k, 128) => Some(k.to_owned()),
        Some(_) => {
            return Err(Problem::bad_request("invalid_idempotency_key", "Idempotency-Key must be 1-128 of [A-Za-z0-9_-]"));
        }
    };
    // Checked here, with no network call; the script decides whether the
    // event needs it (an event without a waiting room ignores it).
    let queue_pass = http::header(req.headers(), "x-queue-pass").is_some_and(|p| svc.passes.verify(p, &who.user_id, event, now_ms()));
    let body: CreateHold = http::read_json(req.into_body(), svc.max_body).await?;
    let keys = EventKeys::new(&svc.prefix, event);
    let hold = HoldId::generate(event);
    let request = HoldRequest {
        user: &who.user_id,
        hold: &hold.token,
        idempotency: idem.as_deref(),
        queue_pass,
        // From the access token, so no lookup: the script refuses an
        // unverified caller only on an event that requires it.
        email_verified: who.email_verified,
    };
    let mut conn = svc.redis.clone();
    let started = Instant::now();
    let (script, seat_ids, section, result) = match (body.seats, body.section_id, body.quantity, body.adjacent) {
        (Some(seats), None, None, None) => {
            if seats.is_empty() || seats.len() > MAX_PER_REQUEST {
                svc.metrics.outcome("invalid");
                return Err(Problem::bad_request("invalid_seats", format!("name 1 to {MAX_PER_REQUEST} seats")));
            }
            let mut refs = Vec::with_capacity(seats.len());
            let mut malformed = Vec::new();
            for s in &seats {
                match SeatRef::parse(s) {
                    Some(r) => refs.push(r),
                    None => malformed.push(s.clone()),
                }
            }
            if !malformed.is_empty() {
                svc.metrics.outcome("invalid");
                return Err(Problem::bad_request("unknown_seats", "seat ids look like \"<section_id>:<row>:<number>\"")
                    .with("seats", malformed));
            }
            for (i, r) in refs.iter().enumerate() {
                if refs[..i].contains(r) {
                    svc.metrics.outcome("invalid");
                    return Err(Problem::bad_request("duplicate_seats", format!("seat {} is named twice", r.id())));
                }
            }
            let ids: Vec<String> = refs.iter().map(SeatRef::id).collect();
            ("hold", ids, None, hold_seats(&mut conn, &svc.scripts, &keys, &request, &refs).await)
        }
        (None, Some(section), Some(quantity), adjacent) => {
            let section = section.parse().ok_or_else(|| Problem::bad_request("unknown_section", "no such section"))?;
            if quantity < 1 || quantity > MAX_PER_REQUEST as i64 {
                svc.metrics.outcome("invalid");
                return Err(Problem::bad_request("invalid_quantity", format!("quantity must be 1 to {MAX_PER_REQUEST}")));
            }
            // One call whatever the section's kind: the script holds places
            // of a general-admission section, or picks the best seats.
            let adjacent = adjacent.unwrap_or(true);
            ("hold_best", Vec::new(), Some(section), hold_best(&mut conn, &svc.scripts, &keys, &request, section, quantity, adjacent).await)
        }
        _ => {
            svc.metrics.outcome("invalid");
            return Err(Problem::bad_request(
                "invalid_body",
                "send either {\"seats\": [seat_id, …]} or {\"section_id\": …, \"quantity\": n, \"adjacent\": true|false}",
            ));
        }
    };
    let script_time = if script == "hold" { &svc.metrics.hold } else { &svc.metrics.hold_best };
    script_time.record(started.elapsed().as_secs_f64());
    match result? {
        HoldOutcome::Held { expires_ms, amount_cents, quantity, seats } => {
            svc.metrics.outcome("created");
            // Seats the script chose (best available) make a seated hold;
            // none, with a section, a general-admission one.
            let (seats, section) = if seats.is_empty() { (seat_ids, section) } else { (seats, None) };
            let rec = HoldRecord {
                user: String::new(),
                status: "held".into(),
                seats,
                section,
                quantity,
                amount_cents,
                expires_ms,
                order: None,
                listing: None,
            };
            let mut resp = http::json(StatusCode::CREATED, &HoldView::of(&hold, &rec, 0));
            resp.headers_mut().insert("location", hold_location(&hold));
            Ok(resp)
        }
        HoldOutcome::Duplicate(token) => {
            svc.metrics.outcome("replayed");
            let prior = HoldId { event, token };
            let rec = read_hold(&mut conn, &keys, &prior.token)
                .await?
                .ok_or_else(|| Problem::not_found("the hold made with this Idempotency-Key is gone"))?;
            let mut resp = http::json(StatusCode::CREATED, &HoldView::of(&prior, &rec, now_ms()));
            resp.headers_mut().insert("idempotent-replayed", hyper::header::HeaderValue::from_static("true"));
            resp.headers_mut().insert("location", hold_location(&prior));
            Ok(resp)
        }
        HoldOutcome::Unavailable(seats) => {
            svc.metrics.outcome("unavailable");
            Err(Problem::conflict("unavailable", "some seats are no longer available").with("seats", seats))
        }
        HoldOutcome::SoldOut { available } => {
            svc.metrics.outcome("unavailable");
            Err(Problem::conflict("unavailable", format!("only {available} places are left in this section"))
                .with("seats", Vec::<String>::new())
                .with("available", available))
        }
        HoldOutcome::NoBlock { available } => {
            svc.metrics.outcome("unavailable");
            Err(Problem::conflict("unavailable", "no seats as asked are free in this section")
                .with("seats", Vec::<String>::new())
                .with("available", available))
        }
        HoldOutcome::Limit { used, limit } => {
            svc.metrics.outcome("limit_exceeded");
            Err(Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "limit_exceeded",
                format!("at most {limit} seats per customer for this event; you have {used}"),
            )
            .with("limit", limit)
            .with("used", used))
        }
        HoldOutcome::NotOnSale => {
            svc.metrics.outcome("not_on_sale");
            Err(Problem::forbidden("not_on_sale", "this event is not on sale yet"))
        }
        HoldOutcome::EmailUnverified => {
            svc.metrics.outcome("email_unverified");
            Err(email_unverified())
        }
        HoldOutcome::QueuePassRequired => {
            svc.metrics.outcome("queue_pass_required");
            Err(Problem::forbidden(
                "queue_pass_required",
                "this event has a waiting room: join its queue and send the pass it gives you as X-Queue-Pass",
            ))
        }
        HoldOutcome::Unknown(seats) => {
            svc.metrics.outcome("invalid");
            if script == "hold_best" {
                Err(Problem::bad_request("unknown_section", "no such section in this event"))
            } else {
                Err(Problem::bad_request("unknown_seats", "these seats do not exist in this event").with("seats", seats))
            }
        }
        HoldOutcome::NotFound => {
            svc.metrics.outcome("invalid");
            Err(Problem::not_found("no such event on sale"))
        }
        HoldOutcome::Bad(why) => {
            svc.metrics.outcome("invalid");
            Err(Problem::bad_request("invalid_body", why))
        }
    }
}

fn hold_location(id: &HoldId) -> hyper::header::HeaderValue {
    hyper::header::HeaderValue::from_str(&format!("/api/holds/{}", id.public()))
        .unwrap_or_else(|_| hyper::header::HeaderValue::from_static("/api/holds"))
}

/// The caller's hold, or a 404 (also when it is someone else's).
async fn owned(svc: &ReservationService, id: &str, user: &str) -> Result<(HoldId, HoldRecord), Problem> {
    let hold = HoldId::parse(id).ok_or_else(|| Problem::not_found("no such hold"))?;
    let keys = EventKeys::new(&svc.prefix, hold.event);
    let mut conn = svc.redis.clone();
    match read_hold(&mut conn, &keys, &hold.token).await? {
        Some(rec) if rec.user == user => Ok((hold, rec)),
        _ => Err(Problem::not_found("no such hold")),
    }
}

pub(crate) async fn show(svc: &ReservationService, id: &str, req: &Request<Incoming>) -> Result<Resp, Problem> {
    let who = svc.tokens.authenticate(req.headers())?;
    let (hold, rec) = owned(svc, id, &who.user_id).await?;
    Ok(http::json(StatusCode::OK, &HoldView::of(&hold, &rec, now_ms())))
}

pub(crate) async fn delete(svc: &ReservationService, id: &str, req: &Request<Incoming>) -> Result<Resp, Problem> {
    let who = svc.tokens.authenticate(req.headers())?;
    let hold = HoldId::parse(id).ok_or_else(|| Problem::not_found("no such hold"))?;
    let keys = EventKeys::new(&svc.prefix, hold.event);
    let mut conn = svc.redis.clone();
    match release(&mut conn, &svc.scripts, &keys, &hold.token, Reason::Released, Some(&who.user_id)).await? {
        ReleaseOutcome::Released | ReleaseOutcome::Expired => Ok(http::empty(StatusCode::NO_CONTENT)),
        ReleaseOutcome::Noop(status) if status == "confirmed" => {
            Err(Problem::conflict("already_confirmed", "this hold has been paid for; it cannot be released"))
        }
        ReleaseOutcome::Noop(_) | ReleaseOutcome::NotYet(_) => Ok(http::empty(StatusCode::NO_CONTENT)),
        ReleaseOutcome::NotFound => Err(Problem::not_found("no such hold")),
    }
}

/// 403 for an event that requires a verified e-mail, asked by an account
/// whose access token says it is not (verify, then refresh the token).
pub(crate) fn email_unverified() -> Problem {
    Problem::forbidden(
        "email_unverified",
        "this event requires a verified e-mail address: verify yours, then sign in again or refresh your access token",
    )
}
