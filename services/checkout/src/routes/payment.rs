//! `POST /api/holds/{id}/payment`.

use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use metrics::{counter, histogram};
use redis::AsyncCommands;
use serde::Deserialize;
use serde_json::{Value, json};
use stampede_common::Problem;
use stampede_common::backoff::Backoff;
use stampede_common::clock::{now_ms, rfc3339_ms};
use stampede_common::http::{self, Resp};
use stampede_common::ids::{is_token, random_hex};
use stampede_inventory::{ConfirmOutcome, EventKeys, HoldId, HoldRecord, Payment, TicketId, confirm, read_hold, read_listing, read_order};

use super::orders::user_orders_key;
use super::tickets::user_tickets_key;
use crate::refunds::{CONFIRM_PATIENCE, Refunded, announce_refund, refund_at_provider, transient};
use crate::{CheckoutService, Replication};
use crate::gateway::{ChargeRequest, GatewayError, PaymentGateway};
use crate::idempotency::{self, Claim};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PayBody {
    payment_method: String,
}

/// A final answer, stored for replays; or a transient failure, not stored.
enum Answer {
    Final(StatusCode, Value),
    Transient(Problem),
}


pub(crate) async fn pay<G: PaymentGateway>(svc: &CheckoutService<G>, id: &str, req: Request<Incoming>) -> Result<Resp, Problem> {
    let started = Instant::now();
    let who = svc.tokens.authenticate(req.headers())?;
    let hold = HoldId::parse(id).ok_or_else(|| Problem::not_found("no such hold"))?;
    let key = match http::header(req.headers(), "idempotency-key") {
        None => return Err(Problem::bad_request("idempotency_key_required", "send an Idempotency-Key header with every payment")),
        Some(k) if is_token(k, 128) => k.to_owned(),
        Some(_) => return Err(Problem::bad_request("invalid_idempotency_key", "Idempotency-Key must be 1-128 of [A-Za-z0-9_-]")),
    };
    let body: PayBody = http::read_json(req.into_body(), svc.max_body).await?;
    if !is_token(&body.payment_method, 64) {
        return Err(Problem::bad_request("invalid_payment_method", "payment_method looks like pm_card_visa"));
    }
    let keys = EventKeys::new(&svc.prefix, hold.event);
    let mut conn = svc.redis.clone();
    let record = match read_hold(&mut conn, &keys, &hold.token).await? {
        Some(r) if r.user == who.user_id => r,
        _ => return Err(Problem::not_found("no such hold")),
    };
    let ikey = keys.pay_idem(&who.user_id, &key);
    match idempotency::claim(&mut conn, &ikey, &hold.token).await? {
        Claim::Owned => {}
        Claim::Replay { status, body } => {
            let mut resp = replay(status, body);
            resp.headers_mut().insert("idempotent-replayed", hyper::header::HeaderValue::from_static("true"));
            return Ok(resp);
        }
        Claim::OtherHold => {
            return Err(Problem::conflict("idempotency_key_reused", "this Idempotency-Key was used for another hold"));
        }
        Claim::InProgress => {
            return Err(Problem::conflict("payment_in_progress", "a payment with this Idempotency-Key is still in progress")
                .header("retry-after", "1"));
        }
    }
    let answer = attempt(svc, &who.user_id, &hold, &keys, &record, &key, &body.payment_method).await;
    histogram!("checkout_duration_seconds").record(started.elapsed().as_secs_f64());
    match answer {
        Ok(Answer::Final(status, body)) => {
            let text = body.to_string();
            // The answer stands even if it cannot be stored for replays (the
            // order exists): a retry then finds the hold paid.
            if let Err(e) = idempotency::finish(&mut conn, &ikey, &hold.token, status.as_u16(), &text, svc.idempotency_ms).await {
                tracing::warn!(error = %e, "storing a payment answer for replays failed");
            }
            Ok(replay(status.as_u16(), text))
        }
        Ok(Answer::Transient(p)) | Err(p) => {
            let _ = idempotency::abandon(&mut conn, &ikey).await;
            Err(p)
        }
    }
}

/// A stored answer as a response.
fn replay(status: u16, body: String) -> Resp {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let ct = if status.is_success() { "application/json" } else { "application/problem+json" };
    http::raw(status, ct, body)
}


async fn attempt<G: PaymentGateway>(
    svc: &CheckoutService<G>,
    user: &str,
    hold: &HoldId,
    keys: &EventKeys,
    record: &HoldRecord,
    key: &str,
    method: &str,
) -> Result<Answer, Problem> {
    let public = hold.public();
    let provider_key = format!("{public}:{user}:{key}");
    match record.status_at(now_ms()) {
        "confirmed" => {
            // A retry of a request that confirmed and died before it could
            // store its answer: the order it made, if it is this key's.
            if let Some(answer) = own_order(svc, user, hold, keys, record, &provider_key).await? {
                return Ok(answer);
            }
            return Ok(final_problem(StatusCode::CONFLICT, "already_paid", "this hold has already been paid for"));
        }
        "held" => {}
        _ => return Ok(final_problem(StatusCode::GONE, "hold_expired", "this hold has expired; hold the seats again")),
    }
    let description = format!("hold {public}");
    let charge = svc
        .gateway
        .charge(ChargeRequest {
            amount_cents: record.amount_cents,
            method,
            idempotency_key: &provider_key,
            description: &description,
            hold: &public,
            user,
        })
        .await;
    let charge = match charge {
        Ok(c) => c,
        Err(GatewayError::Declined(why)) => {
            counter!("payments_total", "outcome" => "declined").increment(1);
            return Ok(final_problem(StatusCode::PAYMENT_REQUIRED, "declined", &format!("payment declined: {why}; the hold is kept")));
        }
        Err(GatewayError::Unavailable(why)) => {
            counter!("payments_total", "outcome" => "failed").increment(1);
            tracing::warn!(error = %why, "payment provider unavailable");
            return Ok(Answer::Transient(Problem::unavailable("the payment provider is unavailable; retry shortly")));
        }
    };
    let mut order = random_hex(16);
    let mut payment = format!("pay_{}", random_hex(12));
    // A confirmation that must reach the replicas is made, and waited for,
    // on a connection of its own (see `CheckoutService::redis_url`).
    let (mut conn, own_connection) = if svc.replicas.count > 0 {
        match stampede_common::store::connect(&svc.redis_url).await {
            Ok(c) => (c, true),
            Err(e) => {
                tracing::warn!(error = %e, "no connection of its own for a confirmation: confirming without waiting for replicas");
                (svc.redis.clone(), false)
            }
        }
    } else {
        (svc.redis.clone(), false)
    };
    let pay = Payment { order: &order, payment: &payment, charge: &charge, method };
    // The charge is captured: giving up now would leave it neither an order
    // nor a refund. So a Redis that is restarting or loading its AOF is
    // waited for (up to CONFIRM_PATIENCE), and a retry that finds the hold
    // confirmed with this very order (the first reply was lost) is our success.
    let deadline = Instant::now() + CONFIRM_PATIENCE;
    let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(1));
    let outcome = loop {
        match confirm(&mut conn, &svc.scripts, keys, &hold.token, user, &pay).await {
            Ok(ConfirmOutcome::AlreadyConfirmed(o)) if o == order => {
                let created_ms = read_order(&mut conn, keys, &order).await.ok().flatten().map_or_else(now_ms, |r| r.created_ms);
                break ConfirmOutcome::Confirmed { created_ms };
            }
            // Paid with this very charge by a twin request with the same key
            // (one that died before it could store its answer, whose claim
            // then lapsed): its order is ours, and the charge is never refunded.
            Ok(ConfirmOutcome::AlreadyConfirmed(o)) => match read_order(&mut conn, keys, &o).await {
                Ok(Some(rec)) if rec.charge == charge => {
                    order = o;
                    payment = rec.payment;
                    break ConfirmOutcome::Confirmed { created_ms: rec.created_ms };
                }
                Ok(_) => break ConfirmOutcome::AlreadyConfirmed(o),
                Err(e) => return Err(Problem::from(e)),
            },
            Ok(o) => break o,
            Err(e) if transient(&e) && Instant::now() + backoff.ceiling() < deadline => {
                tracing::warn!(error = %e, hold = %hold.public(), "confirming a captured charge: Redis unavailable; retrying");
                tokio::time::sleep(backoff.next_delay()).await;
            }
            // Unknown whether the order exists: never refund blindly. A retry
            // with the same key re-confirms with the same charge.
            Err(e) => return Err(Problem::from(e)),
        }
    };
    match outcome {
        ConfirmOutcome::Confirmed { created_ms } => {
            counter!("payments_total", "outcome" => "captured").increment(1);
            if own_connection {
                replicate(&mut conn, svc.replicas, hold, &keys.holds()).await;
            } else if svc.replicas.count > 0 {
                counter!("confirm_replication_total", "outcome" => "error").increment(1);
            }
            Ok(order_answer(svc, user, hold, record, &order, &payment, method, created_ms).await)
        }
        ConfirmOutcome::AlreadyConfirmed(_) => {
            refund(svc, keys, hold, user, record, &charge, "already_paid").await?;
            Ok(final_problem(StatusCode::CONFLICT, "already_paid", "this hold has already been paid for; this charge was refunded"))
        }
        ConfirmOutcome::Gone(_) => {
            refund(svc, keys, hold, user, record, &charge, "hold_expired").await?;
            Ok(final_problem(StatusCode::GONE, "hold_expired", "the hold expired before the payment completed; the charge was refunded"))
        }
        ConfirmOutcome::NotFound => {
            refund(svc, keys, hold, user, record, &charge, "hold_missing").await?;
            Ok(final_problem(StatusCode::NOT_FOUND, "not_found", "no such hold; the charge was refunded"))
        }
    }
}

/// Waits until `replicas.count` replicas have the confirmation just made on
/// `conn` (and every earlier write on it), or `replicas.wait_ms` passed. The
/// order exists on the primary either way, and its charge is captured:
/// answering anything but 201 would only make the buyer retry into the same
/// order. A confirmation not replicated in time is counted and logged: were
/// the primary lost before its replicas caught up, that order would live
/// only in Postgres (once the persister has it) and in the payment ledger.
/// On a cluster, `WAIT` goes to the primary of the event's shard (`key`'s
/// slot), on the connection the confirmation went out on.
async fn replicate(conn: &mut stampede_common::store::Redis, replicas: Replication, hold: &HoldId, key: &str) {
    if replicas.count == 0 {
        return;
    }
    let started = Instant::now();
    let wait = redis::cmd("WAIT").arg(replicas.count).arg(replicas.wait_ms).to_owned();
    let acked: redis::RedisResult<u32> = conn.query_on_node_of(key, &wait).await;
    histogram!("confirm_replication_seconds").record(started.elapsed().as_secs_f64());
    let outcome = match acked {
        Ok(n) if n >= replicas.count => "replicated",
        Ok(n) => {
            tracing::warn!(hold = %hold.public(), acked = n, wanted = replicas.count, "a paid order's confirmation is not on enough replicas yet");
            "short"
        }
        Err(e) => {
            tracing::warn!(hold = %hold.public(), error = %e, "waiting for replicas to have a paid order's confirmation");
            "error"
        }
    };
    counter!("confirm_replication_total", "outcome" => outcome).increment(1);
}

/// The 201 of a paid hold: its order and payment. Also lists the order
/// among the user's, and its tickets among theirs (idempotent).
#[allow(clippy::too_many_arguments)]
async fn order_answer<G: PaymentGateway>(
    svc: &CheckoutService<G>,
    user: &str,
    hold: &HoldId,
    record: &HoldRecord,
    order: &str,
    payment: &str,
    method: &str,
    created_ms: i64,
) -> Answer {
    let order_id = HoldId { event: hold.event, token: order.to_owned() }.public();
    let mut conn = svc.redis.clone();
    // A resale purchase is one ticket that changed hands, not a sale of
    // inventory: it is not among the buyer's orders (the durable record
    // of it is the listing and its payment), and its ticket keeps its id.
    let resale = match &record.listing {
        Some(listing) => {
            let keys = EventKeys::new(&svc.prefix, hold.event);
            let ticket = read_listing(&mut conn, &keys, listing).await.ok().flatten().and_then(|l| l.ticket_id(hold.event));
            Some((HoldId { event: hold.event, token: listing.clone() }.public(), ticket))
        }
        None => None,
    };
    let tickets: Vec<(i64, String)> = match &resale {
        Some((_, ticket)) => ticket.iter().map(|t| (created_ms, t.public())).collect(),
        None => {
            let _: Result<(), _> = conn.zadd(user_orders_key(&svc.prefix, user), &order_id, created_ms).await;
            TicketId::of_order(hold.event, order, record.quantity as u32).map(|t| (created_ms, t.public())).collect()
        }
    };
    let _: Result<(), _> = conn.zadd_multiple(user_tickets_key(&svc.prefix, user), &tickets).await;
    let mut order_json = json!({
        "id": order_id,
        "event_id": hold.event.to_string(),
        "hold_id": hold.public(),
        "seats": record.seats,
        "section_id": record.section.map(|s| s.to_string()),
        "quantity": record.quantity,
        "amount_cents": record.amount_cents,
        "status": "confirmed",
        "created_at": rfc3339_ms(created_ms),
        "payment": {"id": payment, "amount_cents": record.amount_cents, "status": "captured"},
    });
    if let Some((listing, ticket)) = resale {
        order_json["listing_id"] = json!(listing);
        order_json["ticket_id"] = json!(ticket.map(|t| t.public()));
    }
    Answer::Final(
        StatusCode::CREATED,
        json!({
            "order": order_json,
            "payment": {"id": payment, "amount_cents": record.amount_cents, "status": "captured", "method": method},
        }),
    )
}

/// The answer for a paid hold whose order was paid with the charge the
/// provider holds under this request's key: that order, as a 201.
async fn own_order<G: PaymentGateway>(
    svc: &CheckoutService<G>,
    user: &str,
    hold: &HoldId,
    keys: &EventKeys,
    record: &HoldRecord,
    provider_key: &str,
) -> Result<Option<Answer>, Problem> {
    let Some(order) = record.order.as_deref() else { return Ok(None) };
    let mut conn = svc.redis.clone();
    let Some(rec) = read_order(&mut conn, keys, order).await? else { return Ok(None) };
    match svc.gateway.find_charge(provider_key).await {
        Ok(Some(charge)) if charge == rec.charge => {
            Ok(Some(order_answer(svc, user, hold, record, order, &rec.payment, &rec.method, rec.created_ms).await))
        }
        Ok(_) => Ok(None),
        Err(e) => {
            tracing::warn!(error = %e, "payment provider unavailable");
            Err(Problem::unavailable("the payment provider is unavailable; retry shortly"))
        }
    }
}

fn final_problem(status: StatusCode, code: &'static str, detail: &str) -> Answer {
    let p = Problem::new(status, code, detail);
    Answer::Final(
        status,
        json!({
            "type": format!("https://stampede.dev/problems/{code}"),
            "title": status.canonical_reason().unwrap_or("Error"),
            "status": status.as_u16(),
            "detail": p.detail,
            "code": code,
        }),
    )
}

/// Refunds a charge that bought nothing and announces it on the stream.
/// Retries the provider; a refund that keeps failing is logged loudly and
/// counted, and the client gets a 503 (its retry refunds again: harmless).
async fn refund<G: PaymentGateway>(
    svc: &CheckoutService<G>,
    keys: &EventKeys,
    hold: &HoldId,
    user: &str,
    record: &HoldRecord,
    charge: &str,
    reason: &str,
) -> Result<(), Problem> {
    if let Err(e) = refund_at_provider(svc.gateway.as_ref(), charge).await {
        counter!("payments_total", "outcome" => "refund_failed").increment(1);
        tracing::error!(charge, error = %e, "refund failed; the charge must be refunded by hand");
        return Err(Problem::unavailable("the payment could not be completed; retry shortly"));
    }
    counter!("payments_total", "outcome" => "refunded").increment(1);
    // One refunded payment per charge, whoever refunds it (this route, a
    // twin request, the charge reconciler): its id is the charge's.
    let payment = format!("pay_{charge}");
    let refunded = Refunded { hold: &hold.token, user, payment: &payment, amount_cents: record.amount_cents, charge, reason };
    announce_refund(&svc.redis, keys, &refunded).await.map_err(Problem::from)
}
