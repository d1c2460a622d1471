//! Stream entries as rows: decodes each event type of
//! `docs/stream-events.md` into the rows it stands for. Decoding is strict: a
//! missing or malformed field rejects the entry (it then goes to the
//! dead-letter stream instead of writing a half-true row).

use std::collections::HashMap;

use stampede_inventory::SeatRef;
use stampede_inventory::streams::Entry;

/// A hold's status rank: a write only lands when its rank is higher.
pub fn hold_rank(status: &str) -> i16 {
    match status {
        "held" => 1,
        "released" | "expired" => 2,
        "confirmed" => 3,
        _ => 0,
    }
}

/// A payment's status rank.
pub fn payment_rank(status: &str) -> i16 {
    match status {
        "captured" => 1,
        "refunded" => 2,
        _ => 0,
    }
}

/// A `holds` row (or the part of one a message knows).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HoldRow {
    pub id: String,
    pub event: i64,
    pub user: i64,
    pub section: Option<i64>,
    /// Comma list of seat ids, as the stream carries it ("" for GA).
    pub seats: String,
    pub quantity: i32,
    pub amount_cents: i64,
    pub status: &'static str,
    pub rank: i16,
    /// Only `hold.*` messages carry it.
    pub expires_ms: Option<i64>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

impl HoldRow {
    /// Folds a second message about the same hold into this row: the
    /// higher status wins, known facts fill unknown ones.
    pub fn merge(&mut self, other: HoldRow) {
        if other.rank > self.rank {
            self.status = other.status;
            self.rank = other.rank;
            self.updated_ms = other.updated_ms;
        }
        if self.expires_ms.is_none() {
            self.expires_ms = other.expires_ms;
        }
        self.created_ms = self.created_ms.min(other.created_ms);
    }
}

/// An `orders` row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderRow {
    pub id: String,
    pub hold: String,
    pub event: i64,
    pub user: i64,
    pub section: Option<i64>,
    pub seats: String,
    pub quantity: i32,
    pub amount_cents: i64,
    pub payment: String,
    pub created_ms: i64,
}

/// A `payments` row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentRow {
    pub id: String,
    pub hold: String,
    pub order: Option<String>,
    pub event: i64,
    pub user: i64,
    pub amount_cents: i64,
    pub status: &'static str,
    pub rank: i16,
    pub charge: String,
    pub reason: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

impl PaymentRow {
    pub fn merge(&mut self, other: PaymentRow) {
        if other.rank > self.rank {
            self.status = other.status;
            self.rank = other.rank;
            self.updated_ms = other.updated_ms;
        }
        if self.order.is_none() {
            self.order = other.order;
        }
        if self.reason.is_none() {
            self.reason = other.reason;
        }
        self.created_ms = self.created_ms.min(other.created_ms);
    }
}

/// A ticket's status rank (see `0004_tickets.sql`).
pub fn ticket_rank(status: &str) -> i16 {
    match status {
        "valid" => 1,
        "used" => 5,
        _ => 0,
    }
}

/// A `tickets` row (or the part of one a message knows).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TicketRow {
    pub order: String,
    pub n: i32,
    pub event: i64,
    pub owner: i64,
    pub section: i64,
    pub seat: Option<String>,
    pub version: i32,
    pub status: &'static str,
    pub rank: i16,
    pub used_ms: Option<i64>,
    pub gate: Option<i64>,
    /// The role of who checked it in, when that is audited: `organiser` or
    /// `admin` (a gate's check-ins are its job, not an operator's action).
    pub checked_in_as: Option<&'static str>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

impl TicketRow {
    /// Folds a second message about the same ticket into this row: the
    /// higher status wins, the owner follows the higher version, known
    /// facts fill unknown ones.
    pub fn merge(&mut self, other: TicketRow) {
        if other.version > self.version {
            self.version = other.version;
            self.owner = other.owner;
        }
        if other.rank > self.rank {
            self.status = other.status;
            self.rank = other.rank;
            self.updated_ms = other.updated_ms;
        }
        self.used_ms = self.used_ms.or(other.used_ms);
        self.gate = self.gate.or(other.gate);
        self.checked_in_as = self.checked_in_as.or(other.checked_in_as);
        self.created_ms = self.created_ms.min(other.created_ms);
    }
}

/// A `ticket_transfers` row: the audit trail of one transfer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransferRow {
    pub order: String,
    pub n: i32,
    /// The version the transfer made.
    pub version: i32,
    pub event: i64,
    pub from: i64,
    pub to: i64,
    pub at_ms: i64,
}

/// The tickets an order becomes: its i-th seat (or place) is ticket i.
fn order_tickets(order: &OrderRow, seats: &[String]) -> Vec<TicketRow> {
    let ticket = |n: i32, section: i64, seat: Option<String>| TicketRow {
        order: order.id.clone(),
        n,
        event: order.event,
        owner: order.user,
        section,
        seat,
        version: 1,
        status: "valid",
        rank: ticket_rank("valid"),
        used_ms: None,
        gate: None,
        checked_in_as: None,
        created_ms: order.created_ms,
        updated_ms: order.created_ms,
    };
    match order.section {
        Some(section) => (1..=order.quantity).map(|n| ticket(n, section, None)).collect(),
        None => seats
            .iter()
            .zip(1..)
            .map(|(seat, n)| ticket(n, SeatRef::parse(seat).map_or(0, |s| s.section), Some(seat.clone())))
            .collect(),
    }
}

/// A listing's status rank: it ends once, withdrawn or sold.
pub fn listing_rank(status: &str) -> i16 {
    match status {
        "open" => 1,
        "withdrawn" => 2,
        "sold" => 3,
        _ => 0,
    }
}

/// A `listings` row (or the part of one a message knows).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListingRow {
    pub id: String,
    pub event: i64,
    /// The listed ticket: its order and place.
    pub order: String,
    pub n: i32,
    pub seller: i64,
    pub price_cents: i64,
    pub status: &'static str,
    pub rank: i16,
    /// Known once sold.
    pub buyer: Option<i64>,
    pub hold: Option<String>,
    pub payment: Option<String>,
    pub sale_order: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

impl ListingRow {
    pub fn merge(&mut self, other: ListingRow) {
        if other.rank > self.rank {
            self.status = other.status;
            self.rank = other.rank;
            self.updated_ms = other.updated_ms;
        }
        self.buyer = self.buyer.or(other.buyer);
        self.hold = self.hold.take().or(other.hold);
        self.payment = self.payment.take().or(other.payment);
        self.sale_order = self.sale_order.take().or(other.sale_order);
        self.created_ms = self.created_ms.min(other.created_ms);
    }
}

/// A `payouts` row: what a sold listing owes its seller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayoutRow {
    pub listing: String,
    pub event: i64,
    pub seller: i64,
    pub amount_cents: i64,
    pub payment: String,
    pub at_ms: i64,
}

/// What one stream entry writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// `hold.created`, `hold.released`, `hold.expired`.
    Hold(HoldRow),
    /// `order.confirmed`: the order, its sold seats, the hold turned
    /// confirmed, and the order's tickets.
    Order { order: OrderRow, hold: HoldRow, seats: Vec<String>, tickets: Vec<TicketRow> },
    /// `ticket.checked_in`.
    Ticket(TicketRow),
    /// `ticket.transferred`: the ticket's new owner and version, and the
    /// transfer's row.
    Transfer { ticket: TicketRow, transfer: TransferRow },
    /// `payment.captured`, `payment.refunded`.
    Payment(PaymentRow),
    /// `listing.created`, `listing.withdrawn`: the listing's row.
    Listing(ListingRow),
    /// `listing.sold`.
    Sale(Box<Sale>),
}

/// What `listing.sold` writes: the listing, the ticket's new owner and
/// version, the buyer's hold turned confirmed, and the seller's payout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sale {
    pub listing: ListingRow,
    pub ticket: TicketRow,
    pub hold: HoldRow,
    pub payout: PayoutRow,
}

impl Message {
    /// How many rows it writes (for the rows counter).
    pub fn rows(&self) -> usize {
        match self {
            Message::Hold(_) | Message::Payment(_) | Message::Ticket(_) | Message::Listing(_) => 1,
            Message::Sale(_) => 4,
            Message::Order { seats, tickets, .. } => 2 + seats.len() + tickets.len(),
            Message::Transfer { .. } => 2,
        }
    }
}

struct Fields<'a>(&'a HashMap<String, String>);

impl<'a> Fields<'a> {
    fn str(&self, name: &str) -> Result<&'a str, String> {
        self.0.get(name).map(String::as_str).ok_or_else(|| format!("missing field {name:?}"))
    }

    /// A non-empty id of at most 128 printable ASCII characters without commas.
    fn id(&self, name: &str) -> Result<String, String> {
        let v = self.str(name)?;
        if v.is_empty() || v.len() > 128 || !v.bytes().all(|b| b.is_ascii_graphic() && b != b',') {
            return Err(format!("field {name:?} is not an id: {v:?}"));
        }
        Ok(v.to_owned())
    }

    fn num<T: std::str::FromStr>(&self, name: &str) -> Result<T, String> {
        let v = self.str(name)?;
        v.parse().map_err(|_| format!("field {name:?} is not a number: {v:?}"))
    }

    fn non_negative(&self, name: &str) -> Result<i64, String> {
        let n: i64 = self.num(name)?;
        if n < 0 {
            return Err(format!("field {name:?} is negative: {n}"));
        }
        Ok(n)
    }

    /// `by` of a check-in: `organiser` or `admin` are audited, `gate` (and
    /// an entry from before roles were recorded) is not.
    fn checked_in_as(&self) -> Result<Option<&'static str>, String> {
        match self.0.get("by").map(String::as_str) {
            None | Some("gate") => Ok(None),
            Some("organiser") => Ok(Some("organiser")),
            Some("admin") => Ok(Some("admin")),
            Some(other) => Err(format!("field \"by\" is not a role: {other:?}")),
        }
    }

    fn section(&self) -> Result<Option<i64>, String> {
        match self.str("section")? {
            "" => Ok(None),
            _ => self.num("section").map(Some),
        }
    }

    /// The seat list, validated: each `<section>:<row>:<n>`, none for GA,
    /// as many as `qty` otherwise.
    fn seats(&self, section: Option<i64>, qty: i32) -> Result<(String, Vec<String>), String> {
        let raw = self.str("seats")?;
        let seats: Vec<String> = if raw.is_empty() { Vec::new() } else { raw.split(',').map(str::to_owned).collect() };
        if let Some(bad) = seats.iter().find(|s| SeatRef::parse(s).is_none()) {
            return Err(format!("not a seat id: {bad:?}"));
        }
        match section {
            Some(_) if !seats.is_empty() => Err("a general-admission hold lists seats".into()),
            None if seats.len() != qty as usize => Err(format!("{} seats for quantity {qty}", seats.len())),
            _ => Ok((raw.to_owned(), seats)),
        }
    }

    /// A ticket entry's ticket: its order and place (the token
    /// `<order>-<i>`), its seat (empty for general admission) and version.
    fn ticket(&self) -> Result<(String, i32, Option<String>, i32), String> {
        let token = self.id("ticket")?;
        let (order, n) = token.rsplit_once('-').ok_or_else(|| format!("not a ticket token: {token:?}"))?;
        let n: i32 = n.parse().ok().filter(|n| *n >= 1).ok_or_else(|| format!("not a ticket token: {token:?}"))?;
        let seat = match self.str("seat")? {
            "" => None,
            s if SeatRef::parse(s).is_some() => Some(s.to_owned()),
            s => return Err(format!("not a seat id: {s:?}")),
        };
        let version: i32 = self.num("ver")?;
        if version < 1 {
            return Err(format!("version must be positive: {version}"));
        }
        Ok((order.to_owned(), n, seat, version))
    }

    /// A listing entry's listing row: its id, ticket and price, as `status`.
    fn listing(&self, event: i64, seller: i64, status: &'static str, at: i64) -> Result<ListingRow, String> {
        let id = self.id("listing")?;
        let token = self.id("ticket")?;
        let (order, n) = token.rsplit_once('-').ok_or_else(|| format!("not a ticket token: {token:?}"))?;
        let n: i32 = n.parse().ok().filter(|n| *n >= 1).ok_or_else(|| format!("not a ticket token: {token:?}"))?;
        let price_cents = self.non_negative("price")?;
        if price_cents < 1 {
            return Err(format!("a listing's price is positive: {price_cents}"));
        }
        Ok(ListingRow {
            id,
            event,
            order: order.to_owned(),
            n,
            seller,
            price_cents,
            status,
            rank: listing_rank(status),
            buyer: None,
            hold: None,
            payment: None,
            sale_order: None,
            created_ms: at,
            updated_ms: at,
        })
    }

    fn quantity(&self) -> Result<i32, String> {
        let q: i32 = self.num("qty")?;
        if q < 1 {
            return Err(format!("quantity must be positive: {q}"));
        }
        Ok(q)
    }
}

/// Decodes `entry` into the rows it writes, or says why it cannot.
pub fn decode(entry: &Entry) -> Result<Message, String> {
    let f = Fields(&entry.fields);
    let at: i64 = f.num("at")?;
    let event = entry.event;
    match entry.kind() {
        kind @ ("hold.created" | "hold.released" | "hold.expired") => {
            let status = match kind {
                "hold.created" => "held",
                "hold.released" => "released",
                _ => "expired",
            };
            let section = f.section()?;
            let quantity = f.quantity()?;
            let (seats, _) = f.seats(section, quantity)?;
            Ok(Message::Hold(HoldRow {
                id: f.id("hold")?,
                event,
                user: f.num("user")?,
                section,
                seats,
                quantity,
                amount_cents: f.non_negative("amount")?,
                status,
                rank: hold_rank(status),
                expires_ms: Some(f.num("exp")?),
                created_ms: at,
                updated_ms: at,
            }))
        }
        "order.confirmed" => {
            let section = f.section()?;
            let quantity = f.quantity()?;
            let (seats, list) = f.seats(section, quantity)?;
            let hold = f.id("hold")?;
            let user = f.num("user")?;
            let amount_cents = f.non_negative("amount")?;
            let order = OrderRow {
                id: f.id("order")?,
                hold: hold.clone(),
                event,
                user,
                section,
                seats: seats.clone(),
                quantity,
                amount_cents,
                payment: f.id("payment")?,
                created_ms: at,
            };
            let hold = HoldRow {
                id: hold,
                event,
                user,
                section,
                seats,
                quantity,
                amount_cents,
                status: "confirmed",
                rank: hold_rank("confirmed"),
                expires_ms: None,
                created_ms: at,
                updated_ms: at,
            };
            let tickets = order_tickets(&order, &list);
            Ok(Message::Order { order, hold, seats: list, tickets })
        }
        kind @ ("payment.captured" | "payment.refunded") => {
            let refunded = kind == "payment.refunded";
            let status = if refunded { "refunded" } else { "captured" };
            Ok(Message::Payment(PaymentRow {
                id: f.id("payment")?,
                hold: f.id("hold")?,
                order: if refunded { None } else { Some(f.id("order")?) },
                event,
                user: f.num("user")?,
                amount_cents: f.non_negative("amount")?,
                status,
                rank: payment_rank(status),
                charge: f.id("charge")?,
                reason: if refunded { Some(f.str("reason")?.to_owned()) } else { None },
                created_ms: at,
                updated_ms: at,
            }))
        }
        "ticket.checked_in" => {
            let (order, n, seat, version) = f.ticket()?;
            Ok(Message::Ticket(TicketRow {
                order,
                n,
                event,
                owner: f.num("user")?,
                section: f.num("section")?,
                seat,
                version,
                status: "used",
                rank: ticket_rank("used"),
                used_ms: Some(at),
                gate: Some(f.num("gate")?),
                checked_in_as: f.checked_in_as()?,
                created_ms: at,
                updated_ms: at,
            }))
        }
        "ticket.transferred" => {
            let (order, n, seat, version) = f.ticket()?;
            if version < 2 {
                return Err(format!("a transfer makes version 2 or more: {version}"));
            }
            let (from, to): (i64, i64) = (f.num("from")?, f.num("user")?);
            let transfer = TransferRow { order: order.clone(), n, version, event, from, to, at_ms: at };
            // Still valid, the recipient's now: the owner follows the version.
            let ticket = TicketRow {
                order,
                n,
                event,
                owner: to,
                section: f.num("section")?,
                seat,
                version,
                status: "valid",
                rank: ticket_rank("valid"),
                used_ms: None,
                gate: None,
                checked_in_as: None,
                created_ms: at,
                updated_ms: at,
            };
            Ok(Message::Transfer { ticket, transfer })
        }
        kind @ ("listing.created" | "listing.withdrawn") => {
            let status = if kind == "listing.created" { "open" } else { "withdrawn" };
            Ok(Message::Listing(f.listing(event, f.num("user")?, status, at)?))
        }
        "listing.sold" => {
            let (order, n, seat, version) = f.ticket()?;
            if version < 2 {
                return Err(format!("a sale makes version 2 or more: {version}"));
            }
            let (seller, buyer): (i64, i64) = (f.num("from")?, f.num("user")?);
            let mut listing = f.listing(event, seller, "sold", at)?;
            let (hold, payment, sale_order) = (f.id("hold")?, f.id("payment")?, f.id("order")?);
            listing.buyer = Some(buyer);
            listing.hold = Some(hold.clone());
            listing.payment = Some(payment.clone());
            listing.sale_order = Some(sale_order);
            let section: i64 = f.num("section")?;
            let ticket = TicketRow {
                order,
                n,
                event,
                owner: buyer,
                section,
                seat: seat.clone(),
                version,
                status: "valid",
                rank: ticket_rank("valid"),
                used_ms: None,
                gate: None,
                checked_in_as: None,
                created_ms: at,
                updated_ms: at,
            };
            let hold = HoldRow {
                id: hold,
                event,
                user: buyer,
                section: if seat.is_none() { Some(section) } else { None },
                seats: seat.unwrap_or_default(),
                quantity: 1,
                amount_cents: listing.price_cents,
                status: "confirmed",
                rank: hold_rank("confirmed"),
                expires_ms: None,
                created_ms: at,
                updated_ms: at,
            };
            let payout = PayoutRow { listing: listing.id.clone(), event, seller, amount_cents: listing.price_cents, payment, at_ms: at };
            Ok(Message::Sale(Box::new(Sale { listing, ticket, hold, payout })))
        }
        "" => Err("missing field \"type\"".into()),
        other => Err(format!("unknown type {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(pairs: &[(&str, &str)]) -> Entry {
        Entry {
            event: 7,
            stream: "t:{ev:7}:stream".into(),
            id: "1-0".into(),
            fields: pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            deliveries: 1,
        }
    }

    #[test]
    fn decodes_every_type() {
        let created = entry(&[
            ("type", "hold.created"),
            ("hold", "h1"),
            ("user", "42"),
            ("seats", "3:1:1,3:1:2"),
            ("section", ""),
            ("qty", "2"),
            ("amount", "10000"),
            ("exp", "2000"),
            ("at", "1000"),
        ]);
        let Ok(Message::Hold(h)) = decode(&created) else { panic!("hold") };
        assert_eq!((h.status, h.rank, h.expires_ms, h.seats.as_str()), ("held", 1, Some(2000), "3:1:1,3:1:2"));

        let confirmed = entry(&[
            ("type", "order.confirmed"),
            ("order", "o1"),
            ("hold", "h1"),
            ("user", "42"),
            ("seats", ""),
            ("section", "9"),
            ("qty", "3"),
            ("amount", "4500"),
            ("payment", "pay_1"),
            ("at", "1500"),
        ]);
        let Ok(Message::Order { order, hold, seats, tickets }) = decode(&confirmed) else { panic!("order") };
        assert_eq!((order.section, hold.status, hold.expires_ms, seats.len()), (Some(9), "confirmed", None, 0));
        let places: Vec<(i32, i64, Option<String>)> = tickets.iter().map(|t| (t.n, t.section, t.seat.clone())).collect();
        assert_eq!(places, vec![(1, 9, None), (2, 9, None), (3, 9, None)], "one ticket per place");

        let checked_in = entry(&[
            ("type", "ticket.checked_in"),
            ("ticket", "o1-2"),
            ("user", "42"),
            ("ver", "1"),
            ("section", "3"),
            ("seat", "3:1:2"),
            ("gate", "7"),
            ("at", "2000"),
        ]);
        let Ok(Message::Ticket(t)) = decode(&checked_in) else { panic!("ticket") };
        assert_eq!((t.order.as_str(), t.n, t.status, t.used_ms, t.gate, t.seat.as_deref()), ("o1", 2, "used", Some(2000), Some(7), Some("3:1:2")));
        assert_eq!(t.checked_in_as, None, "no role recorded: not audited");
        for (by, audited) in [("gate", None), ("organiser", Some("organiser")), ("admin", Some("admin"))] {
            let mut e = checked_in.clone();
            e.fields.insert("by".into(), by.into());
            let Ok(Message::Ticket(t)) = decode(&e) else { panic!("ticket") };
            assert_eq!(t.checked_in_as, audited, "by {by}");
        }
        let mut e = checked_in.clone();
        e.fields.insert("by".into(), "customer".into());
        assert!(decode(&e).is_err(), "a check-in by no role that may check in");
        let mut bad = checked_in.clone();
        bad.fields.insert("ticket".into(), "o1".into());
        assert!(decode(&bad).is_err(), "a ticket token without its place");

        let transferred = entry(&[
            ("type", "ticket.transferred"),
            ("ticket", "o1-1"),
            ("from", "42"),
            ("user", "43"),
            ("ver", "2"),
            ("section", "9"),
            ("seat", ""),
            ("at", "2500"),
        ]);
        let Ok(Message::Transfer { ticket, transfer }) = decode(&transferred) else { panic!("transfer") };
        assert_eq!((ticket.owner, ticket.version, ticket.status, ticket.seat), (43, 2, "valid", None));
        assert_eq!((transfer.from, transfer.to, transfer.version, transfer.at_ms, transfer.n), (42, 43, 2, 2500, 1));
        let mut bad = transferred.clone();
        bad.fields.insert("ver".into(), "1".into());
        assert!(decode(&bad).is_err(), "a transfer to version 1");
        bad.fields.insert("ver".into(), "2".into());
        bad.fields.remove("from");
        assert!(decode(&bad).is_err(), "a transfer from nobody");

        let refunded = entry(&[
            ("type", "payment.refunded"),
            ("payment", "pay_2"),
            ("hold", "h2"),
            ("user", "42"),
            ("amount", "100"),
            ("charge", "ch_1"),
            ("reason", "hold_expired"),
            ("at", "9"),
        ]);
        let Ok(Message::Payment(p)) = decode(&refunded) else { panic!("payment") };
        assert_eq!((p.status, p.rank, p.order, p.reason.as_deref()), ("refunded", 2, None, Some("hold_expired")));
    }

    #[test]
    fn rejects_malformed_entries() {
        let base = [
            ("type", "hold.created"),
            ("hold", "h1"),
            ("user", "42"),
            ("seats", "3:1:1"),
            ("section", ""),
            ("qty", "1"),
            ("amount", "100"),
            ("exp", "2000"),
            ("at", "1000"),
        ];
        assert!(decode(&entry(&base)).is_ok());
        for (field, bad) in [("user", "bob"), ("seats", "3:1"), ("qty", "0"), ("qty", "2"), ("amount", "-1"), ("at", ""), ("hold", ""), ("type", "hold.lost")] {
            let mut e = entry(&base);
            e.fields.insert(field.into(), bad.into());
            assert!(decode(&e).is_err(), "{field}={bad} must be rejected");
        }
        let mut e = entry(&base);
        e.fields.remove("exp");
        assert_eq!(decode(&e), Err("missing field \"exp\"".into()));
    }

    #[test]
    fn merging_never_regresses() {
        let row = |status: &'static str, exp: Option<i64>, at: i64| HoldRow {
            id: "h".into(),
            event: 1,
            user: 1,
            section: None,
            seats: String::new(),
            quantity: 1,
            amount_cents: 1,
            status,
            rank: hold_rank(status),
            expires_ms: exp,
            created_ms: at,
            updated_ms: at,
        };
        let mut r = row("confirmed", None, 50);
        r.merge(row("expired", Some(90), 100));
        r.merge(row("held", Some(90), 10));
        assert_eq!((r.status, r.expires_ms, r.created_ms, r.updated_ms), ("confirmed", Some(90), 10, 50));
    }
}
