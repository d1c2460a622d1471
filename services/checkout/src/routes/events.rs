//! The gate's routes under `/api/events/{id}`: `GET …/ticket-key` (the
//! public key a gate checks codes with, offline) and `POST …/check-in`
//! (admits a ticket once: one atomic step in Redis, `lua/check_in.lua`).
//!
//! Gates and admins check in at every event, an organiser at its own events
//! only (another's answers 403: a published event is public, so there is
//! nothing to hide). Only an organiser's check-in reads Postgres (the
//! event's owner); the gates' rush never does.

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use metrics::counter;
use redis::AsyncCommands;
use serde::Deserialize;
use serde_json::json;
use stampede_common::Problem;
use stampede_common::clock::rfc3339_ms;
use stampede_common::http::{self, Resp};
use stampede_common::token::{Principal, Role};
use stampede_inventory::{CheckIn, EventKeys, Presented, TicketId, check_in as admit};

use crate::CheckoutService;
use crate::gateway::PaymentGateway;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckInBody {
    code: String,
}

/// A published event's keys, or 404.
pub(super) async fn published<G: PaymentGateway>(svc: &CheckoutService<G>, id: &str) -> Result<EventKeys, Problem> {
    let missing = || Problem::not_found("no such event");
    let event: i64 = id.parse().ok().filter(|e| *e > 0).ok_or_else(missing)?;
    let keys = EventKeys::new(&svc.prefix, event);
    let mut conn = svc.redis.clone();
    let exists: bool = conn.exists(keys.meta()).await?;
    if exists { Ok(keys) } else { Err(missing()) }
}

pub(crate) async fn ticket_key<G: PaymentGateway>(svc: &CheckoutService<G>, id: &str) -> Result<Resp, Problem> {
    published(svc, id).await?;
    let signer = svc.signer()?;
    Ok(http::json(StatusCode::OK, &json!({ "kid": signer.kid(), "alg": "EdDSA", "public_key": signer.public_pem() })))
}

/// 403 unless the organiser `who` owns `event`.
async fn owns<G: PaymentGateway>(svc: &CheckoutService<G>, who: &Principal, event: i64) -> Result<(), Problem> {
    let client = svc.db.get().await?;
    let row = client.query_opt("SELECT owner_id FROM events WHERE id = $1", &[&event]).await?;
    let owner: Option<i64> = row.and_then(|r| r.get(0));
    if owner.is_some_and(|o| o.to_string() == who.user_id) {
        Ok(())
    } else {
        Err(Problem::forbidden("forbidden", "an organiser checks tickets in at its own events only"))
    }
}

fn invalid(why: &str) -> Problem {
    counter!("check_ins_total", "outcome" => "invalid_code").increment(1);
    Problem::bad_request("invalid_code", format!("this code is not a ticket for this event ({why})"))
}

pub(crate) async fn check_in<G: PaymentGateway>(svc: &CheckoutService<G>, id: &str, req: Request<Incoming>) -> Result<Resp, Problem> {
    let who = svc.tokens.authenticate(req.headers())?;
    if who.role != Role::Organiser {
        who.require_gate()?;
    }
    let keys = published(svc, id).await?;
    if who.role == Role::Organiser {
        owns(svc, &who, keys.event).await?;
    }
    let body: CheckInBody = http::read_json(req.into_body(), svc.max_body).await?;
    let signer = svc.signer()?;
    let claims = signer.verify(body.code.trim()).map_err(|e| invalid(e.0))?;
    let ticket = TicketId::parse(&claims.tid).ok_or_else(|| invalid("no such ticket"))?;
    if claims.eid != keys.event.to_string() || ticket.event != keys.event {
        return Err(invalid("another event's code"));
    }
    if claims.ver < 1 {
        return Err(invalid("no such version"));
    }
    let presented = Presented { ticket: &ticket, version: claims.ver, owner: &claims.sub, gate: &who.user_id, role: who.role.as_str() };
    let mut conn = svc.redis.clone();
    let (outcome, answer) = match admit(&mut conn, &svc.scripts, &keys, &presented).await? {
        CheckIn::Admitted { seat, .. } => (
            "admitted",
            Ok(http::json(StatusCode::OK, &json!({ "ticket": ticket.public(), "seat": seat, "status": "used" }))),
        ),
        CheckIn::AlreadyUsed { used_ms } => (
            "already_used",
            Err(Problem::conflict("already_used", "this ticket has already been checked in").with("used_at", rfc3339_ms(used_ms))),
        ),
        CheckIn::Superseded => (
            "superseded",
            Err(Problem::conflict("superseded", "this code is void: the ticket has changed hands since it was made")),
        ),
        CheckIn::NotValid(status) => (
            "not_valid",
            Err(Problem::conflict("not_valid", format!("this ticket is {status}: it cannot be checked in")).with("status", status)),
        ),
        CheckIn::NotFound => return Err(invalid("no such ticket")),
    };
    counter!("check_ins_total", "outcome" => outcome).increment(1);
    answer
}
