//! The notifier: one confirmation e-mail per order, also when two
//! notifiers run at once and when every message is delivered again — by a
//! rewound group, and by a claim from a notifier that died before acking.
//! The mail directory cannot tell (a second send of an order replaces
//! nothing), so the test counts sends in the notifier's metrics and first
//! proves each redelivery happened.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use stampede_checkout::NotifierWorker;
use stampede_common::{store, telemetry};

#[path = "support/orders.rs"]
#[allow(dead_code)]
mod orders;
use orders::{Setup, setup};

#[tokio::test]
async fn one_email_per_order_under_redelivery_and_two_workers() {
    let Setup { config, settings, db, mut conn, keys, orders, .. } = setup(3).await;
    let shared = &config;
    let run = |settings: stampede_checkout::CheckoutConfig, db: deadpool_postgres::Pool, redis: store::Redis| async move {
        let worker = Arc::new(NotifierWorker::build(shared, &settings, db, redis));
        let (tx, rx) = tokio::sync::watch::channel(false);
        (tokio::spawn(worker.run(rx)), tx)
    };
    let mail_dir = std::path::PathBuf::from(&settings.mail.dir);
    let count = || std::fs::read_dir(&mail_dir).map(|d| d.filter_map(Result::ok).filter(|e| e.file_name().to_string_lossy().ends_with(".eml")).count()).unwrap_or(0);
    let n = orders.len() as u64;

    // Two notifiers at once: one e-mail per order.
    let (a, stop_a) = run(settings.clone(), db.clone(), conn.clone()).await;
    let (b, stop_b) = run(settings.clone(), db.clone(), conn.clone()).await;
    let sends = wait_for_sends("every order's e-mail", |s| s.sent >= n).await;
    assert_eq!(sends.sent, n, "one e-mail per order");
    assert_eq!(count(), orders.len());

    // Every message delivered again, to running notifiers: rewind the group.
    let _: () = redis::cmd("XGROUP").arg("SETID").arg(keys.stream()).arg("notifier").arg("0").query_async(&mut conn).await.expect("setid");
    // (Waits until each order was seen again — or sent again, which fails.)
    let rewound = wait_for_sends("the rewound messages", |s| s.duplicates >= sends.duplicates + n || s.sent > n).await;
    assert_eq!(rewound.sent, n, "redelivery sends nothing twice");
    let _ = (stop_a.send(true), stop_b.send(true));
    let _ = (a.await, b.await);

    // A notifier that read every message and died before acking any: the
    // next notifier claims them once idle (the claim counts a delivery).
    let _: () = redis::cmd("XGROUP").arg("SETID").arg(keys.stream()).arg("notifier").arg("0").query_async(&mut conn).await.expect("setid");
    let read: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP").arg("notifier").arg("crashed")
        .arg("COUNT").arg(1000)
        .arg("STREAMS").arg(keys.stream()).arg(">")
        .query_async(&mut conn)
        .await
        .expect("read without acking");
    assert_ne!(read, redis::Value::Nil);
    let mut claiming = settings.clone();
    claiming.reader.claim_idle = Duration::from_millis(200);
    let (c, stop_c) = run(claiming, db.clone(), conn.clone()).await;
    let claimed = wait_for_sends("the claimed messages", |s| s.duplicates >= rewound.duplicates + n || s.sent > n).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while pending(&mut conn, &keys.stream()).await > 0 {
        assert!(Instant::now() < deadline, "the claimed messages are never acknowledged");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop_c.send(true);
    let _ = c.await;
    assert_eq!(claimed.sent, n, "a claimed redelivery sends nothing twice");
    assert_eq!(count(), orders.len());
    let claims: redis::streams::StreamPendingCountReply = conn.xpending_count(keys.stream(), "notifier", "-", "+", 10).await.expect("xpending");
    assert!(claims.ids.is_empty(), "everything acknowledged: {:?}", claims.ids);
    for order in &orders {
        let text = std::fs::read_to_string(mail_dir.join(format!("{order}.eml"))).expect("e-mail for each order");
        assert!(text.contains("Night &lt;Show&gt;") && text.contains("Night <Show>"));
        assert!(text.contains("Total: 42.00"));
        assert!(text.contains("@example.com"));
    }
}

/// The notifier's counters in this process's metrics.
#[derive(Clone, Copy, Debug)]
struct Sends {
    /// E-mails written to the sink (`emails_sent_total`).
    sent: u64,
    /// Redelivered orders found already sent (`emails_duplicate_total`).
    duplicates: u64,
}

fn sends() -> Sends {
    let text = telemetry::render();
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
            .map_or(0, |v| v.trim().parse::<f64>().expect("a counter's value") as u64)
    };
    Sends { sent: value("emails_sent_total"), duplicates: value("emails_duplicate_total") }
}

/// Polls the counters until `done` (ten seconds at most).
async fn wait_for_sends(what: &str, done: impl Fn(&Sends) -> bool) -> Sends {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = sends();
        if done(&now) {
            return now;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}: {now:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How many entries of the notifier's group are delivered and not acked.
async fn pending(conn: &mut store::Redis, stream: &str) -> u64 {
    let summary: redis::streams::StreamPendingReply = conn.xpending(stream, "notifier").await.expect("xpending");
    summary.count() as u64
}
