//! Sustained persister throughput: fills one synthetic event's stream with
//! N hold/order/payment messages, runs a persister over it, and prints
//! messages/s and rows/s into Postgres once the group has acknowledged
//! everything.
//!
//! ```text
//! STAMPEDE_DATABASE_URL=postgres://… STAMPEDE_REDIS_URL=redis://… \
//!   cargo run --release -p stampede-persister --example persister_bench -- --events 100000 --batch 500
//! ```
//!
//! With `STAMPEDE_DATABASE_URL` it writes to that (migrated) database under
//! a fresh key prefix and a random event id, and deletes its keys and rows
//! afterwards (`--keep` keeps the rows). Without it, it takes a scratch
//! database and prefix from the test servers (`STAMPEDE_TEST_DATABASE_URL`,
//! `STAMPEDE_TEST_REDIS_URL`), as the tests do. The last line is
//! machine-readable: `persister_bench messages=… rows=… seconds=…
//! messages_per_second=… rows_per_second=…`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use stampede_common::config::{Config, Env};
use stampede_common::db::Migration;
use stampede_common::ids::random_hex;
use stampede_common::store;
use stampede_inventory::EventKeys;
use stampede_inventory::keys::events_set;
use stampede_inventory::streams::{self, dead_letter_key};
use stampede_persister::{GROUP, PersisterConfig, PersisterWorker};
use tokio::sync::watch;

struct Args {
    events: usize,
    batch: usize,
    keep: bool,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args { events: 100_000, batch: 500, keep: false };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--events" => a.events = it.next().context("--events N")?.parse().context("--events N")?,
            "--batch" => a.batch = it.next().context("--batch N")?.parse().context("--batch N")?,
            "--keep" => a.keep = true,
            other => bail!("unknown argument {other:?}; use --events N --batch N [--keep]"),
        }
    }
    Ok(a)
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The deployment's stores with a fresh prefix, or scratch test stores.
async fn config(batch: usize) -> anyhow::Result<(Config, PersisterConfig)> {
    let config = match (var("STAMPEDE_DATABASE_URL"), var("STAMPEDE_REDIS_URL")) {
        (Some(db_url), Some(redis_url)) => {
            let prefix = format!("bench{}", random_hex(4));
            let env = Env::from_pairs([
                ("STAMPEDE_DATABASE_URL", db_url.as_str()),
                ("STAMPEDE_REDIS_URL", redis_url.as_str()),
                ("STAMPEDE_REDIS_PREFIX", prefix.as_str()),
                ("STAMPEDE_JWT_SECRET", "persister-bench-persister-bench-secret"),
            ]);
            Config::from_env(&env)?
        }
        _ if var("STAMPEDE_TEST_DATABASE_URL").is_some() && var("STAMPEDE_TEST_REDIS_URL").is_some() => {
            stampede_common::testkit::test_config(&migrations()).await
        }
        _ => bail!("set STAMPEDE_DATABASE_URL and STAMPEDE_REDIS_URL (or the STAMPEDE_TEST_ pair)"),
    };
    let mut persister = PersisterConfig::from_env(&config.env)?;
    persister.reader.batch = batch;
    Ok((config, persister))
}

/// The tables the worker writes and reads (and those their migrations
/// alter: the catalog's migration 9 widens auth's users), in version order.
fn migrations() -> Vec<Migration> {
    let mut all = [stampede_auth::MIGRATIONS, stampede_catalog::MIGRATIONS, stampede_persister::MIGRATIONS].concat();
    all.sort_by_key(|m| m.version);
    all
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = args()?;
    stampede_common::telemetry::install_metrics();
    let (config, persister) = config(args.batch).await?;
    let prefix = config.redis_prefix.clone();
    let db = stampede_common::db::pool(&config.database_url, 4)?;
    stampede_common::db::migrate(&db, &migrations()).await?;
    let redis = store::connect(&config.redis_url).await?;
    let event = 1_000_000_000 + i64::from(u32::from_str_radix(&random_hex(3), 16)?);
    let keys = EventKeys::new(&prefix, event);

    let fill = Instant::now();
    fill_stream(&redis, &keys, args.events).await?;
    println!("filled {} messages in {:.2} s", args.events, fill.elapsed().as_secs_f64());
    let mut conn = redis.clone();
    redis::cmd("SADD").arg(events_set(&prefix)).arg(event).query_async::<()>(&mut conn).await?;

    let worker = Arc::new(PersisterWorker::build(&config, &persister, db.clone(), redis.clone()).with_consumer("bench"));
    let (stop, rx) = watch::channel(false);
    let started = Instant::now();
    let task = tokio::spawn(worker.clone().run(rx));
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let info = streams::stream_info(&mut conn, &keys.stream()).await?;
        if let Some(g) = info.as_ref().and_then(|i| i.group(GROUP))
            && g.pending == 0
            && g.oldest_unacked.is_none()
        {
            break;
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("not drained after 10 minutes: {info:?}");
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let _ = stop.send(true);
    let _ = task.await;
    let stats = worker.stats();

    redis::cmd("DEL").arg(keys.stream()).arg(dead_letter_key(&prefix, event)).query_async::<()>(&mut conn).await?;
    redis::cmd("DEL").arg(events_set(&prefix)).query_async::<()>(&mut conn).await?;
    if !args.keep {
        let client = db.get().await?;
        for table in ["order_seats", "payments", "orders", "holds"] {
            client.execute(&format!("DELETE FROM {table} WHERE event_id = $1"), &[&event]).await?;
        }
    }
    // Time spent in Postgres writes, summed over the worker's concurrent lanes: it may
    // exceed the wall time.
    let written: f64 = stampede_common::telemetry::render()
        .lines()
        .filter(|l| l.starts_with("persister_write_duration_seconds_sum"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    println!(
        "persister_bench messages={} rows={} batches={} seconds={seconds:.3} write_seconds={written:.3} messages_per_second={:.0} rows_per_second={:.0}",
        stats.messages,
        stats.rows,
        stats.batches,
        stats.messages as f64 / seconds,
        stats.rows as f64 / seconds
    );
    Ok(())
}

/// Appends `n` messages in cycles of five: a hold created and confirmed
/// (two seats) with its payment, and a hold created and expired.
async fn fill_stream(redis: &store::Redis, keys: &EventKeys, n: usize) -> anyhow::Result<()> {
    let mut conn = redis.clone();
    let key = keys.stream();
    let mut pipe = redis::pipe();
    let mut queued = 0;
    let now = stampede_common::clock::now_ms().to_string();
    let exp = (stampede_common::clock::now_ms() + 600_000).to_string();
    for i in 0..n {
        let cycle = i / 5;
        let (held, lapsed) = (format!("c{cycle}"), format!("x{cycle}"));
        let seats = format!("1:{}:{},1:{}:{}", cycle / 500 + 1, (cycle % 500) * 2 + 1, cycle / 500 + 1, (cycle % 500) * 2 + 2);
        let user = (cycle % 1000 + 1).to_string();
        let (order, payment) = (format!("o{cycle}"), format!("p{cycle}"));
        let fields: Vec<(&str, &str)> = match i % 5 {
            0 => vec![("type", "hold.created"), ("hold", &held), ("user", &user), ("seats", &seats), ("section", ""), ("qty", "2"), ("amount", "10000"), ("exp", &exp), ("at", &now)],
            1 => vec![
                ("type", "order.confirmed"),
                ("order", &order),
                ("hold", &held),
                ("user", &user),
                ("seats", &seats),
                ("section", ""),
                ("qty", "2"),
                ("amount", "10000"),
                ("payment", &payment),
                ("at", &now),
            ],
            2 => vec![("type", "payment.captured"), ("payment", &payment), ("order", &order), ("hold", &held), ("user", &user), ("amount", "10000"), ("charge", "ch"), ("at", &now)],
            3 => vec![("type", "hold.created"), ("hold", &lapsed), ("user", &user), ("seats", ""), ("section", "2"), ("qty", "1"), ("amount", "2000"), ("exp", &exp), ("at", &now)],
            _ => vec![("type", "hold.expired"), ("hold", &lapsed), ("user", &user), ("seats", ""), ("section", "2"), ("qty", "1"), ("amount", "2000"), ("exp", &exp), ("at", &now)],
        };
        pipe.xadd(&key, "*", &fields).ignore();
        queued += 1;
        if queued == 1000 {
            pipe.query_async::<()>(&mut conn).await?;
            pipe = redis::pipe();
            queued = 0;
        }
    }
    if queued > 0 {
        pipe.query_async::<()>(&mut conn).await?;
    }
    Ok(())
}
