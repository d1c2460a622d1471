//! The notifier (`stampede serve notifier`): sends the confirmation e-mail
//! for every `order.confirmed` on the event streams, and for every
//! `ticket.transferred` or `listing.sold` one to each side (the giver or
//! seller and the recipient or buyer; neither is told the other's address
//! on a resale), through its own consumer group. Each message is plain
//! text and HTML and has a name after what it announces (`<order>`,
//! `transfer-<ticket>-v<ver>-from`, …).
//!
//! Delivery is [`stampede_common::mail`]'s: over SMTP when
//! `STAMPEDE_SMTP_URL` is set, else into the mail directory. Each name is
//! sent once however often its entry is delivered (a crash before the ack, a
//! claim by another notifier): the directory publishes with an atomic hard
//! link that fails if the name exists; over SMTP a Redis marker per name
//! (`<p>:mail:<name>`) is taken with `SET NX` as a short lease before
//! sending and turned into `sent` after the relay's 250, so a second
//! notifier neither sends it again nor drops it. (SMTP itself cannot do
//! better than that: a crash between the 250 and the marker sends the
//! message again once the lease lapses, with the same `Message-ID`.)
//! A failed send is retried a few times with jittered waits, then the entry
//! is left pending and retried through the group; one the relay refuses
//! for good (5xx), or one failing past `max_deliveries`, goes to the
//! event's dead-letter stream and counts in `emails_dead_total`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use deadpool_postgres::Pool;
use metrics::{Unit, counter, describe_counter};
use stampede_common::Config;
use stampede_common::backoff::Backoff;
use stampede_common::clock::rfc3339;
use stampede_common::http;
use stampede_common::mail::{Delivered, Mail, MailError, Mailer, html_escape, money};
use stampede_common::store::Redis;
use stampede_inventory::{HoldId, TicketId};
use stampede_inventory::streams::{Entry, GroupReader, ReaderOptions, consumer_name};
use tokio::sync::watch;

use crate::CheckoutConfig;

/// The consumer group the notifier reads with.
pub const GROUP: &str = "notifier";

pub struct NotifierWorker {
    db: Pool,
    redis: Redis,
    redis_url: String,
    prefix: String,
    options: ReaderOptions,
    mailer: Mailer,
}

/// What the e-mail says about the event.
#[derive(Clone)]
struct EventInfo {
    name: String,
    venue: String,
    starts_at: String,
}

impl NotifierWorker {
    pub fn build(config: &Config, checkout: &CheckoutConfig, db: Pool, redis: Redis) -> Self {
        describe_counter!("emails_duplicate_total", Unit::Count, "Redelivered entries whose e-mail had already been sent (not sent again).");
        counter!("emails_duplicate_total").increment(0);
        let mut options = checkout.reader.clone();
        options.batch = options.batch.min(100);
        Self {
            db,
            redis,
            redis_url: config.redis_url.clone(),
            prefix: config.redis_prefix.clone(),
            options,
            mailer: Mailer::new(&checkout.mail),
        }
    }

    /// Runs until `stop` turns true. Failures back off and retry; an entry
    /// is acknowledged only once its e-mail is in the sink.
    pub async fn run(self: Arc<Self>, stop: watch::Receiver<bool>) {
        let mut stopped = std::pin::pin!(http::stopped(stop));
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let mut events: HashMap<i64, EventInfo> = HashMap::new();
        let mut reader = loop {
            match GroupReader::new(&self.redis_url, self.redis.clone(), &self.prefix, GROUP, &consumer_name(), self.options.clone()).await {
                Ok(r) => break r,
                Err(e) => {
                    tracing::warn!(error = %e, "notifier cannot start its reader; retrying");
                    tokio::select! { _ = tokio::time::sleep(backoff.next_delay()) => {}, _ = &mut stopped => return }
                }
            }
        };
        loop {
            let batch = tokio::select! {
                b = reader.next_batch() => b,
                _ = &mut stopped => return,
            };
            let result = match batch {
                Ok(entries) => self.deliver(&reader, &entries, &mut events).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => backoff.reset(),
                Err(e) => {
                    tracing::warn!(error = %e, "notifier batch failed; retrying");
                    tokio::select! { _ = tokio::time::sleep(backoff.next_delay()) => {}, _ = &mut stopped => return }
                }
            }
        }
    }

    async fn deliver(&self, reader: &GroupReader, entries: &[Entry], events: &mut HashMap<i64, EventInfo>) -> anyhow::Result<()> {
        let mut done = Vec::with_capacity(entries.len());
        for entry in entries {
            let sent = match entry.kind() {
                "order.confirmed" => Some(self.send(entry, events).await),
                "ticket.transferred" | "listing.sold" => Some(self.send_transfer(entry, events).await),
                _ => None,
            };
            if let Some(sent) = sent {
                match sent {
                    Ok(()) => {}
                    Err(e) if entry.deliveries >= self.options.max_deliveries || is_permanent(&e) => {
                        reader.dead_letter(entry, &format!("{e:#}")).await?;
                        counter!("emails_dead_total").increment(1);
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            done.push(entry.clone());
        }
        reader.ack(&done).await
    }

    /// Sends the confirmation of one order, unless it was sent before.
    async fn send(&self, entry: &Entry, events: &mut HashMap<i64, EventInfo>) -> anyhow::Result<()> {
        let field = |name: &str| entry.field(name).with_context(|| format!("order.confirmed without {name}"));
        let order = HoldId { event: entry.event, token: field("order")?.to_owned() }.public();
        if self.already_sent(&order).await? {
            counter!("emails_duplicate_total").increment(1);
            return Ok(());
        }
        let info = self.cached_event(entry.event, events).await?;
        let user: i64 = field("user")?.parse().context("order.confirmed with a bad user")?;
        let client = self.db.get().await.context("postgres")?;
        let email: String = client
            .query_opt("SELECT email FROM users WHERE id = $1", &[&user])
            .await?
            .map(|r| r.get(0))
            .with_context(|| format!("no user {user}"))?;
        drop(client);
        let seats: Vec<&str> = field("seats")?.split(',').filter(|s| !s.is_empty()).collect();
        let qty: i64 = field("qty")?.parse().unwrap_or(0);
        let amount: i64 = field("amount")?.parse().unwrap_or(0);
        let message = render(&email, &order, &info, &seats, qty, amount);
        if self.send_once(&order, &message).await? {
            tracing::info!(order = %order, to = %email, "confirmation e-mail sent");
        } else {
            counter!("emails_duplicate_total").increment(1);
        }
        Ok(())
    }

    /// The event's facts, cached per batch run.
    async fn cached_event(&self, event: i64, events: &mut HashMap<i64, EventInfo>) -> anyhow::Result<EventInfo> {
        if let Some(i) = events.get(&event) {
            return Ok(i.clone());
        }
        let i = self.event_info(event).await?;
        events.insert(event, i.clone());
        Ok(i)
    }

    /// Sends both e-mails of a ticket changing hands (`ticket.transferred`
    /// or `listing.sold`: to the giver or seller and to the recipient or
    /// buyer), each unless it was sent before.
    async fn send_transfer(&self, entry: &Entry, events: &mut HashMap<i64, EventInfo>) -> anyhow::Result<()> {
        let kind = entry.kind();
        let field = |name: &str| entry.field(name).with_context(|| format!("{kind} without {name}"));
        let (order, n) = field("ticket")?.rsplit_once('-').with_context(|| format!("{kind} with a bad ticket"))?;
        let ticket = TicketId { event: entry.event, order: order.to_owned(), n: n.parse().with_context(|| format!("{kind} with a bad ticket"))? }.public();
        let version = field("ver")?;
        let price: Option<i64> = match kind {
            "listing.sold" => Some(field("price")?.parse().context("listing.sold with a bad price")?),
            _ => None,
        };
        let name = if price.is_some() { "resale" } else { "transfer" };
        let names = [Side::Giver, Side::Recipient].map(|side| (side, format!("{name}-{ticket}-v{version}-{}", side.name())));
        let mut todo = Vec::with_capacity(2);
        for (side, name) in names {
            if self.already_sent(&name).await? {
                counter!("emails_duplicate_total").increment(1);
            } else {
                todo.push((side, name));
            }
        }
        if todo.is_empty() {
            return Ok(());
        }
        let info = self.cached_event(entry.event, events).await?;
        let from: i64 = field("from")?.parse().with_context(|| format!("{kind} with a bad from"))?;
        let to: i64 = field("user")?.parse().with_context(|| format!("{kind} with a bad user"))?;
        let client = self.db.get().await.context("postgres")?;
        let email = |user: i64| {
            let client = &client;
            async move {
                client
                    .query_opt("SELECT email FROM users WHERE id = $1", &[&user])
                    .await?
                    .map(|r| r.get::<_, String>(0))
                    .with_context(|| format!("no user {user}"))
            }
        };
        let (giver, recipient) = (email(from).await?, email(to).await?);
        drop(client);
        let seat = field("seat")?;
        let transfer = TransferMail { ticket: &ticket, seat, giver: &giver, recipient: &recipient, event: &info, price };
        for (side, mail_name) in todo {
            // The Message-ID names the version too: stable per message.
            let message = Mail { id: mail_name.clone(), ..render_transfer(side, &transfer) };
            if self.send_once(&mail_name, &message).await? {
                tracing::info!(ticket = %ticket, side = side.name(), kind = name, "ticket e-mail sent");
            } else {
                counter!("emails_duplicate_total").increment(1);
            }
        }
        Ok(())
    }

    async fn event_info(&self, event: i64) -> anyhow::Result<EventInfo> {
        let client = self.db.get().await.context("postgres")?;
        let row = client
            .query_opt("SELECT name, venue, starts_at FROM events WHERE id = $1", &[&event])
            .await?
            .with_context(|| format!("no event {event}"))?;
        let starts: std::time::SystemTime = row.get(2);
        Ok(EventInfo { name: row.get(0), venue: row.get(1), starts_at: rfc3339(time::OffsetDateTime::from(starts)) })
    }
}

/// Whether a delivery failed for good (the relay refused the message).
fn is_permanent(e: &anyhow::Error) -> bool {
    matches!(e.downcast_ref::<MailError>(), Some(MailError::Permanent(_)))
}

/// How long a notifier may hold a message's SMTP marker while sending it.
const SEND_LEASE_MS: u64 = 60_000;
/// How long a sent message's marker is kept (longer than any redelivery).
const SENT_MARKER_SECONDS: u64 = 30 * 86_400;

impl NotifierWorker {
    fn marker(&self, name: &str) -> String {
        format!("{}:mail:{name}", self.prefix)
    }

    /// Whether the message `name` was sent before.
    async fn already_sent(&self, name: &str) -> anyhow::Result<bool> {
        if !self.mailer.is_smtp() {
            return Ok(self.mailer.already_written(name));
        }
        let mut conn = self.redis.clone();
        let state: Option<String> = redis::cmd("GET").arg(self.marker(name)).query_async(&mut conn).await.context("reading a sent marker")?;
        Ok(state.as_deref() == Some("sent"))
    }

    /// Sends `mail` as `name` unless it was sent before; true if this call
    /// sent it. Over SMTP: takes the marker as a lease (`SET NX PX`), sends
    /// with a few retries, then marks it sent; on failure frees the lease
    /// for the entry's next delivery.
    async fn send_once(&self, name: &str, mail: &Mail) -> anyhow::Result<bool> {
        let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        if !self.mailer.is_smtp() {
            return Ok(self.mailer.deliver_with_retries(name, mail, 3, backoff).await? == Delivered::Sent);
        }
        let key = self.marker(name);
        let mut conn = self.redis.clone();
        let taken: Option<String> = redis::cmd("SET")
            .arg(&key)
            .arg("sending")
            .arg("NX")
            .arg("PX")
            .arg(SEND_LEASE_MS)
            .query_async(&mut conn)
            .await
            .context("taking a sent marker")?;
        if taken.is_none() {
            let state: Option<String> = redis::cmd("GET").arg(&key).query_async(&mut conn).await.context("reading a sent marker")?;
            if state.as_deref() == Some("sent") {
                return Ok(false);
            }
            anyhow::bail!("e-mail {name} is being sent by another notifier");
        }
        match self.mailer.deliver_with_retries(name, mail, 3, backoff).await {
            Ok(_) => {
                let _: () = redis::cmd("SET").arg(&key).arg("sent").arg("EX").arg(SENT_MARKER_SECONDS).query_async(&mut conn).await.context("marking an e-mail sent")?;
                Ok(true)
            }
            Err(e) => {
                let _: Result<(), _> = redis::cmd("DEL").arg(&key).query_async(&mut conn).await;
                Err(e.into())
            }
        }
    }
}

/// The confirmation: a multipart/alternative message, plain text and HTML.
fn render(to: &str, order: &str, event: &EventInfo, seats: &[&str], qty: i64, amount: i64) -> Mail {
    let places = if seats.is_empty() { format!("{qty} general admission") } else { seats.join(", ") };
    let text = format!(
        "Your order {order} is confirmed.\r\n\r\nEvent: {}\r\nVenue: {}\r\nStarts: {}\r\nSeats: {places}\r\nTotal: {}\r\n\r\nSee you there.\r\n",
        event.name,
        event.venue,
        event.starts_at,
        money(amount)
    );
    let html = format!(
        "<html><body><h1>Your order is confirmed</h1><p>Order <code>{}</code></p><table>\
         <tr><th>Event</th><td>{}</td></tr><tr><th>Venue</th><td>{}</td></tr><tr><th>Starts</th><td>{}</td></tr>\
         <tr><th>Seats</th><td>{}</td></tr><tr><th>Total</th><td>{}</td></tr></table></body></html>",
        html_escape(order),
        html_escape(&event.name),
        html_escape(&event.venue),
        html_escape(&event.starts_at),
        html_escape(&places),
        money(amount)
    );
    Mail {
        to: to.to_owned(),
        subject: format!("Your tickets for {}", event.name),
        text,
        html,
        id: order.to_owned(),
        headers: vec![("X-Stampede-Order", order.to_owned())],
    }
}

/// Which side of a transfer an e-mail goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Giver,
    Recipient,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Giver => "from",
            Side::Recipient => "to",
        }
    }
}

/// What both e-mails of a transfer say.
struct TransferMail<'a> {
    ticket: &'a str,
    /// `<section>:<row>:<n>`, empty for a general-admission place.
    seat: &'a str,
    giver: &'a str,
    recipient: &'a str,
    event: &'a EventInfo,
    /// A resale's price (the seller's payout); `None` for a transfer.
    price: Option<i64>,
}

/// One side's e-mail of a transfer: multipart/alternative, plain text and HTML.
fn render_transfer(side: Side, t: &TransferMail<'_>) -> Mail {
    let place = if t.seat.is_empty() { "general admission".to_owned() } else { format!("seat {}", t.seat) };
    let (to, subject, lead) = match (side, t.price) {
        (Side::Giver, Some(price)) => (
            t.giver,
            format!("Your ticket for {} sold on resale", t.event.name),
            format!(
                "Your ticket {} ({place}) sold on resale for {}. That amount is your payout. Its old code no longer works.",
                t.ticket,
                money(price)
            ),
        ),
        (Side::Recipient, Some(price)) => (
            t.recipient,
            format!("Your resale ticket for {}", t.event.name),
            format!("You bought ticket {} ({place}) on resale for {}. Find its code under My tickets.", t.ticket, money(price)),
        ),
        (Side::Giver, None) => (
            t.giver,
            format!("You sent a ticket for {}", t.event.name),
            format!("You transferred ticket {} ({place}) to {}. Its old code no longer works.", t.ticket, t.recipient),
        ),
        (Side::Recipient, None) => (
            t.recipient,
            format!("{} sent you a ticket for {}", t.giver, t.event.name),
            format!("{} transferred ticket {} ({place}) to you. Find its code under My tickets.", t.giver, t.ticket),
        ),
    };
    let text = format!(
        "{lead}\r\n\r\nEvent: {}\r\nVenue: {}\r\nStarts: {}\r\n\r\nSee you there.\r\n",
        t.event.name, t.event.venue, t.event.starts_at
    );
    let html = format!(
        "<html><body><h1>{}</h1><p>{}</p><table>\
         <tr><th>Event</th><td>{}</td></tr><tr><th>Venue</th><td>{}</td></tr><tr><th>Starts</th><td>{}</td></tr>\
         </table></body></html>",
        if t.price.is_some() { "Ticket resold" } else { "Ticket transferred" },
        html_escape(&lead),
        html_escape(&t.event.name),
        html_escape(&t.event.venue),
        html_escape(&t.event.starts_at),
    );
    Mail {
        to: to.to_owned(),
        subject,
        text,
        html,
        id: format!("{}-{}-{}", if t.price.is_some() { "resale" } else { "transfer" }, t.ticket, side.name()),
        headers: vec![("X-Stampede-Ticket", t.ticket.to_owned())],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FROM: &str = "Stampede <tickets@stampede.local>";

    #[test]
    fn renders_both_parts_and_escapes_html() {
        let info = EventInfo { name: "Rock <Night>".into(), venue: "Arena".into(), starts_at: "2027-01-01T20:00:00.000Z".into() };
        let m = render("a@b.c", "1-abc", &info, &["3:1:2", "3:1:3"], 2, 12_050).format(FROM);
        assert!(m.contains("To: a@b.c\r\n"));
        assert!(m.contains("Seats: 3:1:2, 3:1:3"));
        assert!(m.contains("Total: 120.50"));
        assert!(m.contains("Rock &lt;Night&gt;"));
        assert!(m.contains("text/plain") && m.contains("text/html"));
    }

    #[test]
    fn renders_each_side_of_a_transfer() {
        let info = EventInfo { name: "Jazz & Co".into(), venue: "Club".into(), starts_at: "2027-01-01T20:00:00.000Z".into() };
        let t = TransferMail { ticket: "1-abc-2", seat: "3:1:2", giver: "ann@x.y", recipient: "bob@x.y", event: &info, price: None };
        let from = render_transfer(Side::Giver, &t).format(FROM);
        assert!(from.contains("To: ann@x.y\r\n") && from.contains("to bob@x.y") && from.contains("seat 3:1:2"));
        assert!(from.contains("Jazz &amp; Co") && from.contains("X-Stampede-Ticket: 1-abc-2"));
        let to = render_transfer(Side::Recipient, &TransferMail { seat: "", ..t }).format(FROM);
        assert!(to.contains("To: bob@x.y\r\n") && to.contains("Subject: ann@x.y sent you a ticket") && to.contains("general admission"));
    }

    #[test]
    fn renders_each_side_of_a_resale() {
        let info = EventInfo { name: "Jazz".into(), venue: "Club".into(), starts_at: "2027-01-01T20:00:00.000Z".into() };
        let t = TransferMail { ticket: "1-abc-2", seat: "3:1:2", giver: "ann@x.y", recipient: "bob@x.y", event: &info, price: Some(4050) };
        let seller = render_transfer(Side::Giver, &t).format(FROM);
        assert!(seller.contains("To: ann@x.y\r\n") && seller.contains("sold on resale for 40.50") && seller.contains("Ticket resold"));
        assert!(!seller.contains("bob@x.y"), "the seller is not told who bought it");
        let buyer = render_transfer(Side::Recipient, &t).format(FROM);
        assert!(buyer.contains("To: bob@x.y\r\n") && buyer.contains("bought ticket 1-abc-2") && !buyer.contains("ann@x.y"));
    }
}
