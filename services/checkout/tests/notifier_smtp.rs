//! The notifier over SMTP, against a real SMTP server on a loopback socket
//! (`stampede_common::smtp_sink`): one message per order with two
//! notifiers and a rewound group; a relay failing for a while still gets
//! the message (retried); a relay refusing it for good dead-letters the
//! entry. One test, since it reads this process's metrics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use stampede_checkout::NotifierWorker;
use stampede_common::smtp_sink::SmtpSink;
use stampede_common::telemetry;
use stampede_inventory::streams::dead_letter_key;
use stampede_inventory::{Scripts, SeatRef};

#[path = "support/orders.rs"]
mod orders;
use orders::{Setup, buy, setup};

fn counter(name: &str) -> u64 {
    telemetry::render()
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .map_or(0, |v| v.trim().parse::<f64>().expect("a counter's value") as u64)
}

async fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !done() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn header<'a>(data: &'a str, name: &str) -> Option<&'a str> {
    data.lines().find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(": ")))
}

#[tokio::test]
async fn the_notifier_sends_each_order_once_over_smtp_retries_and_dead_letters() {
    let Setup { config, mut settings, db, mut conn, keys, event, orders } = setup(2).await;
    let sink = SmtpSink::start().await;
    settings.mail.smtp = Some(("127.0.0.1".to_owned(), sink.addr.port()));
    let mail_dir = std::path::PathBuf::from(&settings.mail.dir);
    let run = || {
        let worker = Arc::new(NotifierWorker::build(&config, &settings, db.clone(), conn.clone()));
        let (tx, rx) = tokio::sync::watch::channel(false);
        (tokio::spawn(worker.run(rx)), tx)
    };
    let (a, stop_a) = run();
    let (b, stop_b) = run();

    // Two notifiers: one message per order, received by the SMTP server.
    let n = orders.len();
    let got = sink.wait_for(n).await;
    let mut ids: Vec<&str> = got.iter().filter_map(|m| header(&m.data, "X-Stampede-Order")).collect();
    ids.sort_unstable();
    let mut want: Vec<&str> = orders.iter().map(String::as_str).collect();
    want.sort_unstable();
    assert_eq!(ids, want, "each order's confirmation, once");
    for m in &got {
        assert_eq!(m.from, "tickets@stampede.local");
        assert!(m.to[0].ends_with("@example.com") && m.data.contains(&format!("To: {}\r\n", m.to[0])));
        assert!(m.data.contains("Night &lt;Show&gt;") && m.data.contains("Subject: Your tickets for Night <Show>\r\n"));
        assert!(m.data.contains("Total: 42.00") && m.data.contains("text/html"));
    }
    assert!(!mail_dir.exists(), "over SMTP nothing is written to the mail directory");

    // Every entry delivered again: all found sent, none sent twice.
    let duplicates = counter("emails_duplicate_total");
    let _: () = redis::cmd("XGROUP").arg("SETID").arg(keys.stream()).arg("notifier").arg("0").query_async(&mut conn).await.expect("setid");
    // (Waits until each was seen again — or sent again, which fails below.)
    until("the rewound entries", || counter("emails_duplicate_total") >= duplicates + n as u64 || sink.messages().len() > n).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.messages().len(), n, "redelivery sends nothing twice");
    assert_eq!(counter("emails_sent_total"), n as u64);

    // A relay failing for a while: retried, then sent once.
    let scripts = Scripts::load();
    let fan = |i: i64| async move {
        let c = db.get().await.expect("pg");
        c.query_one("SELECT id FROM users WHERE email = $1", &[&format!("fan{i}@example.com")]).await.expect("fan").get::<_, i64>(0).to_string()
    };
    let user = fan(0).await;
    sink.fail_next(2);
    let late = buy(&mut conn, &scripts, &keys, event, &user, SeatRef { section: 1, row: 3, number: 1 }).await;
    let got = sink.wait_for(n + 1).await;
    assert_eq!(header(&got[n].data, "X-Stampede-Order"), Some(late.as_str()));
    assert!(counter("emails_retried_total") >= 2, "two refusals, two retries");

    // A relay refusing for good: the entry goes to the dead-letter stream.
    sink.refuse(true);
    let refused = buy(&mut conn, &scripts, &keys, event, &user, SeatRef { section: 1, row: 3, number: 2 }).await;
    until("the refused e-mail's dead letter", || counter("emails_dead_total") >= 1).await;
    let dead: redis::streams::StreamRangeReply = conn.xrange_all(dead_letter_key(&config.redis_prefix, event)).await.expect("xrange");
    assert_eq!(dead.ids.len(), 1);
    let entry = &dead.ids[0];
    assert_eq!(entry.get::<String>("group").as_deref(), Some("notifier"));
    assert!(entry.get::<String>("error").is_some_and(|e| e.contains("refused")), "{:?}", entry.map);
    assert!(refused.ends_with(&entry.get::<String>("order").expect("the order")));
    let marker: Option<String> = conn.get(format!("{}:mail:{refused}", config.redis_prefix)).await.expect("get");
    assert_eq!(marker, None, "a message never sent is not marked sent");
    assert_eq!(sink.messages().len(), n + 1);

    let _ = (stop_a.send(true), stop_b.send(true));
    let _ = (a.await, b.await);
}
