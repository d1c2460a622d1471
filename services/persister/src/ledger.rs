//! Writing a batch of decoded messages to Postgres: one transaction, one
//! multi-row upsert per table (`INSERT … SELECT FROM unnest(…) ON CONFLICT
//! …`), the five sent together (one round trip between `BEGIN` and
//! `COMMIT`) and checked before the commit. Every statement is idempotent
//! and never regresses a status (see `0003_ledger.sql`), so a replayed or
//! late message changes nothing it should not. Rows are merged per key and
//! sorted before writing, so one statement never touches a row twice and
//! concurrent persisters lock rows in the same order.

use std::collections::BTreeMap;

use deadpool_postgres::{Client, Pool, Transaction};
use stampede_inventory::TicketId;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Row, Statement};

use crate::records::{HoldRow, ListingRow, Message, OrderRow, PaymentRow, PayoutRow, Sale, TicketRow, TransferRow};

/// Why a write failed, which decides what the worker does next.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Postgres is unreachable or asked us to retry (connection lost,
    /// serialization failure, deadlock, shutdown): retry the same batch.
    #[error("postgres unavailable: {0}")]
    Unavailable(String),
    /// Postgres refused the data (a constraint, a bad value): retrying the
    /// same batch fails again; isolate the message that causes it.
    #[error("postgres rejected the batch: {0}")]
    Rejected(String),
}

impl From<tokio_postgres::Error> for WriteError {
    fn from(e: tokio_postgres::Error) -> Self {
        let text = match e.as_db_error() {
            Some(db) => format!("{} ({})", db.message(), db.code().code()),
            None => e.to_string(),
        };
        match e.code() {
            Some(code) if is_transient(code) => WriteError::Unavailable(text),
            Some(_) => WriteError::Rejected(text),
            // No SQLSTATE: the connection failed, or a value could not be
            // encoded. Only the first is worth retrying.
            None if e.is_closed() || has_io_source(&e) => WriteError::Unavailable(text),
            None if text.contains("serializ") => WriteError::Rejected(text),
            None => WriteError::Unavailable(text),
        }
    }
}

impl From<deadpool_postgres::PoolError> for WriteError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        WriteError::Unavailable(e.to_string())
    }
}

fn has_io_source(e: &tokio_postgres::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// SQLSTATEs that say "try again" rather than "this data is wrong".
fn is_transient(code: &SqlState) -> bool {
    let c = code.code();
    matches!(&c[..2], "08" | "40" | "53" | "57" | "58") || c == SqlState::LOCK_NOT_AVAILABLE.code()
}

/// Rows to write, merged per primary key.
#[derive(Default, Debug)]
pub struct Batch {
    holds: BTreeMap<String, HoldRow>,
    orders: BTreeMap<String, OrderRow>,
    /// `(event, seat)` → order.
    seats: BTreeMap<(i64, String), String>,
    payments: BTreeMap<String, PaymentRow>,
    /// `(order, i)` → ticket.
    tickets: BTreeMap<(String, i32), TicketRow>,
    /// `(order, i, version)` → transfer.
    transfers: BTreeMap<(String, i32, i32), TransferRow>,
    listings: BTreeMap<String, ListingRow>,
    /// Listing → payout.
    payouts: BTreeMap<String, PayoutRow>,
    /// Two orders selling one seat within this batch.
    conflict: Option<String>,
    messages: usize,
    rows: usize,
}

/// Rows written per table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Written {
    pub holds: usize,
    pub orders: usize,
    pub order_seats: usize,
    pub payments: usize,
    pub tickets: usize,
    pub ticket_transfers: usize,
    pub listings: usize,
    pub payouts: usize,
}

impl Written {
    pub fn total(&self) -> usize {
        self.holds + self.orders + self.order_seats + self.payments + self.tickets + self.ticket_transfers + self.listings + self.payouts
    }
}

impl Batch {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn of(message: Message) -> Self {
        let mut b = Self::new();
        b.add(message);
        b
    }

    pub fn is_empty(&self) -> bool {
        self.messages == 0
    }

    /// Messages added.
    pub fn messages(&self) -> usize {
        self.messages
    }

    /// Rows the messages stand for before merging.
    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn add(&mut self, message: Message) {
        self.messages += 1;
        self.rows += message.rows();
        match message {
            Message::Hold(h) => self.add_hold(h),
            Message::Order { order, hold, seats, tickets } => {
                for t in tickets {
                    self.add_ticket(t);
                }
                for seat in seats {
                    match self.seats.get(&(order.event, seat.clone())) {
                        Some(other) if *other != order.id => {
                            self.conflict = Some(format!("seat {seat} sold to orders {other} and {}", order.id));
                        }
                        Some(_) => {}
                        None => {
                            self.seats.insert((order.event, seat), order.id.clone());
                        }
                    }
                }
                self.add_hold(hold);
                self.orders.entry(order.id.clone()).or_insert(order);
            }
            Message::Ticket(t) => self.add_ticket(t),
            Message::Transfer { ticket, transfer } => {
                self.add_ticket(ticket);
                self.transfers.entry((transfer.order.clone(), transfer.n, transfer.version)).or_insert(transfer);
            }
            Message::Listing(l) => self.add_listing(l),
            Message::Sale(sale) => {
                let Sale { listing, ticket, hold, payout } = *sale;
                self.add_listing(listing);
                self.add_ticket(ticket);
                self.add_hold(hold);
                self.payouts.entry(payout.listing.clone()).or_insert(payout);
            }
            Message::Payment(p) => match self.payments.get_mut(&p.id) {
                Some(existing) => existing.merge(p),
                None => {
                    self.payments.insert(p.id.clone(), p);
                }
            },
        }
    }

    fn add_ticket(&mut self, t: TicketRow) {
        match self.tickets.get_mut(&(t.order.clone(), t.n)) {
            Some(existing) => existing.merge(t),
            None => {
                self.tickets.insert((t.order.clone(), t.n), t);
            }
        }
    }

    fn add_listing(&mut self, l: ListingRow) {
        match self.listings.get_mut(&l.id) {
            Some(existing) => existing.merge(l),
            None => {
                self.listings.insert(l.id.clone(), l);
            }
        }
    }

    fn add_hold(&mut self, h: HoldRow) {
        match self.holds.get_mut(&h.id) {
            Some(existing) => existing.merge(h),
            None => {
                self.holds.insert(h.id.clone(), h);
            }
        }
    }

    /// Writes the batch in one transaction.
    pub async fn write(&self, pool: &Pool) -> Result<Written, WriteError> {
        if let Some(c) = &self.conflict {
            return Err(WriteError::Rejected(c.clone()));
        }
        let mut client = pool.get().await?;
        self.write_with(&mut client).await
    }

    async fn write_with(&self, client: &mut Client) -> Result<Written, WriteError> {
        let tx = client.transaction().await?;
        // A request goes out when its future is first polled, and `biased`
        // polls in this order: with the statements prepared first (once per
        // connection), the five go out together and run in this order.
        let upsert_holds = tx.prepare_cached(UPSERT_HOLDS).await?;
        let insert_orders = tx.prepare_cached(INSERT_ORDERS).await?;
        let insert_seats = tx.prepare_cached(INSERT_SEATS).await?;
        let upsert_payments = tx.prepare_cached(UPSERT_PAYMENTS).await?;
        let upsert_tickets = tx.prepare_cached(UPSERT_TICKETS).await?;
        let insert_transfers = tx.prepare_cached(INSERT_TRANSFERS).await?;
        let upsert_listings = tx.prepare_cached(UPSERT_LISTINGS).await?;
        let insert_payouts = tx.prepare_cached(INSERT_PAYOUTS).await?;
        let audit_check_ins = tx.prepare_cached(AUDIT_CHECK_INS).await?;
        let (holds, orders, seats, payments, tickets, transfers, listings, payouts, audited) = tokio::join!(
            biased;
            self.upsert_holds(&tx, &upsert_holds),
            self.insert_orders(&tx, &insert_orders),
            self.insert_seats(&tx, &insert_seats),
            self.upsert_payments(&tx, &upsert_payments),
            self.upsert_tickets(&tx, &upsert_tickets),
            self.insert_transfers(&tx, &insert_transfers),
            self.upsert_listings(&tx, &upsert_listings),
            self.insert_payouts(&tx, &insert_payouts),
            self.audit_check_ins(&tx, &audit_check_ins),
        );
        // The first failure is the cause: the statements after it only
        // report the transaction aborted.
        let (_, orders, seats, _, _, _, _, _, _) =
            (holds?, orders?, seats?, payments?, tickets?, transfers?, listings?, payouts?, audited?);
        // An order id already taken by another hold is a conflict, not a replay.
        for row in orders {
            let (id, hold): (&str, &str) = (row.get(0), row.get(1));
            if self.orders.get(id).is_some_and(|mine| mine.hold != hold) {
                return Err(WriteError::Rejected(format!("order {id} exists for another hold")));
            }
        }
        for row in seats {
            let (key, order): ((i64, String), &str) = ((row.get(0), row.get(1)), row.get(2));
            if self.seats.get(&key).is_some_and(|mine| mine != order) {
                let (event, seat) = key;
                return Err(WriteError::Rejected(format!("seat {seat} of event {event} is already sold to order {order}")));
            }
        }
        tx.commit().await?;
        Ok(Written {
            holds: self.holds.len(),
            orders: self.orders.len(),
            order_seats: self.seats.len(),
            payments: self.payments.len(),
            tickets: self.tickets.len(),
            ticket_transfers: self.transfers.len(),
            listings: self.listings.len(),
            payouts: self.payouts.len(),
        })
    }

    async fn upsert_holds(&self, tx: &Transaction<'_>, stmt: &Statement) -> Result<u64, tokio_postgres::Error> {
        if self.holds.is_empty() {
            return Ok(0);
        }
        let rows: Vec<&HoldRow> = self.holds.values().collect();
        tx.execute(
            stmt,
            &[
                &rows.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.event).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.user).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.section).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.seats.as_str()).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.quantity).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.amount_cents).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.status).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.rank).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.expires_ms).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.created_ms).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.updated_ms).collect::<Vec<_>>(),
            ],
        )
        .await
    }

    /// The orders that are new or clash (see [`INSERT_ORDERS`]).
    async fn insert_orders(&self, tx: &Transaction<'_>, stmt: &Statement) -> Result<Vec<Row>, tokio_postgres::Error> {
        if self.orders.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<&OrderRow> = self.orders.values().collect();
        tx.query(
            stmt,
            &[
                &rows.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.hold.as_str()).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.event).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.user).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.section).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.seats.as_str()).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.quantity).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.amount_cents).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.payment.as_str()).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.created_ms).collect::<Vec<_>>(),
            ],
        )
        .await
    }

    /// The seats that are new or clash (see [`INSERT_SEATS`]).
    async fn insert_seats(&self, tx: &Transaction<'_>, stmt: &Statement) -> Result<Vec<Row>, tokio_postgres::Error> {
        if self.seats.is_empty() {
            return Ok(Vec::new());
        }
        let events: Vec<i64> = self.seats.keys().map(|(e, _)| *e).collect();
        let seats: Vec<&str> = self.seats.keys().map(|(_, s)| s.as_str()).collect();
        let orders: Vec<&str> = self.seats.values().map(String::as_str).collect();
        tx.query(stmt, &[&events, &seats, &orders]).await
    }

    async fn upsert_tickets(&self, tx: &Transaction<'_>, stmt: &Statement) -> Result<u64, tokio_postgres::Error> {
        if self.tickets.is_empty() {
            return Ok(0);
        }
        let rows: Vec<&TicketRow> = self.tickets.values().collect();
        tx.execute(
            stmt,
            &[
                &rows.iter().map(|r| r.order.as_str()).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.n).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.event).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.owner).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.section).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.seat.as_deref()).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.version).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.status).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.rank).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.used_ms).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.gate).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.created_ms).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.updated_ms).collect::<Vec<_>>(),
            ],
        )
        .await
    }

    async fn insert_transfers(&self, tx: &Transaction<'_>, stmt: &Statement) -> Result<u64, tokio_postgres::Error> {
        if self.transfers.is_empty() {
            return Ok(0);
        }
        let rows: Vec<&TransferRow> = self.transfers.values().collect();
        tx.execute(
            stmt,
            &[
                &rows.iter().map(|r| r.order.as_str()).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.n).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.version).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.event).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.from).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.to).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.at_ms).collect::<Vec<_>>(),
            ],
        )
        .await
    }

    async fn upsert_listings(&self, tx: &Transaction<'_>, stmt: &Statement) -> Result<u64, tokio_postgres::Error> {
        if self.listings.is_empty() {
            return Ok(0);
        }
        let rows: Vec<&ListingRow> = self.listings.values().collect();
        tx.execute(
            stmt,
            &[
                &rows.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.event).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.order.as_str()).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.n).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.seller).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.price_cents).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.status).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.rank).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.buyer).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.hold.as_deref()).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.payment.as_deref()).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.sale_order.as_deref()).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.created_ms).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.updated_ms).collect::<Vec<_>>(),
            ],
        )
        .await
    }

    async fn insert_payouts(&self, tx: &Transaction<'_>, stmt: &Statement) -> Result<u64, tokio_postgres::Error> {
        if self.payouts.is_empty() {
            return Ok(0);
        }
        let rows: Vec<&PayoutRow> = self.payouts.values().collect();
        tx.execute(
            stmt,
            &[
                &rows.iter().map(|r| r.listing.as_str()).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.event).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.seller).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.amount_cents).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.payment.as_str()).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.at_ms).collect::<Vec<_>>(),
            ],
        )
        .await
    }

    /// One audit entry per check-in by an organiser or an admin (a replay
    /// appends nothing: see migration 11).
    async fn audit_check_ins(&self, tx: &Transaction<'_>, stmt: &Statement) -> Result<u64, tokio_postgres::Error> {
        let rows: Vec<(&TicketRow, &str, i64, i64)> = self
            .tickets
            .values()
            .filter_map(|t| Some((t, t.checked_in_as?, t.gate?, t.used_ms?)))
            .collect();
        if rows.is_empty() {
            return Ok(0);
        }
        // Named as the API names tickets (`TicketId::public`).
        let targets: Vec<String> = rows
            .iter()
            .map(|(t, ..)| {
                let id = TicketId { event: t.event, order: t.order.clone(), n: t.n.unsigned_abs() };
                format!("ticket:{}", id.public())
            })
            .collect();
        tx.execute(
            stmt,
            &[
                &rows.iter().map(|r| r.2).collect::<Vec<_>>(),
                &targets,
                &rows.iter().map(|r| r.0.event).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.1).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.0.owner).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.0.section).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.0.seat.as_deref()).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.0.version).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.3).collect::<Vec<_>>(),
            ],
        )
        .await
    }

    async fn upsert_payments(&self, tx: &Transaction<'_>, stmt: &Statement) -> Result<u64, tokio_postgres::Error> {
        if self.payments.is_empty() {
            return Ok(0);
        }
        let rows: Vec<&PaymentRow> = self.payments.values().collect();
        tx.execute(
            stmt,
            &[
                &rows.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.hold.as_str()).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.order.as_deref()).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.event).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.user).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.amount_cents).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.status).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.rank).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.charge.as_str()).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.reason.as_deref()).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.created_ms).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.updated_ms).collect::<Vec<_>>(),
            ],
        )
        .await
    }
}

/// Epoch milliseconds → timestamptz.
macro_rules! ts {
    ($col:literal) => {
        concat!("to_timestamp(", $col, " / 1000.0)")
    };
}

const UPSERT_HOLDS: &str = concat!(
    "INSERT INTO holds (id, event_id, user_id, section_id, seats, quantity, amount_cents, status, status_rank,
                        expires_at, created_at, updated_at)
     SELECT id, event_id, user_id, section_id, string_to_array(seats, ','), quantity, amount_cents, status, rank, ",
    ts!("exp"),
    ", ",
    ts!("created"),
    ", ",
    ts!("updated"),
    "
     FROM unnest($1::text[], $2::int8[], $3::int8[], $4::int8[], $5::text[], $6::int4[], $7::int8[], $8::text[],
                 $9::int2[], $10::int8[], $11::int8[], $12::int8[])
          AS u(id, event_id, user_id, section_id, seats, quantity, amount_cents, status, rank, exp, created, updated)
     ON CONFLICT (id) DO UPDATE SET
        status = CASE WHEN EXCLUDED.status_rank > holds.status_rank THEN EXCLUDED.status ELSE holds.status END,
        updated_at = CASE WHEN EXCLUDED.status_rank > holds.status_rank THEN EXCLUDED.updated_at ELSE holds.updated_at END,
        status_rank = GREATEST(holds.status_rank, EXCLUDED.status_rank),
        expires_at = COALESCE(holds.expires_at, EXCLUDED.expires_at),
        created_at = LEAST(holds.created_at, EXCLUDED.created_at)
     WHERE EXCLUDED.status_rank > holds.status_rank
        OR (holds.expires_at IS NULL AND EXCLUDED.expires_at IS NOT NULL)
        OR EXCLUDED.created_at < holds.created_at"
);

/// An order already written for the same hold is a replay (no write); an
/// order id taken by another hold comes back with that hold, and the batch
/// fails. New orders come back with their own hold.
const INSERT_ORDERS: &str = concat!(
    "INSERT INTO orders (id, hold_id, event_id, user_id, section_id, seats, quantity, amount_cents, status,
                         payment_id, created_at)
     SELECT id, hold_id, event_id, user_id, section_id, string_to_array(seats, ','), quantity, amount_cents,
            'confirmed', payment_id, ",
    ts!("created"),
    "
     FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[], $5::int8[], $6::text[], $7::int4[], $8::int8[],
                 $9::text[], $10::int8[])
          AS u(id, hold_id, event_id, user_id, section_id, seats, quantity, amount_cents, payment_id, created)
     ON CONFLICT (id) DO UPDATE SET hold_id = orders.hold_id
     WHERE orders.hold_id <> EXCLUDED.hold_id
     RETURNING id, hold_id"
);

/// A seat already sold to the same order is a replay (no write); sold to
/// another order it comes back with that order, and the batch fails.
const INSERT_SEATS: &str = "INSERT INTO order_seats (event_id, seat_id, order_id)
     SELECT * FROM unnest($1::int8[], $2::text[], $3::text[])
     ON CONFLICT (event_id, seat_id) DO UPDATE SET order_id = order_seats.order_id
     WHERE order_seats.order_id <> EXCLUDED.order_id
     RETURNING event_id, seat_id, order_id";

const UPSERT_PAYMENTS: &str = concat!(
    "INSERT INTO payments (id, hold_id, order_id, event_id, user_id, amount_cents, status, status_rank,
                           provider_charge_id, refund_reason, created_at, updated_at)
     SELECT id, hold_id, order_id, event_id, user_id, amount_cents, status, rank, charge, reason, ",
    ts!("created"),
    ", ",
    ts!("updated"),
    "
     FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[], $6::int8[], $7::text[], $8::int2[],
                 $9::text[], $10::text[], $11::int8[], $12::int8[])
          AS u(id, hold_id, order_id, event_id, user_id, amount_cents, status, rank, charge, reason, created, updated)
     ON CONFLICT (id) DO UPDATE SET
        status = CASE WHEN EXCLUDED.status_rank > payments.status_rank THEN EXCLUDED.status ELSE payments.status END,
        updated_at = CASE WHEN EXCLUDED.status_rank > payments.status_rank THEN EXCLUDED.updated_at ELSE payments.updated_at END,
        status_rank = GREATEST(payments.status_rank, EXCLUDED.status_rank),
        order_id = COALESCE(payments.order_id, EXCLUDED.order_id),
        refund_reason = COALESCE(payments.refund_reason, EXCLUDED.refund_reason),
        created_at = LEAST(payments.created_at, EXCLUDED.created_at)
     WHERE EXCLUDED.status_rank > payments.status_rank
        OR (payments.order_id IS NULL AND EXCLUDED.order_id IS NOT NULL)
        OR (payments.refund_reason IS NULL AND EXCLUDED.refund_reason IS NOT NULL)
        OR EXCLUDED.created_at < payments.created_at"
);

/// A ticket's status only rises, its owner follows the highest version, and
/// the first check-in's time and gate stay.
const UPSERT_TICKETS: &str = concat!(
    "INSERT INTO tickets (order_id, n, event_id, owner_id, section_id, seat, version, status, status_rank,
                          used_at, checked_in_by, created_at, updated_at)
     SELECT order_id, n, event_id, owner_id, section_id, seat, version, status, rank, ",
    ts!("used"),
    ", gate, ",
    ts!("created"),
    ", ",
    ts!("updated"),
    "
     FROM unnest($1::text[], $2::int4[], $3::int8[], $4::int8[], $5::int8[], $6::text[], $7::int4[], $8::text[],
                 $9::int2[], $10::int8[], $11::int8[], $12::int8[], $13::int8[])
          AS u(order_id, n, event_id, owner_id, section_id, seat, version, status, rank, used, gate, created, updated)
     ON CONFLICT (order_id, n) DO UPDATE SET
        status = CASE WHEN EXCLUDED.status_rank > tickets.status_rank THEN EXCLUDED.status ELSE tickets.status END,
        updated_at = CASE WHEN EXCLUDED.status_rank > tickets.status_rank OR EXCLUDED.version > tickets.version
                          THEN GREATEST(tickets.updated_at, EXCLUDED.updated_at) ELSE tickets.updated_at END,
        status_rank = GREATEST(tickets.status_rank, EXCLUDED.status_rank),
        owner_id = CASE WHEN EXCLUDED.version > tickets.version THEN EXCLUDED.owner_id ELSE tickets.owner_id END,
        version = GREATEST(tickets.version, EXCLUDED.version),
        used_at = COALESCE(tickets.used_at, EXCLUDED.used_at),
        checked_in_by = COALESCE(tickets.checked_in_by, EXCLUDED.checked_in_by),
        created_at = LEAST(tickets.created_at, EXCLUDED.created_at)
     WHERE EXCLUDED.status_rank > tickets.status_rank
        OR EXCLUDED.version > tickets.version
        OR (tickets.used_at IS NULL AND EXCLUDED.used_at IS NOT NULL)
        OR EXCLUDED.created_at < tickets.created_at"
);

/// A check-in by an organiser or an admin, as an audit entry of the
/// event's (target `ticket:<public id>`, the checker the actor), once.
const AUDIT_CHECK_INS: &str = concat!(
    "INSERT INTO audit_log (at, actor_id, action, target, event_id, details)
     SELECT ",
    ts!("at"),
    ", actor, 'ticket.check_in', target, event,
            jsonb_build_object('role', role, 'owner_id', owner, 'section_id', section, 'seat', seat, 'version', version)
     FROM unnest($1::int8[], $2::text[], $3::int8[], $4::text[], $5::int8[], $6::int8[], $7::text[], $8::int4[], $9::int8[])
          AS u(actor, target, event, role, owner, section, seat, version, at)
     ON CONFLICT (target) WHERE action = 'ticket.check_in' DO NOTHING"
);

/// A transfer is recorded once: a replay of its entry inserts nothing.
const INSERT_TRANSFERS: &str = concat!(
    "INSERT INTO ticket_transfers (order_id, n, version, event_id, from_user, to_user, at)
     SELECT order_id, n, version, event_id, from_user, to_user, ",
    ts!("at"),
    "
     FROM unnest($1::text[], $2::int4[], $3::int4[], $4::int8[], $5::int8[], $6::int8[], $7::int8[])
          AS u(order_id, n, version, event_id, from_user, to_user, at)
     ON CONFLICT (order_id, n, version) DO NOTHING"
);

/// A listing's status only rises (it ends once, withdrawn or sold); the
/// sale's facts fill in once known.
const UPSERT_LISTINGS: &str = concat!(
    "INSERT INTO listings (id, event_id, order_id, n, seller_id, price_cents, status, status_rank, buyer_id, hold_id,
                           payment_id, sale_order_id, created_at, updated_at)
     SELECT id, event_id, order_id, n, seller_id, price_cents, status, rank, buyer, hold, payment, sale_order, ",
    ts!("created"),
    ", ",
    ts!("updated"),
    "
     FROM unnest($1::text[], $2::int8[], $3::text[], $4::int4[], $5::int8[], $6::int8[], $7::text[], $8::int2[],
                 $9::int8[], $10::text[], $11::text[], $12::text[], $13::int8[], $14::int8[])
          AS u(id, event_id, order_id, n, seller_id, price_cents, status, rank, buyer, hold, payment, sale_order,
               created, updated)
     ON CONFLICT (id) DO UPDATE SET
        status = CASE WHEN EXCLUDED.status_rank > listings.status_rank THEN EXCLUDED.status ELSE listings.status END,
        updated_at = CASE WHEN EXCLUDED.status_rank > listings.status_rank THEN EXCLUDED.updated_at ELSE listings.updated_at END,
        status_rank = GREATEST(listings.status_rank, EXCLUDED.status_rank),
        buyer_id = COALESCE(listings.buyer_id, EXCLUDED.buyer_id),
        hold_id = COALESCE(listings.hold_id, EXCLUDED.hold_id),
        payment_id = COALESCE(listings.payment_id, EXCLUDED.payment_id),
        sale_order_id = COALESCE(listings.sale_order_id, EXCLUDED.sale_order_id),
        created_at = LEAST(listings.created_at, EXCLUDED.created_at)
     WHERE EXCLUDED.status_rank > listings.status_rank
        OR (listings.buyer_id IS NULL AND EXCLUDED.buyer_id IS NOT NULL)
        OR EXCLUDED.created_at < listings.created_at"
);

/// One payout per sold listing; a replay writes nothing.
const INSERT_PAYOUTS: &str = concat!(
    "INSERT INTO payouts (listing_id, event_id, seller_id, amount_cents, payment_id, created_at)
     SELECT listing, event_id, seller_id, amount_cents, payment, ",
    ts!("at"),
    "
     FROM unnest($1::text[], $2::int8[], $3::int8[], $4::int8[], $5::text[], $6::int8[])
          AS u(listing, event_id, seller_id, amount_cents, payment, at)
     ON CONFLICT (listing_id) DO NOTHING"
);
