//! Resale at face value or below: `lua/list.lua` lists a ticket,
//! `lua/unlist.lua` withdraws it, `lua/hold_listing.lua` holds a listing for
//! a buyer as a seat is held, and `lua/buy_listing.lua` (called by
//! [`confirm`](crate::confirm) for such a hold) moves the ticket to the
//! buyer when the hold is paid.
//!
//! A listing's public id has the shape of a hold id, `<event>-<16 hex>`
//! ([`HoldId`]): the event part routes it, the random part is unguessable.

use redis::{AsyncCommands, RedisResult, Value};
use stampede_common::store::Redis;

use crate::keys::{EventKeys, HoldId};
use crate::reply::{int, text};
use crate::scripts::Scripts;
use crate::tickets::TicketId;

/// A listing's public id.
pub type ListingId = HoldId;

/// A listing as Redis keeps it (`status|seller|ticket|price|hold|exp|buyer|at`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListingRecord {
    /// `open`, `withdrawn` or `sold`.
    pub status: String,
    pub seller: String,
    /// The ticket's token, `<order>-<i>`.
    pub ticket: String,
    pub price_cents: i64,
    /// The buyer's hold on it and that hold's expiry, if one was taken.
    pub hold: Option<(String, i64)>,
    pub buyer: Option<String>,
    /// When it was listed, then withdrawn or sold.
    pub at_ms: i64,
}

impl ListingRecord {
    pub fn parse(raw: &str) -> Option<Self> {
        let f: Vec<&str> = raw.split('|').collect();
        if f.len() != 8 {
            return None;
        }
        let hold = match (f[4], f[5]) {
            ("", _) => None,
            (h, exp) => Some((h.to_owned(), exp.parse().ok()?)),
        };
        Some(Self {
            status: f[0].to_owned(),
            seller: f[1].to_owned(),
            ticket: f[2].to_owned(),
            price_cents: f[3].parse().ok()?,
            hold,
            buyer: (!f[6].is_empty()).then(|| f[6].to_owned()),
            at_ms: f[7].parse().ok()?,
        })
    }

    /// Open and not held by a live hold at `now_ms`: a buyer may hold it.
    pub fn is_buyable(&self, now_ms: i64) -> bool {
        self.status == "open" && self.hold.as_ref().is_none_or(|(_, exp)| *exp <= now_ms)
    }

    /// The listed ticket (of the listing's event).
    pub fn ticket_id(&self, event: i64) -> Option<TicketId> {
        TicketId::parse(&format!("{event}-{}", self.ticket))
    }
}

/// Reads one listing, or `None`.
pub async fn read_listing(conn: &mut Redis, keys: &EventKeys, token: &str) -> RedisResult<Option<ListingRecord>> {
    let raw: Option<String> = conn.hget(keys.listings(), token).await?;
    Ok(raw.as_deref().and_then(ListingRecord::parse))
}

/// The event's buyable listings, cheapest first (ties: the older listing),
/// at most `limit`, with their tokens. Held ones are left out; Redis's
/// clock judges whether a hold is live.
pub async fn open_listings(conn: &mut Redis, keys: &EventKeys, now_ms: i64, limit: usize) -> RedisResult<Vec<(String, ListingRecord)>> {
    // Held listings stay in the open set: read past them, a page at a time.
    let mut out = Vec::new();
    let page = (limit * 2).clamp(16, 1000) as isize;
    let mut start = 0isize;
    while out.len() < limit {
        let tokens: Vec<String> = conn.zrange(keys.open_listings(), start, start + page - 1).await?;
        if tokens.is_empty() {
            break;
        }
        let raw: Vec<Option<String>> = redis::cmd("HMGET").arg(keys.listings()).arg(&tokens).query_async(conn).await?;
        for (token, rec) in tokens.iter().zip(raw) {
            if let Some(rec) = rec.as_deref().and_then(ListingRecord::parse).filter(|r| r.is_buyable(now_ms)) {
                out.push((token.clone(), rec));
            }
        }
        if (tokens.len() as isize) < page {
            break;
        }
        start += page;
    }
    // The zset orders equal prices by token; the older listing goes first.
    out.sort_by_key(|(_, r)| (r.price_cents, r.at_ms));
    out.truncate(limit);
    Ok(out)
}

/// What listing a ticket decided (see `lua/list.lua`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListOutcome {
    Listed { at_ms: i64, section: i64, seat: Option<String>, face_cents: i64 },
    /// No such ticket, or not the caller's.
    NotFound,
    /// The event has started.
    Closed,
    /// The ticket cannot be listed in its status (used, listed).
    NotValid(String),
    /// The price is above the ticket's face value (this).
    OverFaceValue(i64),
}

/// The terms of a new listing.
pub struct NewListing<'a> {
    pub ticket: &'a TicketId,
    pub seller: &'a str,
    /// The new listing's token.
    pub listing: &'a str,
    pub price_cents: i64,
    /// When the event starts (listing closes then).
    pub starts_ms: i64,
}

/// Lists a ticket for resale, in one atomic step.
pub async fn list_ticket(conn: &mut Redis, scripts: &Scripts, keys: &EventKeys, new: &NewListing<'_>) -> RedisResult<ListOutcome> {
    let reply: Vec<Value> = scripts
        .list
        .key(keys.tickets())
        .arg(new.ticket.token())
        .arg(new.seller)
        .arg(new.listing)
        .arg(new.price_cents)
        .arg(new.starts_ms.max(0))
        .invoke_async(conn)
        .await?;
    Ok(match reply.first().map(text).as_deref() {
        Some("ok") => ListOutcome::Listed {
            at_ms: int(reply.get(1)),
            section: int(reply.get(2)),
            seat: reply.get(3).map(text).filter(|s| !s.is_empty()),
            face_cents: int(reply.get(4)),
        },
        Some("closed") => ListOutcome::Closed,
        Some("not_valid") => ListOutcome::NotValid(reply.get(1).map(text).unwrap_or_default()),
        Some("over") => ListOutcome::OverFaceValue(int(reply.get(1))),
        _ => ListOutcome::NotFound,
    })
}

/// What withdrawing a listing decided (see `lua/unlist.lua`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Withdrawal {
    Withdrawn,
    /// No open listing of the caller's by that id.
    NotFound,
    Sold,
    /// A buyer holds it until this time.
    Held { until_ms: i64 },
}

/// Withdraws the seller's listing, in one atomic step.
pub async fn withdraw(conn: &mut Redis, scripts: &Scripts, keys: &EventKeys, listing: &str, seller: &str) -> RedisResult<Withdrawal> {
    let reply: Vec<Value> = scripts.unlist.key(keys.listings()).arg(listing).arg(seller).invoke_async(conn).await?;
    Ok(match reply.first().map(text).as_deref() {
        Some("ok") => Withdrawal::Withdrawn,
        Some("sold") => Withdrawal::Sold,
        Some("held") => Withdrawal::Held { until_ms: int(reply.get(1)) },
        _ => Withdrawal::NotFound,
    })
}

/// What holding a listing decided (see `lua/hold_listing.lua`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListingHold {
    /// Held until `expires_ms`, for `amount_cents`; the ticket's seat, or
    /// its general-admission section.
    Held { expires_ms: i64, amount_cents: i64, section: Option<i64>, seat: Option<String> },
    /// The idempotency key was used before: this is the hold it made.
    Duplicate(String),
    NotFound,
    /// Held by another buyer, sold or withdrawn.
    Unavailable,
    /// The caller is the seller.
    Own,
    /// The event has started.
    Closed,
    /// The event requires a verified e-mail and the buyer's is not.
    EmailUnverified,
}

/// A buyer's request for a listing.
pub struct ListingHoldRequest<'a> {
    pub listing: &'a str,
    pub buyer: &'a str,
    /// The new hold's token.
    pub hold: &'a str,
    pub idempotency: Option<&'a str>,
    pub starts_ms: i64,
    /// Whether the buyer's e-mail is verified (the access token's claim).
    pub email_verified: bool,
}

/// Holds a listing for a buyer, in one atomic step.
pub async fn hold_listing(conn: &mut Redis, scripts: &Scripts, keys: &EventKeys, req: &ListingHoldRequest<'_>) -> RedisResult<ListingHold> {
    let reply: Vec<Value> = scripts
        .hold_listing
        .key(keys.listings())
        .arg(req.listing)
        .arg(req.buyer)
        .arg(req.hold)
        .arg(req.idempotency.unwrap_or(""))
        .arg(req.starts_ms.max(0))
        .arg(if req.email_verified { 1 } else { 0 })
        .invoke_async(conn)
        .await?;
    Ok(match reply.first().map(text).as_deref() {
        Some("ok") => ListingHold::Held {
            expires_ms: int(reply.get(1)),
            amount_cents: int(reply.get(2)),
            section: reply.get(3).map(text).and_then(|s| s.parse().ok()),
            seat: reply.get(4).map(text).filter(|s| !s.is_empty()),
        },
        Some("dup") => ListingHold::Duplicate(reply.get(1).map(text).unwrap_or_default()),
        Some("unavailable") => ListingHold::Unavailable,
        Some("own") => ListingHold::Own,
        Some("closed") => ListingHold::Closed,
        Some("email_unverified") => ListingHold::EmailUnverified,
        _ => ListingHold::NotFound,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_parse_open_held_and_sold() {
        let open = ListingRecord::parse("open|42|0123456789abcdef-2|5000||||1700").expect("open");
        assert_eq!((open.price_cents, open.hold.as_ref(), open.at_ms), (5000, None, 1700));
        assert!(open.is_buyable(0));
        assert_eq!(open.ticket_id(7).map(|t| t.public()).as_deref(), Some("7-0123456789abcdef-2"));
        let held = ListingRecord::parse("open|42|0123456789abcdef-2|5000|h1|2000||1700").expect("held");
        assert!(!held.is_buyable(1999), "held until 2000");
        assert!(held.is_buyable(2000), "a lapsed hold no longer counts");
        let sold = ListingRecord::parse("sold|42|0123456789abcdef-2|5000|h1|2000|43|1900").expect("sold");
        assert_eq!(sold.buyer.as_deref(), Some("43"));
        assert!(!sold.is_buyable(9999));
        assert_eq!(ListingRecord::parse("open|42|t-1|x||||1"), None);
        assert_eq!(ListingRecord::parse("open|42"), None);
    }
}
