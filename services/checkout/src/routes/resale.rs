//! Resale at face value or below: `POST /api/tickets/{id}/listing`,
//! `DELETE /api/listings/{id}`, `GET /api/events/{id}/listings` and
//! `POST /api/listings/{id}/holds`. A listing is held like a seat (the
//! event's hold lifetime, the same expiry worker) and paid with the same
//! `POST /api/holds/{id}/payment` (see `payment.rs`); every decision is one
//! atomic Redis step (`lua/list.lua`, `unlist.lua`, `hold_listing.lua`,
//! `buy_listing.lua`), so a ticket is never sold twice.

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use metrics::counter;
use serde::Deserialize;
use serde_json::{Value, json};
use stampede_common::Problem;
use stampede_common::clock::rfc3339_ms;
use stampede_common::http::{self, Resp};
use stampede_common::ids::is_token;
use stampede_inventory::{
    EventKeys, HoldId, HoldRecord, HoldView, ListOutcome, ListingHold, ListingHoldRequest, ListingId, ListingRecord, NewListing, Withdrawal, hold_listing,
    list_ticket, open_listings, read_hold, redis_now_ms, withdraw,
};

use super::tickets::{event_starts_ms, own_ticket};
use crate::CheckoutService;
use crate::gateway::PaymentGateway;

/// How many listings `GET /api/events/{id}/listings` answers at most.
const LISTINGS_LIMIT: usize = 200;

/// A listing as clients see it.
fn view(id: &ListingId, rec: &ListingRecord, section: i64, seat: Option<&str>, status: &str) -> Value {
    json!({
        "id": id.public(),
        "ticket_id": rec.ticket_id(id.event).map(|t| t.public()),
        "event_id": id.event.to_string(),
        "section_id": section.to_string(),
        "seat": seat,
        "price_cents": rec.price_cents,
        "status": status,
        "created_at": rfc3339_ms(rec.at_ms),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListingBody {
    price_cents: i64,
}

/// Lists the caller's ticket at `price_cents`, at most its face value,
/// before the event starts.
pub(crate) async fn create<G: PaymentGateway>(svc: &CheckoutService<G>, id: &str, req: Request<Incoming>) -> Result<Resp, Problem> {
    let who = svc.tokens.authenticate(req.headers())?;
    let (ticket, _) = own_ticket(svc, &who.user_id, id).await?;
    let body: ListingBody = http::read_json(req.into_body(), svc.max_body).await?;
    if body.price_cents < 1 {
        return Err(Problem::bad_request("invalid_price", "price_cents must be a positive whole number of cents"));
    }
    let starts_ms = event_starts_ms(svc, ticket.event).await?;
    let keys = EventKeys::new(&svc.prefix, ticket.event);
    let listing = ListingId::generate(ticket.event);
    let new = NewListing { ticket: &ticket, seller: &who.user_id, listing: &listing.token, price_cents: body.price_cents, starts_ms };
    let mut conn = svc.redis.clone();
    match list_ticket(&mut conn, &svc.scripts, &keys, &new).await? {
        ListOutcome::Listed { at_ms, section, seat, .. } => {
            counter!("resale_total", "outcome" => "listed").increment(1);
            let rec = ListingRecord {
                status: "open".into(),
                seller: who.user_id.clone(),
                ticket: ticket.token(),
                price_cents: body.price_cents,
                hold: None,
                buyer: None,
                at_ms,
            };
            let mut resp = http::json(StatusCode::CREATED, &view(&listing, &rec, section, seat.as_deref(), "open"));
            if let Ok(v) = hyper::header::HeaderValue::from_str(&format!("/api/listings/{}", listing.public())) {
                resp.headers_mut().insert("location", v);
            }
            Ok(resp)
        }
        ListOutcome::NotFound => Err(Problem::not_found("no such ticket")),
        ListOutcome::Closed => Err(closed()),
        ListOutcome::NotValid(status) => {
            Err(Problem::conflict("not_valid", format!("this ticket is {status}: it cannot be listed")).with("status", status))
        }
        ListOutcome::OverFaceValue(face) => Err(Problem::bad_request(
            "over_face_value",
            format!("resale is at face value or below: this ticket's face value is {face} cents"),
        )
        .with("face_value_cents", face)),
    }
}

fn closed() -> Problem {
    Problem::forbidden("resale_closed", "the event has started: its tickets can no longer be resold")
}

/// Withdraws the caller's listing; its ticket is valid again.
pub(crate) async fn delete<G: PaymentGateway>(svc: &CheckoutService<G>, id: &str, req: &Request<Incoming>) -> Result<Resp, Problem> {
    let who = svc.tokens.authenticate(req.headers())?;
    let listing = ListingId::parse(id).ok_or_else(|| Problem::not_found("no such listing"))?;
    let keys = EventKeys::new(&svc.prefix, listing.event);
    let mut conn = svc.redis.clone();
    match withdraw(&mut conn, &svc.scripts, &keys, &listing.token, &who.user_id).await? {
        Withdrawal::Withdrawn => {
            counter!("resale_total", "outcome" => "withdrawn").increment(1);
            Ok(http::empty(StatusCode::NO_CONTENT))
        }
        Withdrawal::NotFound => Err(Problem::not_found("no such listing")),
        Withdrawal::Sold => Err(Problem::conflict("sold", "this listing has been sold")),
        Withdrawal::Held { until_ms } => Err(Problem::conflict("held", "a buyer holds this listing; withdraw it if their hold lapses")
            .with("held_until", rfc3339_ms(until_ms))),
    }
}

/// The event's listings a buyer can hold now, cheapest first.
pub(crate) async fn list<G: PaymentGateway>(svc: &CheckoutService<G>, id: &str) -> Result<Resp, Problem> {
    let keys = super::events::published(svc, id).await?;
    let mut conn = svc.redis.clone();
    let now = redis_now_ms(&mut conn).await?;
    let open = open_listings(&mut conn, &keys, now, LISTINGS_LIMIT).await?;
    let tokens: Vec<String> = open.iter().map(|(_, rec)| rec.ticket.clone()).collect();
    let tickets = stampede_inventory::read_tickets(&mut conn, &keys, &tokens).await?;
    let listings: Vec<Value> = open
        .iter()
        .zip(tickets)
        .filter_map(|((token, rec), ticket)| {
            let ticket = ticket?;
            let id = ListingId { event: keys.event, token: token.clone() };
            Some(view(&id, rec, ticket.section, ticket.seat.as_deref(), "open"))
        })
        .collect();
    Ok(http::json(StatusCode::OK, &json!({ "listings": listings })))
}

/// Holds a listing for the caller (not its seller), as a seat is held.
pub(crate) async fn hold<G: PaymentGateway>(svc: &CheckoutService<G>, id: &str, req: Request<Incoming>) -> Result<Resp, Problem> {
    let who = svc.tokens.authenticate(req.headers())?;
    let listing = ListingId::parse(id).ok_or_else(|| Problem::not_found("no such listing"))?;
    let idem = match http::header(req.headers(), "idempotency-key") {
        None => None,
        Some(k) if is_token(k, 128) => Some(k.to_owned()),
        Some(_) => return Err(Problem::bad_request("invalid_idempotency_key", "Idempotency-Key must be 1-128 of [A-Za-z0-9_-]")),
    };
    // No body is needed; an empty object is welcome, anything else is not.
    let body = http::read_body(req.into_body(), svc.max_body).await?;
    if !body.iter().all(u8::is_ascii_whitespace) {
        let _: EmptyBody = http::parse_json(&body)?;
    }
    let starts_ms = event_starts_ms(svc, listing.event).await.map_err(|_| Problem::not_found("no such listing"))?;
    let keys = EventKeys::new(&svc.prefix, listing.event);
    let hold = HoldId::generate(listing.event);
    let request =
        ListingHoldRequest {
        listing: &listing.token,
        buyer: &who.user_id,
        hold: &hold.token,
        idempotency: idem.as_deref(),
        starts_ms,
        email_verified: who.email_verified,
    };
    let mut conn = svc.redis.clone();
    match hold_listing(&mut conn, &svc.scripts, &keys, &request).await? {
        ListingHold::Held { expires_ms, amount_cents, section, seat } => {
            counter!("resale_total", "outcome" => "held").increment(1);
            let rec = HoldRecord {
                user: who.user_id.clone(),
                status: "held".into(),
                seats: seat.into_iter().collect(),
                section,
                quantity: 1,
                amount_cents,
                expires_ms,
                order: None,
                listing: Some(listing.token.clone()),
            };
            // Just made: held (the time only turns a lapsed hold `expired`).
            Ok(created(&HoldView::of(&hold, &rec, 0), &hold, false))
        }
        ListingHold::Duplicate(token) => {
            let prior = HoldId { event: listing.event, token };
            let rec = read_hold(&mut conn, &keys, &prior.token)
                .await?
                .ok_or_else(|| Problem::not_found("the hold made with this Idempotency-Key is gone"))?;
            let now = redis_now_ms(&mut conn).await?;
            Ok(created(&HoldView::of(&prior, &rec, now), &prior, true))
        }
        ListingHold::Unavailable => {
            counter!("resale_total", "outcome" => "unavailable").increment(1);
            Err(Problem::conflict("unavailable", "this listing is held by another buyer, sold or withdrawn"))
        }
        ListingHold::Own => Err(Problem::forbidden("own_listing", "this is your own listing")),
        ListingHold::Closed => Err(closed()),
        ListingHold::EmailUnverified => Err(Problem::forbidden(
            "email_unverified",
            "this event requires a verified e-mail address: verify yours, then sign in again or refresh your access token",
        )),
        ListingHold::NotFound => Err(Problem::not_found("no such listing")),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmptyBody {}

fn created(view: &HoldView<'_>, hold: &HoldId, replayed: bool) -> Resp {
    let mut resp = http::json(StatusCode::CREATED, view);
    if let Ok(v) = hyper::header::HeaderValue::from_str(&format!("/api/holds/{}", hold.public())) {
        resp.headers_mut().insert("location", v);
    }
    if replayed {
        resp.headers_mut().insert("idempotent-replayed", hyper::header::HeaderValue::from_static("true"));
    }
    resp
}
