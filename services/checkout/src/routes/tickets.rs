//! `GET /api/tickets`, `GET /api/tickets/{id}/code` and
//! `POST /api/tickets/{id}/transfer`: the caller's tickets, Redis first (a
//! ticket is readable the moment its order is: `confirm.lua` writes both,
//! and the payment route lists the tickets in the buyer's index), then
//! Postgres (the durable record the persister writes). Anyone but the owner
//! gets 404. A ticket its owner gave away stays in their list as
//! `transferred`, one they sold on resale as `resold`.

use std::collections::BTreeMap;

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use redis::AsyncCommands;
use serde::Deserialize;
use serde_json::{Value, json};
use stampede_common::Problem;
use stampede_common::clock::now_ms;
use stampede_common::http::{self, Resp};
use stampede_inventory::{EventKeys, TicketId, TicketRecord, Transfer, read_ticket, read_tickets, transfer as move_ticket};

use crate::CheckoutService;
use crate::codes::{CodeClaims, qr_svg};
use crate::gateway::PaymentGateway;

/// How many tickets a list answers at most.
const LIST_LIMIT: isize = 500;

/// The per-user index of tickets (public ids scored by when they were
/// bought or received). An entry is a hint: the ticket's record says who
/// owns it now; one listed here that someone else owns now was given away.
pub(crate) fn user_tickets_key(prefix: &str, user: &str) -> String {
    format!("{prefix}:u:{{{user}}}:tickets")
}

fn view(id: &TicketId, section: i64, seat: Option<&str>, status: &str) -> Value {
    json!({
        "id": id.public(),
        "order_id": format!("{}-{}", id.event, id.order),
        "event_id": id.event.to_string(),
        "section_id": section.to_string(),
        "seat": seat,
        "status": status,
    })
}

pub(crate) async fn list<G: PaymentGateway>(svc: &CheckoutService<G>, req: &Request<Incoming>) -> Result<Resp, Problem> {
    let who = svc.tokens.authenticate(req.headers())?;
    let mut conn = svc.redis.clone();
    let recent: Vec<(String, f64)> = conn.zrevrange_withscores(user_tickets_key(&svc.prefix, &who.user_id), 0, LIST_LIMIT - 1).await?;
    // Sorted by (newest first, event, order, place): one HMGET per event.
    let mut found: BTreeMap<(i64, i64, String, u32), Value> = BTreeMap::new();
    let mut by_event: BTreeMap<i64, Vec<(TicketId, i64)>> = BTreeMap::new();
    for (id, score) in recent {
        if let Some(t) = TicketId::parse(&id) {
            by_event.entry(t.event).or_default().push((t, score as i64));
        }
    }
    for (event, ids) in by_event {
        let keys = EventKeys::new(&svc.prefix, event);
        let tokens: Vec<String> = ids.iter().map(|(t, _)| t.token()).collect();
        for ((id, at), rec) in ids.into_iter().zip(read_tickets(&mut conn, &keys, &tokens).await?) {
            if let Some(rec) = rec {
                // Only its owners were ever given an entry: anyone else
                // listed it once and has given it away.
                let v = view(&id, rec.section, rec.seat.as_deref(), rec.status_for(&who.user_id));
                found.insert((-at, id.event, id.order.clone(), id.n), v);
            }
        }
    }
    if let Ok(user) = who.user_id.parse::<i64>() {
        let client = svc.db.get().await?;
        let rows = client
            .query(
                &format!(
                    "(SELECT event_id, order_id, n, section_id, seat, status, (extract(epoch FROM created_at) * 1000)::int8 AS at
                      FROM tickets WHERE owner_id = $1 ORDER BY created_at DESC LIMIT {LIST_LIMIT})
                 UNION ALL
                 (SELECT DISTINCT ON (t.order_id, t.n) t.event_id, t.order_id, t.n, t.section_id, t.seat, 'transferred',
                         (extract(epoch FROM t.created_at) * 1000)::int8
                      FROM ticket_transfers x JOIN tickets t ON t.order_id = x.order_id AND t.n = x.n
                      WHERE x.from_user = $1 AND t.owner_id <> $1
                      ORDER BY t.order_id, t.n LIMIT {LIST_LIMIT})
                 UNION ALL
                 (SELECT DISTINCT ON (t.order_id, t.n) t.event_id, t.order_id, t.n, t.section_id, t.seat, 'resold',
                         (extract(epoch FROM t.created_at) * 1000)::int8
                      FROM listings l JOIN tickets t ON t.order_id = l.order_id AND t.n = l.n
                      WHERE l.seller_id = $1 AND l.status = 'sold' AND t.owner_id <> $1
                      ORDER BY t.order_id, t.n LIMIT {LIST_LIMIT})"
                ),
                &[&user],
            )
            .await?;
        for row in rows {
            let id = TicketId { event: row.get(0), order: row.get(1), n: row.get::<_, i32>(2) as u32 };
            if found.values().any(|v| v["id"] == id.public()) {
                continue;
            }
            let seat: Option<String> = row.get(4);
            let status: String = row.get(5);
            let at: i64 = row.get(6);
            let v = view(&id, row.get(3), seat.as_deref(), &status);
            found.insert((-at, id.event, id.order.clone(), id.n), v);
        }
    }
    let tickets: Vec<Value> = found.into_values().take(LIST_LIMIT as usize).collect();
    Ok(http::json(StatusCode::OK, &json!({ "tickets": tickets })))
}

/// The caller's own ticket from Redis, or 404.
pub(super) async fn own_ticket<G: PaymentGateway>(svc: &CheckoutService<G>, user: &str, id: &str) -> Result<(TicketId, TicketRecord), Problem> {
    let missing = || Problem::not_found("no such ticket");
    let id = TicketId::parse(id).ok_or_else(missing)?;
    let mut conn = svc.redis.clone();
    match read_ticket(&mut conn, &EventKeys::new(&svc.prefix, id.event), &id.token()).await? {
        Some(rec) if rec.owner == user => Ok((id, rec)),
        _ => Err(missing()),
    }
}

pub(crate) async fn code<G: PaymentGateway>(svc: &CheckoutService<G>, id: &str, req: &Request<Incoming>) -> Result<Resp, Problem> {
    let who = svc.tokens.authenticate(req.headers())?;
    let (id, rec) = own_ticket(svc, &who.user_id, id).await?;
    if rec.status != "valid" {
        return Err(Problem::conflict("not_valid", format!("this ticket is {}: it has no code to show", rec.status)).with("status", rec.status));
    }
    let signer = svc.signer()?;
    let claims = CodeClaims {
        tid: id.public(),
        eid: id.event.to_string(),
        seat: rec.seat,
        sub: rec.owner,
        ver: rec.version,
        iat: now_ms() / 1000,
    };
    let code = signer.sign(&claims).map_err(Problem::internal)?;
    let svg = qr_svg(&code).map_err(Problem::internal)?;
    Ok(http::json(StatusCode::OK, &json!({ "code": code, "svg": svg })))
}

/// When an event starts (unix ms): transfers and resale close then. 404
/// for an event Postgres does not have.
pub(super) async fn event_starts_ms<G: PaymentGateway>(svc: &CheckoutService<G>, event: i64) -> Result<i64, Problem> {
    let client = svc.db.get().await?;
    client
        .query_opt("SELECT (extract(epoch FROM starts_at) * 1000)::int8 FROM events WHERE id = $1", &[&event])
        .await?
        .map(|r| r.get(0))
        .ok_or_else(|| Problem::not_found("no such event"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TransferBody {
    to_email: String,
}

/// Gives the caller's ticket to the user with `to_email`, before the event
/// starts. Postgres answers who that is and when the event starts; the
/// move itself is one atomic Redis step (`lua/transfer.lua`), so of many
/// concurrent transfers of one ticket exactly one succeeds.
pub(crate) async fn transfer<G: PaymentGateway>(svc: &CheckoutService<G>, id: &str, req: Request<Incoming>) -> Result<Resp, Problem> {
    let who = svc.tokens.authenticate(req.headers())?;
    let (id, _) = own_ticket(svc, &who.user_id, id).await?;
    let body: TransferBody = http::read_json(req.into_body(), svc.max_body).await?;
    let email = body.to_email.trim().to_lowercase();
    let client = svc.db.get().await?;
    let to: i64 = client
        .query_opt("SELECT id FROM users WHERE email = $1", &[&email])
        .await?
        .map(|r| r.get(0))
        .ok_or_else(|| Problem::new(StatusCode::NOT_FOUND, "no_such_user", "no account has that e-mail address"))?;
    drop(client);
    let starts_ms = event_starts_ms(svc, id.event).await?;
    let to = to.to_string();
    let keys = EventKeys::new(&svc.prefix, id.event);
    let mut conn = svc.redis.clone();
    match move_ticket(&mut conn, &svc.scripts, &keys, &id, &who.user_id, &to, starts_ms).await? {
        Transfer::Moved { at_ms, section, seat, .. } => {
            // The recipient's index: a hint, as at payment (the record says
            // who owns it; Postgres lists it once the persister has it).
            let _: Result<(), _> = conn.zadd(user_tickets_key(&svc.prefix, &to), id.public(), at_ms).await;
            Ok(http::json(StatusCode::OK, &view(&id, section, seat.as_deref(), "valid")))
        }
        Transfer::NotFound => Err(Problem::not_found("no such ticket")),
        Transfer::Closed => Err(Problem::forbidden("transfer_closed", "the event has started: its tickets can no longer be transferred")),
        Transfer::NotValid(status) => {
            Err(Problem::conflict("not_valid", format!("this ticket is {status}: it cannot be transferred")).with("status", status))
        }
        Transfer::SameOwner => Err(Problem::bad_request("same_owner", "this ticket is already yours")),
    }
}
