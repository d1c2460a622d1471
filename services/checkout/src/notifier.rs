//! The notifier (`stampede serve notifier`): sends the confirmation e-mail
//! for every `order.confirmed` on the event streams, and for every
//! `ticket.transferred` or `listing.sold` one to each side (the giver or
//! seller and the recipient or buyer; neither is told the other's address
//! on a resale),
//! through its own consumer group. The sink is a mail directory (one RFC
//! 5322 message per order or per side of a transfer, plain text and HTML);
//! each message is published with an atomic hard link named after what it
//! announces, so a message delivered twice — a crash before the ack, a
//! claim by another notifier — still sends exactly one e-mail.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use deadpool_postgres::Pool;
use metrics::{Unit, counter, describe_counter};
use stampede_common::Config;
use stampede_common::backoff::Backoff;
use stampede_common::clock::rfc3339;
use stampede_common::http;
use stampede_common::ids::random_hex;
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
    mail_dir: PathBuf,
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
        describe_counter!("emails_sent_total", Unit::Count, "E-mails (order confirmations, both sides of a transfer) written to the mail sink.");
        describe_counter!("emails_duplicate_total", Unit::Count, "Redelivered entries whose e-mail had already been sent (not sent again).");
        let mut options = checkout.reader.clone();
        options.batch = options.batch.min(100);
        Self {
            db,
            redis,
            redis_url: config.redis_url.clone(),
            prefix: config.redis_prefix.clone(),
            options,
            mail_dir: PathBuf::from(&checkout.mail_dir),
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
                    Err(e) if entry.deliveries >= self.options.max_deliveries => {
                        reader.dead_letter(entry, &format!("{e:#}")).await?;
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            done.push(entry.clone());
        }
        reader.ack(&done).await
    }

    /// Writes the confirmation of one order, unless it was written before.
    async fn send(&self, entry: &Entry, events: &mut HashMap<i64, EventInfo>) -> anyhow::Result<()> {
        let field = |name: &str| entry.field(name).with_context(|| format!("order.confirmed without {name}"));
        let order = HoldId { event: entry.event, token: field("order")?.to_owned() }.public();
        let path = self.mail_dir.join(format!("{order}.eml"));
        if path.exists() {
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
        if publish(&self.mail_dir, &path, &message).await? {
            counter!("emails_sent_total").increment(1);
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

    /// Writes both e-mails of a ticket changing hands (`ticket.transferred`
    /// or `listing.sold`: to the giver or seller and to the recipient or
    /// buyer), each unless it was written before.
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
        let paths = [Side::Giver, Side::Recipient].map(|side| (side, self.mail_dir.join(format!("{name}-{ticket}-v{version}-{}.eml", side.name()))));
        if paths.iter().all(|(_, p)| p.exists()) {
            counter!("emails_duplicate_total").increment(2);
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
        for (side, path) in paths {
            if path.exists() {
                counter!("emails_duplicate_total").increment(1);
                continue;
            }
            let message = render_transfer(side, &transfer);
            if publish(&self.mail_dir, &path, &message).await? {
                counter!("emails_sent_total").increment(1);
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

/// Writes `message` to a temporary file, then links it to `path`: the link
/// fails if `path` exists, so one order can never get two e-mails, and a
/// reader never sees half a message. True if this call published it.
async fn publish(dir: &Path, path: &Path, message: &str) -> anyhow::Result<bool> {
    tokio::fs::create_dir_all(dir).await.with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!(".tmp-{}", random_hex(8)));
    tokio::fs::write(&tmp, message).await.with_context(|| format!("writing {}", tmp.display()))?;
    let linked = tokio::fs::hard_link(&tmp, path).await;
    let _ = tokio::fs::remove_file(&tmp).await;
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e).with_context(|| format!("publishing {}", path.display())),
    }
}

fn money(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The confirmation: a multipart/alternative message, plain text and HTML.
fn render(to: &str, order: &str, event: &EventInfo, seats: &[&str], qty: i64, amount: i64) -> String {
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
    let boundary = format!("stampede-{}", random_hex(8));
    format!(
        "From: Stampede <tickets@stampede.local>\r\nTo: {to}\r\nSubject: Your tickets for {}\r\nMessage-ID: <{order}@stampede.local>\r\n\
         X-Stampede-Order: {order}\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"{boundary}\"\r\n\r\n\
         --{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n\
         --{boundary}\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n--{boundary}--\r\n",
        event.name.replace(['\r', '\n'], " ")
    )
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
fn render_transfer(side: Side, t: &TransferMail<'_>) -> String {
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
    let boundary = format!("stampede-{}", random_hex(8));
    let id = format!("{}-{}-{}", if t.price.is_some() { "resale" } else { "transfer" }, t.ticket, side.name());
    format!(
        "From: Stampede <tickets@stampede.local>\r\nTo: {to}\r\nSubject: {}\r\nMessage-ID: <{id}-{}@stampede.local>\r\n\
         X-Stampede-Ticket: {}\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"{boundary}\"\r\n\r\n\
         --{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n\
         --{boundary}\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n--{boundary}--\r\n",
        subject.replace(['\r', '\n'], " "),
        random_hex(4),
        t.ticket,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_both_parts_and_escapes_html() {
        let info = EventInfo { name: "Rock <Night>".into(), venue: "Arena".into(), starts_at: "2027-01-01T20:00:00.000Z".into() };
        let m = render("a@b.c", "1-abc", &info, &["3:1:2", "3:1:3"], 2, 12_050);
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
        let from = render_transfer(Side::Giver, &t);
        assert!(from.contains("To: ann@x.y\r\n") && from.contains("to bob@x.y") && from.contains("seat 3:1:2"));
        assert!(from.contains("Jazz &amp; Co") && from.contains("X-Stampede-Ticket: 1-abc-2"));
        let to = render_transfer(Side::Recipient, &TransferMail { seat: "", ..t });
        assert!(to.contains("To: bob@x.y\r\n") && to.contains("Subject: ann@x.y sent you a ticket") && to.contains("general admission"));
    }

    #[test]
    fn renders_each_side_of_a_resale() {
        let info = EventInfo { name: "Jazz".into(), venue: "Club".into(), starts_at: "2027-01-01T20:00:00.000Z".into() };
        let t = TransferMail { ticket: "1-abc-2", seat: "3:1:2", giver: "ann@x.y", recipient: "bob@x.y", event: &info, price: Some(4050) };
        let seller = render_transfer(Side::Giver, &t);
        assert!(seller.contains("To: ann@x.y\r\n") && seller.contains("sold on resale for 40.50") && seller.contains("Ticket resold"));
        assert!(!seller.contains("bob@x.y"), "the seller is not told who bought it");
        let buyer = render_transfer(Side::Recipient, &t);
        assert!(buyer.contains("To: bob@x.y\r\n") && buyer.contains("bought ticket 1-abc-2") && !buyer.contains("ann@x.y"));
    }

    #[tokio::test]
    async fn publishing_twice_writes_once() {
        let dir = std::env::temp_dir().join(format!("stampede-mail-{}", random_hex(4)));
        let path = dir.join("1-x.eml");
        assert!(publish(&dir, &path, "first").await.expect("first"));
        assert!(!publish(&dir, &path, "second").await.expect("second"));
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "first");
        assert_eq!(std::fs::read_dir(&dir).expect("dir").count(), 1, "no temporary files left");
    }
}
