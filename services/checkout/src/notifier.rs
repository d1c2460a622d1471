//! The notifier (`stampede serve notifier`): sends the confirmation e-mail
//! for every `order.confirmed` on the event streams, through its own
//! consumer group. The sink is a mail directory (one RFC 5322 message per
//! order, plain text and HTML); each message is published with an atomic
//! hard link named after the order, so a message delivered twice — a crash
//! before the ack, a claim by another notifier — still sends exactly one
//! e-mail.

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
use stampede_inventory::HoldId;
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
        describe_counter!("emails_sent_total", Unit::Count, "Order confirmation e-mails written to the mail sink.");
        describe_counter!("emails_duplicate_total", Unit::Count, "Redelivered orders whose e-mail had already been sent (not sent again).");
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
            if entry.kind() == "order.confirmed" {
                match self.send(entry, events).await {
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
        let info = match events.get(&entry.event) {
            Some(i) => i.clone(),
            None => {
                let i = self.event_info(entry.event).await?;
                events.insert(entry.event, i.clone());
                i
            }
        };
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
