//! Tickets: each seat or place of a confirmed order becomes one, written by
//! `lua/confirm.lua` in the event's `tickets` hash, and admitted once at
//! the gate by `lua/check_in.lua`; `lua/transfer.lua` gives one to another
//! user.
//!
//! A ticket is owned and versioned: whatever moves it to another owner
//! (transfer, resale) bumps its version, and a code carrying an older
//! version is void at the gate.

use redis::{AsyncCommands, RedisResult, Value};
use stampede_common::store::Redis;

use crate::keys::EventKeys;
use crate::reply::{int, text};
use crate::scripts::Scripts;

/// A public ticket id: `<event>-<order>-<i>`, the order's i-th seat or place
/// (counted from one). The order's token is 128 random bits, so a ticket id
/// is as unguessable as an order id, and every read checks the owner too.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TicketId {
    pub event: i64,
    pub order: String,
    pub n: u32,
}

impl TicketId {
    /// Parses a public id; anything malformed is `None` (a 404 to clients).
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.split('-');
        let (event, order, n) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || n.is_empty() || n.len() > 6 || !n.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let event: i64 = event.parse().ok()?;
        let n: u32 = n.parse().ok()?;
        let hex = order.bytes().all(|b| b.is_ascii_hexdigit());
        if event <= 0 || n == 0 || !(order.len() == 16 || order.len() == 32) || !hex {
            return None;
        }
        Some(Self { event, order: order.to_owned(), n })
    }

    /// The field of the event's `tickets` hash: `<order>-<i>`.
    pub fn token(&self) -> String {
        format!("{}-{}", self.order, self.n)
    }

    pub fn public(&self) -> String {
        format!("{}-{}-{}", self.event, self.order, self.n)
    }

    /// The tickets of an order of `quantity` seats or places, in the order
    /// of its seats (as `confirm.lua` and the persister derive them).
    pub fn of_order(event: i64, order: &str, quantity: u32) -> impl Iterator<Item = TicketId> + '_ {
        (1..=quantity).map(move |n| TicketId { event, order: order.to_owned(), n })
    }
}

/// A ticket as Redis keeps it (`status|owner|ver|section|seat|used|gate`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TicketRecord {
    /// `valid` or `used` (transfer and resale add others).
    pub status: String,
    pub owner: String,
    pub version: i64,
    pub section: i64,
    /// `<section>:<row>:<n>`; `None` for a general-admission place.
    pub seat: Option<String>,
    /// When it was checked in.
    pub used_ms: Option<i64>,
    /// How it last changed hands: `t` transfer, `r` resale (`None` if never).
    pub via: Option<String>,
}

impl TicketRecord {
    pub fn parse(raw: &str) -> Option<Self> {
        let f: Vec<&str> = raw.split('|').collect();
        if f.len() != 7 && f.len() != 8 {
            return None;
        }
        Some(Self {
            status: f[0].to_owned(),
            owner: f[1].to_owned(),
            version: f[2].parse().ok()?,
            section: f[3].parse().ok()?,
            seat: (!f[4].is_empty()).then(|| f[4].to_owned()),
            used_ms: f[5].parse().ok(),
            via: f.get(7).filter(|v| !v.is_empty()).map(|v| (*v).to_owned()),
        })
    }

    /// Its status as `user` sees it: its owner, the record's; anyone it
    /// has left, `resold` or `transferred` (by how it last changed hands).
    pub fn status_for(&self, user: &str) -> &str {
        if self.owner == user {
            &self.status
        } else if self.via.as_deref() == Some("r") {
            "resold"
        } else {
            "transferred"
        }
    }
}

/// Reads one ticket, or `None` if the event has no such ticket.
pub async fn read_ticket(conn: &mut Redis, keys: &EventKeys, token: &str) -> RedisResult<Option<TicketRecord>> {
    let raw: Option<String> = conn.hget(keys.tickets(), token).await?;
    Ok(raw.as_deref().and_then(TicketRecord::parse))
}

/// Reads several tickets of one event (one `HMGET`), in the order asked.
pub async fn read_tickets(conn: &mut Redis, keys: &EventKeys, tokens: &[String]) -> RedisResult<Vec<Option<TicketRecord>>> {
    if tokens.is_empty() {
        return Ok(Vec::new());
    }
    let raw: Vec<Option<String>> = redis::cmd("HMGET").arg(keys.tickets()).arg(tokens).query_async(conn).await?;
    Ok(raw.iter().map(|r| r.as_deref().and_then(TicketRecord::parse)).collect())
}

/// What a check-in decided (see `lua/check_in.lua`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckIn {
    /// Admitted now, at this Redis time.
    Admitted { at_ms: i64, section: i64, seat: Option<String> },
    /// Admitted before, at this time.
    AlreadyUsed { used_ms: i64 },
    /// The code is older than the ticket (or names another owner).
    Superseded,
    /// The ticket cannot be admitted in its status (listed, transferred, …).
    NotValid(String),
    /// The event has no such ticket (at that version).
    NotFound,
}

/// The code's claims the gate step needs.
pub struct Presented<'a> {
    pub ticket: &'a TicketId,
    pub version: i64,
    pub owner: &'a str,
    /// Who checks it in: a user id, and its role (`gate`, `organiser`,
    /// `admin`; the latter two are audited).
    pub gate: &'a str,
    pub role: &'a str,
}

/// Admits a ticket once, atomically, announcing `ticket.checked_in`.
pub async fn check_in(conn: &mut Redis, scripts: &Scripts, keys: &EventKeys, code: &Presented<'_>) -> RedisResult<CheckIn> {
    let reply: Vec<Value> = scripts
        .check_in
        .key(keys.tickets())
        .key(keys.stream())
        .arg(code.ticket.token())
        .arg(code.version)
        .arg(code.owner)
        .arg(code.gate)
        .arg(code.role)
        .invoke_async(conn)
        .await?;
    Ok(match reply.first().map(text).as_deref() {
        Some("ok") => {
            let seat = reply.get(3).map(text).filter(|s| !s.is_empty());
            CheckIn::Admitted { at_ms: int(reply.get(1)), section: int(reply.get(2)), seat }
        }
        Some("used") => CheckIn::AlreadyUsed { used_ms: int(reply.get(1)) },
        Some("superseded") => CheckIn::Superseded,
        Some("not_valid") => CheckIn::NotValid(reply.get(1).map(text).unwrap_or_default()),
        _ => CheckIn::NotFound,
    })
}

/// What a transfer decided (see `lua/transfer.lua`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transfer {
    /// The ticket is the recipient's now, at this version (its old codes void).
    Moved { version: i64, at_ms: i64, section: i64, seat: Option<String> },
    /// No such ticket, or not the caller's.
    NotFound,
    /// The event has started.
    Closed,
    /// The ticket cannot move in its status (used, listed).
    NotValid(String),
    /// The recipient already owns it.
    SameOwner,
}

/// Moves a ticket from `from` (who must own it) to `to`, unless the event
/// has started (`starts_ms`), bumping its version and announcing
/// `ticket.transferred`, in one atomic step.
pub async fn transfer(
    conn: &mut Redis,
    scripts: &Scripts,
    keys: &EventKeys,
    ticket: &TicketId,
    from: &str,
    to: &str,
    starts_ms: i64,
) -> RedisResult<Transfer> {
    let reply: Vec<Value> = scripts
        .transfer
        .key(keys.tickets())
        .key(keys.stream())
        .arg(ticket.token())
        .arg(from)
        .arg(to)
        .arg(starts_ms.max(0))
        .invoke_async(conn)
        .await?;
    Ok(match reply.first().map(text).as_deref() {
        Some("ok") => {
            let seat = reply.get(4).map(text).filter(|s| !s.is_empty());
            Transfer::Moved { version: int(reply.get(1)), at_ms: int(reply.get(2)), section: int(reply.get(3)), seat }
        }
        Some("closed") => Transfer::Closed,
        Some("not_valid") => Transfer::NotValid(reply.get(1).map(text).unwrap_or_default()),
        Some("same_owner") => Transfer::SameOwner,
        _ => Transfer::NotFound,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticket_ids_round_trip_and_reject_junk() {
        let id = TicketId { event: 7, order: "0123456789abcdef0123456789abcdef".into(), n: 3 };
        assert_eq!(TicketId::parse(&id.public()), Some(id.clone()));
        assert_eq!(id.token(), "0123456789abcdef0123456789abcdef-3");
        for bad in ["", "7", "7-0123456789abcdef0123456789abcdef", "7-0123456789abcdef0123456789abcdef-0",
            "7-0123456789abcdef0123456789abcdef-x", "7-0123456789abcdef0123456789abcdef-1-2", "0-0123456789abcdef-1",
            "7-../../etc-1", "7-0123456789abcdeg0123456789abcdef-1", "7-0123456789abcdef0123456789abcdef-+1"] {
            assert_eq!(TicketId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn records_parse_seated_and_general_admission() {
        let seated = TicketRecord::parse("used|42|2|31|31:1:4|1700|9").expect("seated");
        assert_eq!((seated.version, seated.section, seated.seat.as_deref(), seated.used_ms), (2, 31, Some("31:1:4"), Some(1700)));
        let ga = TicketRecord::parse("valid|42|1|32|||").expect("ga");
        assert_eq!((ga.status.as_str(), ga.seat, ga.used_ms, ga.via), ("valid", None, None, None));
        let resold = TicketRecord::parse("valid|43|2|31|31:1:4|||r").expect("resold");
        assert_eq!((resold.status_for("43"), resold.status_for("42")), ("valid", "resold"));
        let given = TicketRecord::parse("valid|44|2|31|31:1:4|||t").expect("transferred");
        assert_eq!(given.status_for("42"), "transferred");
        assert_eq!(TicketRecord::parse("valid|42"), None);
    }
}
