//! `POST /api/events/{id}/queue`, `GET /api/events/{id}/queue/{ticket}`: the
//! waiting room of an event created with `waiting_room`. Joining is one
//! script call (`lua/queue.lua`); admission is computed from the sale's
//! start and the configured rate, and an admitted status check hands out a
//! pass ([`crate::pass`]) that holds on the event must carry.

use hyper::body::Incoming;
use hyper::header::{CACHE_CONTROL, HeaderValue, LOCATION};
use hyper::{Request, StatusCode};
use metrics::counter;
use serde::Serialize;
use stampede_common::Problem;
use stampede_common::clock::now_ms;
use stampede_common::http::{self, Resp};
use stampede_common::ids::{is_token, random_hex};
use stampede_inventory::{EventKeys, QueueOutcome, queue_join, queue_status};

use crate::ReservationService;
use crate::pass::PASS_TTL_MS;

#[derive(Serialize)]
struct Ticket<'a> {
    ticket: &'a str,
    position: i64,
}

#[derive(Serialize)]
struct Status {
    /// 1-based place in line; 0 once admitted.
    position: i64,
    admitted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pass: Option<String>,
    /// Nothing is left to buy (no free seat or place, no pending hold):
    /// waiting on cannot buy anything unless holds lapse and seats return.
    sold_out: bool,
}

pub(crate) async fn join(svc: &ReservationService, event: Option<i64>, req: &Request<Incoming>) -> Result<Resp, Problem> {
    let who = svc.tokens.authenticate(req.headers())?;
    let event = event.ok_or_else(|| Problem::not_found("no such event"))?;
    let keys = EventKeys::new(&svc.prefix, event);
    let mut conn = svc.redis.clone();
    match queue_join(&mut conn, &svc.scripts, &keys, &who.user_id, &random_hex(16), svc.admission).await? {
        QueueOutcome::Place { ticket, position, fresh, .. } => {
            if fresh {
                counter!("queue_joins_total").increment(1);
            }
            let mut resp = http::json(StatusCode::CREATED, &Ticket { ticket: &ticket, position });
            if let Ok(v) = HeaderValue::from_str(&format!("/api/events/{event}/queue/{ticket}")) {
                resp.headers_mut().insert(LOCATION, v);
            }
            Ok(resp)
        }
        QueueOutcome::NoWaitingRoom => {
            Err(Problem::conflict("no_waiting_room", "this event has no waiting room: hold seats directly"))
        }
        QueueOutcome::NotFound => Err(Problem::not_found("no such event on sale")),
    }
}

pub(crate) async fn status(svc: &ReservationService, event: Option<i64>, ticket: &str, req: &Request<Incoming>) -> Result<Resp, Problem> {
    let who = svc.tokens.authenticate(req.headers())?;
    let event = event.ok_or_else(|| Problem::not_found("no such event"))?;
    if !is_token(ticket, 64) {
        return Err(Problem::not_found("no such ticket"));
    }
    let keys = EventKeys::new(&svc.prefix, event);
    let mut conn = svc.redis.clone();
    let QueueOutcome::Place { position, admitted, fresh, sold_out, .. } =
        queue_status(&mut conn, &svc.scripts, &keys, &who.user_id, ticket, svc.admission).await?
    else {
        return Err(Problem::not_found("no such ticket"));
    };
    let body = if admitted {
        if fresh {
            counter!("queue_admitted_total").increment(1);
        }
        Status { position: 0, admitted: true, pass: Some(svc.passes.issue(&who.user_id, event, now_ms() + PASS_TTL_MS)), sold_out }
    } else {
        Status { position, admitted: false, pass: None, sold_out }
    };
    let mut resp = http::json(StatusCode::OK, &body);
    resp.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}
