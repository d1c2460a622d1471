//! Every branch of every script, directly against a real Redis.

use redis::AsyncCommands;
use stampede_common::clock::now_ms;
use stampede_common::ids::random_hex;
use stampede_common::store::{self, Redis};
use stampede_common::testkit::test_config;
use stampede_inventory::*;

struct Fx {
    conn: Redis,
    scripts: Scripts,
    keys: EventKeys,
    prefix: String,
}

const SEATED: i64 = 11;
const GA: i64 = 12;

/// An event with a seated section (2 rows x 3 seats at 5000) and a GA
/// section (capacity 5 at 1500), on sale now, per-user limit 4.
async fn fixture(hold_ms: i64, sale_ms: i64) -> Fx {
    let cfg = test_config(&[]).await;
    let mut conn = store::connect(&cfg.redis_url).await.expect("redis");
    let scripts = Scripts::load();
    let keys = EventKeys::new(&cfg.redis_prefix, 7);
    let meta = EventMeta {
        sale_ms,
        hold_ms,
        limit: 4,
        waiting_room: false,
        verified_email_required: false,
        sections: vec![
            SectionLayout { id: SEATED, seated: Some((2, 3)), capacity: 6, price_cents: 5000 },
            SectionLayout { id: GA, seated: None, capacity: 5, price_cents: 1500 },
        ],
    };
    assert!(publish(&mut conn, &scripts, &cfg.redis_prefix, &keys, &meta).await.expect("publish"));
    Fx { conn, scripts, keys, prefix: cfg.redis_prefix }
}

fn seat(row: u32, number: u32) -> SeatRef {
    SeatRef { section: SEATED, row, number }
}

impl Fx {
    /// Waits until `hold` has lapsed — with `bucket_end`, until its deadline
    /// bucket has ended too — by the clock the scripts read (Redis's, on
    /// this host): the deadline is the one in the hold's record, so the wait
    /// is as long as it must be, never a guess.
    async fn wait_lapsed(&mut self, hold: &str, bucket_end: bool) {
        let rec = read_hold(&mut self.conn, &self.keys, hold).await.expect("read").expect("exists");
        let bucket = stampede_inventory::keys::TIMER_BUCKET_MS;
        let until = if bucket_end { (rec.expires_ms + bucket - 1) / bucket * bucket } else { rec.expires_ms };
        while now_ms() <= until {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
    async fn hold(&mut self, user: &str, seats: &[SeatRef]) -> (String, HoldOutcome) {
        let id = HoldId::generate(7).token;
        let req = HoldRequest { user, hold: &id, idempotency: None, queue_pass: false, email_verified: false };
        let out = hold_seats(&mut self.conn, &self.scripts, &self.keys, &req, seats).await.expect("hold");
        (id, out)
    }
    async fn hold_ga(&mut self, user: &str, qty: i64) -> (String, HoldOutcome) {
        let id = HoldId::generate(7).token;
        let req = HoldRequest { user, hold: &id, idempotency: None, queue_pass: false, email_verified: false };
        let out = hold_general(&mut self.conn, &self.scripts, &self.keys, &req, GA, qty).await.expect("hold");
        (id, out)
    }
    /// Sets how long the event's next holds last (the scripts read it from
    /// meta on every call), so holds made after a lapse can outlive a slow
    /// machine's pauses.
    async fn set_hold_ms(&mut self, hold_ms: i64) {
        let _: () = self.conn.hset(self.keys.meta(), "hold_ms", hold_ms).await.expect("hset");
    }
    async fn avail(&mut self) -> (i64, i64) {
        let a = availability(&mut self.conn, &self.keys).await.expect("avail");
        (a[&SEATED].0, a[&GA].0)
    }
    async fn events(&mut self) -> Vec<(String, String)> {
        let reply: redis::streams::StreamRangeReply = self.conn.xrange_all(self.keys.stream()).await.expect("xrange");
        reply
            .ids
            .iter()
            .map(|e| (e.get::<String>("type").unwrap_or_default(), e.get::<String>("hold").unwrap_or_default()))
            .collect()
    }
}

fn is_held(out: &HoldOutcome) -> bool {
    matches!(out, HoldOutcome::Held { .. })
}

#[tokio::test]
async fn publish_is_idempotent_and_sets_counters() {
    let mut fx = fixture(60_000, 0).await;
    assert_eq!(fx.avail().await, (6, 5));
    let (_, out) = fx.hold("u1", &[seat(1, 1)]).await;
    assert!(is_held(&out));
    let meta = read_meta(&mut fx.conn, &fx.keys).await.expect("meta").expect("published");
    assert!(!publish(&mut fx.conn, &fx.scripts, &fx.prefix, &fx.keys, &meta).await.expect("again"));
    assert_eq!(fx.avail().await, (5, 5), "a second publish leaves the inventory intact");
    assert_eq!(published_events(&mut fx.conn, &fx.prefix).await.expect("set"), vec![7]);
}

#[tokio::test]
async fn holds_seats_all_or_nothing_naming_every_taken_seat() {
    let mut fx = fixture(60_000, 0).await;
    let (id, out) = fx.hold("u1", &[seat(1, 1), seat(1, 2)]).await;
    assert_eq!(out, HoldOutcome::Held { expires_ms: match out { HoldOutcome::Held { expires_ms, .. } => expires_ms, _ => 0 }, amount_cents: 10_000, quantity: 2, seats: Vec::new() });
    let rec = read_hold(&mut fx.conn, &fx.keys, &id).await.expect("read").expect("exists");
    assert_eq!(rec.status, "held");
    assert_eq!(rec.seats, vec![format!("{SEATED}:1:1"), format!("{SEATED}:1:2")]);
    assert!(rec.expires_ms > now_ms() + 50_000);

    let (_, out) = fx.hold("u2", &[seat(1, 3), seat(1, 2), seat(1, 1)]).await;
    assert_eq!(out, HoldOutcome::Unavailable(vec![format!("{SEATED}:1:2"), format!("{SEATED}:1:1")]));
    assert_eq!(fx.avail().await, (4, 5), "a refused hold changes nothing");
    let taken = taken_seats(&mut fx.conn, &fx.keys, SEATED, now_ms()).await.expect("map");
    assert_eq!(taken.len(), 2);
    assert_eq!(taken[&(1, 1)], SeatStatus::Held);
    assert_eq!(fx.events().await, vec![("hold.created".to_owned(), id)]);
}

#[tokio::test]
async fn refuses_unknown_duplicate_and_wrong_kind_seats() {
    let mut fx = fixture(60_000, 0).await;
    let (_, out) = fx.hold("u1", &[seat(3, 1), seat(1, 4), seat(0, 1), SeatRef { section: 99, row: 1, number: 1 }, SeatRef { section: GA, row: 1, number: 1 }]).await;
    assert_eq!(
        out,
        HoldOutcome::Unknown(vec![format!("{SEATED}:3:1"), format!("{SEATED}:1:4"), format!("{SEATED}:0:1"), "99:1:1".into(), format!("{GA}:1:1")])
    );
    let (_, out) = fx.hold("u1", &[seat(1, 1), seat(1, 1)]).await;
    assert!(matches!(out, HoldOutcome::Bad(_)), "{out:?}");
    let (_, out) = fx.hold_ga("u1", 0).await;
    assert!(matches!(out, HoldOutcome::Bad(_)), "{out:?}");
    let id = HoldId::generate(7).token;
    let req = HoldRequest { user: "u1", hold: &id, idempotency: None, queue_pass: false, email_verified: false };
    let out = hold_general(&mut fx.conn, &fx.scripts, &fx.keys, &req, SEATED, 1).await.expect("call");
    assert_eq!(out, HoldOutcome::Unknown(vec![SEATED.to_string()]));
    assert_eq!(fx.avail().await, (6, 5));
    assert!(fx.events().await.is_empty());
}

#[tokio::test]
async fn not_on_sale_before_the_window_and_not_found_unpublished() {
    let mut fx = fixture(60_000, now_ms() + 3_600_000).await;
    assert_eq!(fx.hold("u1", &[seat(1, 1)]).await.1, HoldOutcome::NotOnSale);
    assert_eq!(fx.hold_ga("u1", 1).await.1, HoldOutcome::NotOnSale);
    fx.keys = EventKeys::new(&fx.prefix, 8);
    assert_eq!(fx.hold("u1", &[seat(1, 1)]).await.1, HoldOutcome::NotFound);
    assert_eq!(fx.hold_ga("u1", 1).await.1, HoldOutcome::NotFound);
}

#[tokio::test]
async fn per_user_limit_counts_seats_and_places_across_holds() {
    let mut fx = fixture(60_000, 0).await;
    assert!(is_held(&fx.hold("u1", &[seat(1, 1), seat(1, 2)]).await.1));
    assert!(is_held(&fx.hold_ga("u1", 1).await.1));
    assert_eq!(fx.hold_ga("u1", 2).await.1, HoldOutcome::Limit { used: 3, limit: 4 });
    assert_eq!(fx.hold("u1", &[seat(2, 1), seat(2, 2)]).await.1, HoldOutcome::Limit { used: 3, limit: 4 });
    assert!(is_held(&fx.hold("u1", &[seat(2, 1)]).await.1));
    assert!(is_held(&fx.hold("u2", &[seat(2, 2)]).await.1), "the limit is per user");
}

#[tokio::test]
async fn idempotency_key_returns_the_first_hold() {
    let mut fx = fixture(60_000, 0).await;
    let first = HoldId::generate(7).token;
    let req = HoldRequest { user: "u1", hold: &first, idempotency: Some("retry-1"), queue_pass: false, email_verified: false };
    assert!(is_held(&hold_seats(&mut fx.conn, &fx.scripts, &fx.keys, &req, &[seat(1, 1)]).await.expect("hold")));
    let second = HoldId::generate(7).token;
    let req = HoldRequest { user: "u1", hold: &second, idempotency: Some("retry-1"), queue_pass: false, email_verified: false };
    assert_eq!(hold_seats(&mut fx.conn, &fx.scripts, &fx.keys, &req, &[seat(1, 1)]).await.expect("hold"), HoldOutcome::Duplicate(first.clone()));
    let req = HoldRequest { user: "u2", hold: &second, idempotency: Some("retry-1"), queue_pass: false, email_verified: false };
    assert!(matches!(hold_seats(&mut fx.conn, &fx.scripts, &fx.keys, &req, &[seat(1, 1)]).await.expect("hold"), HoldOutcome::Unavailable(_)), "keys are scoped to the user");
    assert_eq!(fx.avail().await.0, 5);
}

#[tokio::test]
async fn general_admission_never_oversells() {
    let mut fx = fixture(60_000, 0).await;
    assert!(is_held(&fx.hold_ga("u1", 3).await.1));
    assert_eq!(fx.hold_ga("u2", 3).await.1, HoldOutcome::SoldOut { available: 2 });
    assert!(is_held(&fx.hold_ga("u2", 2).await.1));
    assert_eq!(fx.hold_ga("u3", 1).await.1, HoldOutcome::SoldOut { available: 0 });
    assert_eq!(fx.avail().await.1, 0);
}

#[tokio::test]
async fn release_by_owner_is_idempotent_and_others_cannot() {
    let mut fx = fixture(60_000, 0).await;
    let (id, _) = fx.hold("u1", &[seat(1, 1), seat(2, 3)]).await;
    let (ga, _) = fx.hold_ga("u1", 2).await;
    assert_eq!(fx.avail().await, (4, 3));
    assert_eq!(release(&mut fx.conn, &fx.scripts, &fx.keys, &id, Reason::Released, Some("u2")).await.expect("r"), ReleaseOutcome::NotFound);
    assert_eq!(release(&mut fx.conn, &fx.scripts, &fx.keys, &id, Reason::Released, Some("u1")).await.expect("r"), ReleaseOutcome::Released);
    assert_eq!(release(&mut fx.conn, &fx.scripts, &fx.keys, &id, Reason::Released, Some("u1")).await.expect("r"), ReleaseOutcome::Noop("released".into()));
    assert_eq!(release(&mut fx.conn, &fx.scripts, &fx.keys, &ga, Reason::Released, Some("u1")).await.expect("r"), ReleaseOutcome::Released);
    assert_eq!(release(&mut fx.conn, &fx.scripts, &fx.keys, "nope", Reason::Released, Some("u1")).await.expect("r"), ReleaseOutcome::NotFound);
    assert_eq!(fx.avail().await, (6, 5));
    assert!(taken_seats(&mut fx.conn, &fx.keys, SEATED, now_ms()).await.expect("map").is_empty());
    // The limit no longer counts released holds.
    assert!(is_held(&fx.hold("u1", &[seat(1, 1), seat(1, 2), seat(1, 3), seat(2, 1)]).await.1));
    let kinds: Vec<String> = fx.events().await.into_iter().map(|(k, _)| k).collect();
    assert_eq!(kinds, ["hold.created", "hold.created", "hold.released", "hold.released", "hold.created"]);
    // An expiry arriving early is refused.
    let (early, _) = fx.hold("u2", &[seat(2, 2)]).await;
    assert!(matches!(release(&mut fx.conn, &fx.scripts, &fx.keys, &early, Reason::Expired, None).await.expect("r"), ReleaseOutcome::NotYet(_)));
}

#[tokio::test]
async fn lapsed_holds_are_free_before_any_worker_runs() {
    let mut fx = fixture(300, 0).await;
    let (old, _) = fx.hold("u1", &[seat(1, 1), seat(1, 2)]).await;
    let (old_ga, _) = fx.hold_ga("u1", 2).await;
    assert_eq!(fx.avail().await, (4, 3));
    fx.wait_lapsed(&old, false).await;
    fx.wait_lapsed(&old_ga, false).await;
    assert!(taken_seats(&mut fx.conn, &fx.keys, SEATED, now_ms()).await.expect("map").is_empty(), "lapsed seats read free");
    let rec = read_hold(&mut fx.conn, &fx.keys, &old).await.expect("read").expect("exists");
    assert_eq!(rec.status_at(now_ms()), "expired");
    fx.set_hold_ms(600_000).await;

    // Another user takes one lapsed seat; the old hold's user is under the limit again.
    let (new, out) = fx.hold("u2", &[seat(1, 1)]).await;
    assert!(is_held(&out), "{out:?}");
    assert_eq!(fx.avail().await.0, 4, "taking over a lapsed seat does not count it twice");
    // GA: 3 left, 2 lapsed → 5 can be held.
    assert!(is_held(&fx.hold_ga("u3", 4).await.1));
    assert_eq!(fx.avail().await.1, 1);
    assert!(is_held(&fx.hold("u1", &[seat(2, 1), seat(2, 2), seat(2, 3)]).await.1), "lapsed holds stop counting toward the limit");

    // The worker arrives late: the old holds expire exactly once and free only what they still own.
    assert_eq!(release(&mut fx.conn, &fx.scripts, &fx.keys, &old, Reason::Expired, None).await.expect("r"), ReleaseOutcome::Expired);
    assert_eq!(release(&mut fx.conn, &fx.scripts, &fx.keys, &old, Reason::Expired, None).await.expect("r"), ReleaseOutcome::Noop("expired".into()));
    assert_eq!(release(&mut fx.conn, &fx.scripts, &fx.keys, &old_ga, Reason::Expired, None).await.expect("r"), ReleaseOutcome::Expired);
    let taken = taken_seats(&mut fx.conn, &fx.keys, SEATED, now_ms()).await.expect("map");
    assert_eq!(taken.get(&(1, 1)), Some(&SeatStatus::Held), "the new owner keeps seat 1:1");
    assert_eq!(taken.get(&(1, 2)), None);
    // seated: 6 - (1 new) - (3 u1) = 2; GA: 5 - 4 = 1
    assert_eq!(fx.avail().await, (2, 1));
    let rec = read_hold(&mut fx.conn, &fx.keys, &new).await.expect("read").expect("exists");
    assert_eq!(rec.status, "held");
    let expired: Vec<_> = fx.events().await.into_iter().filter(|(k, _)| k == "hold.expired").collect();
    assert_eq!(expired.len(), 2);
    // An owner's DELETE of a lapsed hold is an expiry, not a release.
    fx.set_hold_ms(300).await;
    let (late, _) = fx.hold("u4", &[seat(1, 2)]).await;
    fx.wait_lapsed(&late, false).await;
    assert_eq!(release(&mut fx.conn, &fx.scripts, &fx.keys, &late, Reason::Released, Some("u4")).await.expect("r"), ReleaseOutcome::Expired);
}

/// An event that requires a verified e-mail (meta `ve`, written by
/// publish.lua and update_terms): hold.lua, hold_ga.lua and hold_best.lua
/// (seated and through to hold_ga) refuse an unverified caller, changing
/// nothing, and hold for a verified one; an event without it holds for both.
#[tokio::test]
async fn verified_email_required_refuses_unverified_callers() {
    let mut fx = fixture(60_000, 0).await;
    let mut meta = read_meta(&mut fx.conn, &fx.keys).await.expect("meta").expect("published");
    assert!(!meta.verified_email_required);
    let plain = fx.keys.clone();
    meta.verified_email_required = true;
    fx.keys = EventKeys::new(&fx.prefix, 10);
    assert!(publish(&mut fx.conn, &fx.scripts, &fx.prefix, &fx.keys, &meta).await.expect("publish"));
    assert!(read_meta(&mut fx.conn, &fx.keys).await.expect("meta").expect("published").verified_email_required);

    async fn call(fx: &mut Fx, user: &str, verified: bool, how: &str) -> HoldOutcome {
        let id = HoldId::generate(fx.keys.event).token;
        let req = HoldRequest { user, hold: &id, idempotency: None, queue_pass: false, email_verified: verified };
        let (c, s, k) = (&mut fx.conn, &fx.scripts, &fx.keys);
        match how {
            "seats" => hold_seats(c, s, k, &req, &[seat(1, 1)]).await,
            "ga" => hold_general(c, s, k, &req, GA, 1).await,
            "best" => hold_best(c, s, k, &req, SEATED, 1, true).await,
            _ => hold_best(c, s, k, &req, GA, 1, true).await, // best on a GA section: hold_ga within
        }
        .expect("hold")
    }
    for how in ["seats", "ga", "best", "best_ga"] {
        assert_eq!(call(&mut fx, "u1", false, how).await, HoldOutcome::EmailUnverified, "{how}: unverified");
    }
    assert_eq!(fx.avail().await, (6, 5), "a refusal changes nothing");
    assert!(fx.events().await.is_empty());
    for (how, user) in [("seats", "u1"), ("ga", "u2"), ("best", "u3"), ("best_ga", "u4")] {
        assert!(is_held(&call(&mut fx, user, true, how).await), "{how}: verified holds");
    }
    assert_eq!(fx.avail().await, (4, 3));

    // Lifted after publishing: unverified callers hold again; set again: refused.
    update_terms(&mut fx.conn, &fx.keys, 0, 60_000, 4, false).await.expect("terms");
    assert!(is_held(&call(&mut fx, "u5", false, "ga").await));
    update_terms(&mut fx.conn, &fx.keys, 0, 60_000, 4, true).await.expect("terms");
    assert_eq!(call(&mut fx, "u6", false, "ga").await, HoldOutcome::EmailUnverified);
    // Sale not started beats the missing verification.
    update_terms(&mut fx.conn, &fx.keys, now_ms() + 3_600_000, 60_000, 4, true).await.expect("terms");
    assert_eq!(call(&mut fx, "u6", false, "seats").await, HoldOutcome::NotOnSale);

    // The event without the flag: unverified callers hold as ever.
    fx.keys = plain;
    for (how, user) in [("seats", "u1"), ("ga", "u2"), ("best", "u3"), ("best_ga", "u4")] {
        assert!(is_held(&call(&mut fx, user, false, how).await), "{how}: no flag, unverified holds");
    }
}

/// The waiting room: hold.lua and hold_ga.lua refuse a `wr` event without a
/// pass (changing nothing) and take it with one; queue.lua hands out places
/// first come, first served, one per user, and admits by the rate.
#[tokio::test]
async fn waiting_room_needs_a_pass_and_admits_in_order() {
    let mut fx = fixture(60_000, 0).await;
    let mut meta = read_meta(&mut fx.conn, &fx.keys).await.expect("meta").expect("published");
    assert!(!meta.waiting_room);
    let plain = fx.keys.clone();
    meta.waiting_room = true;
    fx.keys = EventKeys::new(&fx.prefix, 9);
    assert!(publish(&mut fx.conn, &fx.scripts, &fx.prefix, &fx.keys, &meta).await.expect("publish"));
    assert!(read_meta(&mut fx.conn, &fx.keys).await.expect("meta").expect("published").waiting_room);

    // No pass: refused, seated and GA alike, before anything is touched.
    assert_eq!(fx.hold("u1", &[seat(1, 1)]).await.1, HoldOutcome::QueuePassRequired);
    assert_eq!(fx.hold_ga("u1", 1).await.1, HoldOutcome::QueuePassRequired);
    assert_eq!(fx.avail().await, (6, 5));
    assert!(fx.events().await.is_empty());
    // With a pass: the usual hold.
    let id = HoldId::generate(9).token;
    let req = HoldRequest { user: "u1", hold: &id, idempotency: None, queue_pass: true, email_verified: false };
    assert!(is_held(&hold_seats(&mut fx.conn, &fx.scripts, &fx.keys, &req, &[seat(1, 1), seat(1, 2)]).await.expect("hold")));
    let id = HoldId::generate(9).token;
    let req = HoldRequest { user: "u1", hold: &id, idempotency: None, queue_pass: true, email_verified: false };
    assert!(is_held(&hold_general(&mut fx.conn, &fx.scripts, &fx.keys, &req, GA, 2).await.expect("hold")));
    assert_eq!(fx.avail().await, (4, 3));
    // Sale not started beats the missing pass.
    update_terms(&mut fx.conn, &fx.keys, now_ms() + 3_600_000, 60_000, 4, false).await.expect("terms");
    assert_eq!(fx.hold("u2", &[seat(2, 1)]).await.1, HoldOutcome::NotOnSale);

    // The line: positions in join order, one ticket per user, nobody admitted before the sale.
    let none = Admission { initial: 100, per_second: 100 };
    let (c, s, k) = (&mut fx.conn, &fx.scripts, &fx.keys);
    let place = |ticket: &str, position: i64, admitted: bool, fresh: bool| QueueOutcome::Place { ticket: ticket.into(), position, admitted, fresh, sold_out: false };
    assert_eq!(queue_join(c, s, k, "u1", "ta", none).await.expect("join"), place("ta", 1, false, true));
    assert_eq!(queue_join(c, s, k, "u2", "tb", none).await.expect("join"), place("tb", 2, false, true));
    assert_eq!(queue_join(c, s, k, "u1", "tc", none).await.expect("join"), place("ta", 1, false, false), "a second join keeps the first ticket");
    assert_eq!(queue_status(c, s, k, "u2", "tb", none).await.expect("status"), place("tb", 2, false, false));
    assert_eq!(queue_status(c, s, k, "u2", "ta", none).await.expect("status"), QueueOutcome::NotFound, "another user's ticket");
    assert_eq!(queue_status(c, s, k, "u1", "tc", none).await.expect("status"), QueueOutcome::NotFound, "a ticket never issued");

    // On sale: `initial` admitted at once, then `per_second` more a second.
    update_terms(c, k, now_ms(), 60_000, 4, false).await.expect("terms");
    let one = Admission { initial: 1, per_second: 0 };
    assert_eq!(queue_status(c, s, k, "u1", "ta", one).await.expect("status"), place("ta", 1, true, true));
    assert_eq!(queue_status(c, s, k, "u1", "ta", one).await.expect("status"), place("ta", 1, true, false), "admitted is counted once");
    assert_eq!(queue_status(c, s, k, "u2", "tb", one).await.expect("status"), place("tb", 2, false, false));
    update_terms(c, k, now_ms() - 1_000, 60_000, 4, false).await.expect("terms");
    let rate = Admission { initial: 1, per_second: 1 };
    assert_eq!(queue_status(c, s, k, "u2", "tb", rate).await.expect("status"), place("tb", 2, true, true));
    assert_eq!(queue_join(c, s, k, "u3", "td", one).await.expect("join"), place("td", 3, false, true));

    // An event without a waiting room has no line; an unknown event has nothing.
    assert_eq!(queue_join(c, s, &plain, "u1", "te", none).await.expect("join"), QueueOutcome::NoWaitingRoom);
    assert_eq!(queue_status(c, s, &plain, "u1", "ta", none).await.expect("status"), QueueOutcome::NotFound);
    let unknown = EventKeys::new(&fx.prefix, 10);
    assert_eq!(queue_join(c, s, &unknown, "u1", "tf", none).await.expect("join"), QueueOutcome::NotFound);
    let users: std::collections::HashMap<String, String> = c.hgetall(k.queue_users()).await.expect("users");
    assert_eq!(users.len(), 3);
}

/// Pays for `hold` as `user` (a fresh order, payment and charge id).
async fn pay(fx: &mut Fx, hold: &str, user: &str) -> ConfirmOutcome {
    let (order, payment, charge) = (random_hex(8), random_hex(8), random_hex(8));
    let pay = Payment { order: &order, payment: &payment, charge: &charge, method: "pm_card_visa" };
    confirm(&mut fx.conn, &fx.scripts, &fx.keys, hold, user, &pay).await.expect("confirm")
}

fn sold_out(out: QueueOutcome) -> bool {
    match out {
        QueueOutcome::Place { sold_out, .. } => sold_out,
        other => panic!("not in line: {other:?}"),
    }
}

#[tokio::test]
async fn the_line_learns_the_event_is_sold_out_only_when_nothing_can_come_back() {
    let mut fx = fixture(60_000, 0).await;
    let _: () = fx.conn.hset(fx.keys.meta(), "wr", 1).await.expect("waiting room");
    let admit = Admission { initial: 100, per_second: 0 };
    let status = async |fx: &mut Fx| sold_out(queue_status(&mut fx.conn, &fx.scripts, &fx.keys, "u9", "t9", admit).await.expect("status"));
    queue_join(&mut fx.conn, &fx.scripts, &fx.keys, "u9", "t9", admit).await.expect("join");
    assert!(!status(&mut fx).await, "everything is free");

    // Every seat and place held: pending holds may lapse, so not sold out.
    let pass = |user: &'static str, hold: &'static str| HoldRequest { user, hold, idempotency: None, queue_pass: true, email_verified: false };
    let mut holds = Vec::new();
    for (user, row) in [("u1", 1), ("u2", 2)] {
        let id = HoldId::generate(7).token;
        let req = HoldRequest { user, hold: &id, idempotency: None, queue_pass: true, email_verified: false };
        let out = hold_seats(&mut fx.conn, &fx.scripts, &fx.keys, &req, &[seat(row, 1), seat(row, 2), seat(row, 3)]).await.expect("hold");
        assert!(is_held(&out), "{out:?}");
        holds.push((id, user));
    }
    for (user, hold) in [("u3", "ga1"), ("u4", "ga2")] {
        let qty = if user == "u3" { 4 } else { 1 };
        assert!(is_held(&hold_general(&mut fx.conn, &fx.scripts, &fx.keys, &pass(user, hold), GA, qty).await.expect("hold")));
        holds.push((hold.to_owned(), user));
    }
    assert_eq!(fx.avail().await, (0, 0));
    assert!(!status(&mut fx).await, "holds are pending");

    // All paid but one hold: still not sold out; then that one too.
    for (hold, user) in &holds[1..] {
        assert!(matches!(pay(&mut fx, hold, user).await, ConfirmOutcome::Confirmed { .. }));
    }
    assert!(!status(&mut fx).await, "one hold is pending");
    let (hold, user) = &holds[0];
    assert!(matches!(pay(&mut fx, hold, user).await, ConfirmOutcome::Confirmed { .. }));
    assert!(status(&mut fx).await, "every seat and place is sold");
}

#[tokio::test]
async fn finished_holds_are_forgotten_with_their_idempotency_keys_live_ones_never() {
    let mut fx = fixture(60_000, 0).await;
    let (released, _) = fx.hold("u1", &[seat(1, 1)]).await;
    let keyed = HoldId::generate(7).token;
    let req = HoldRequest { user: "u2", hold: &keyed, idempotency: Some("k-1"), queue_pass: false, email_verified: false };
    assert!(is_held(&hold_seats(&mut fx.conn, &fx.scripts, &fx.keys, &req, &[seat(1, 2)]).await.expect("hold")));
    let (live, _) = fx.hold("u3", &[seat(1, 3)]).await;
    release(&mut fx.conn, &fx.scripts, &fx.keys, &released, Reason::Released, Some("u1")).await.expect("release");
    release(&mut fx.conn, &fx.scripts, &fx.keys, &keyed, Reason::Released, Some("u2")).await.expect("release");

    // A cutoff before they ended forgets nothing.
    assert_eq!(forget(&mut fx.conn, &fx.scripts, &fx.keys, now_ms() - 60_000, 100).await.expect("forget"), 0);
    assert!(read_hold(&mut fx.conn, &fx.keys, &released).await.expect("read").is_some());
    // Then both finished holds go, with the idempotency entry; the live one stays.
    assert_eq!(forget(&mut fx.conn, &fx.scripts, &fx.keys, now_ms() + 1_000, 100).await.expect("forget"), 2);
    for gone in [&released, &keyed] {
        assert_eq!(read_hold(&mut fx.conn, &fx.keys, gone).await.expect("read"), None);
    }
    assert!(read_hold(&mut fx.conn, &fx.keys, &live).await.expect("read").is_some_and(|h| h.status == "held"));
    let idem: std::collections::HashMap<String, String> = fx.conn.hgetall(fx.keys.idem()).await.expect("idem");
    assert!(idem.is_empty(), "{idem:?}");
    let ended: i64 = fx.conn.zcard(fx.keys.ended()).await.expect("ended");
    assert_eq!(ended, 0);
    // The key is free again: a new request with it makes a new hold.
    let again = HoldId::generate(7).token;
    let req = HoldRequest { user: "u2", hold: &again, idempotency: Some("k-1"), queue_pass: false, email_verified: false };
    assert!(is_held(&hold_seats(&mut fx.conn, &fx.scripts, &fx.keys, &req, &[seat(2, 1)]).await.expect("hold")));
}

// ---- best available (hold_best.lua) -------------------------------------------

/// An event (id 8) with one seated section SEATED of `rows` x `per_row` at
/// 1000 and the GA section, on sale now.
async fn seated_fixture(rows: u32, per_row: u32, hold_ms: i64, limit: i64) -> Fx {
    let cfg = test_config(&[]).await;
    let mut conn = store::connect(&cfg.redis_url).await.expect("redis");
    let scripts = Scripts::load();
    let keys = EventKeys::new(&cfg.redis_prefix, 8);
    let meta = EventMeta {
        sale_ms: 0,
        hold_ms,
        limit,
        waiting_room: false,
        verified_email_required: false,
        sections: vec![
            SectionLayout { id: SEATED, seated: Some((rows, per_row)), capacity: i64::from(rows * per_row), price_cents: 1000 },
            SectionLayout { id: GA, seated: None, capacity: 5, price_cents: 1500 },
        ],
    };
    assert!(publish(&mut conn, &scripts, &cfg.redis_prefix, &keys, &meta).await.expect("publish"));
    Fx { conn, scripts, keys, prefix: cfg.redis_prefix }
}

impl Fx {
    async fn best_in(&mut self, user: &str, section: i64, qty: i64, adjacent: bool, idem: Option<&str>) -> (String, HoldOutcome) {
        let id = HoldId::generate(self.keys.event).token;
        let req = HoldRequest { user, hold: &id, idempotency: idem, queue_pass: false, email_verified: false };
        let out = hold_best(&mut self.conn, &self.scripts, &self.keys, &req, section, qty, adjacent).await.expect("hold_best");
        (id, out)
    }
    async fn best(&mut self, user: &str, qty: i64, adjacent: bool) -> (String, HoldOutcome) {
        self.best_in(user, SEATED, qty, adjacent, None).await
    }
    /// The seat index of SEATED (`per_row` seats a row) marks exactly the
    /// seats its seat hash has, and its row bounds never understate a row.
    async fn assert_index(&mut self, per_row: u32) {
        let occ: Option<Vec<u8>> = self.conn.get(self.keys.occ(SEATED)).await.expect("occ");
        let runs: Option<Vec<u8>> = self.conn.get(self.keys.runs(SEATED)).await.expect("runs");
        let (occ, runs) = (occ.unwrap_or_default(), runs.unwrap_or_default());
        let taken = taken_seats(&mut self.conn, &self.keys, SEATED, 0).await.expect("raw map");
        let rows = taken.keys().map(|(r, _)| *r).max().unwrap_or(0).max(occ.len() as u32 / per_row + 1);
        for r in 1..=rows {
            let (mut run, mut longest) = (0u32, 0u32);
            for n in 1..=per_row {
                let byte = occ.get(((r - 1) * per_row + n - 1) as usize).copied().unwrap_or(0);
                let is_taken = taken.contains_key(&(r, n));
                assert_eq!(byte, u8::from(is_taken), "index byte of seat {r}:{n}");
                run = if is_taken { 0 } else { run + 1 };
                longest = longest.max(run);
            }
            let bound = u32::from(runs.get(r as usize - 1).copied().unwrap_or(0));
            assert!(bound == 0 || bound > longest, "row {r}: bound {} < longest free run {longest}", bound - 1);
        }
    }
}

fn chosen(out: &HoldOutcome) -> Vec<String> {
    match out {
        HoldOutcome::Held { seats, .. } => seats.clone(),
        other => panic!("not held: {other:?}"),
    }
}

fn ids(seats: &[(u32, u32)]) -> Vec<String> {
    seats.iter().map(|(r, n)| format!("{SEATED}:{r}:{n}")).collect()
}

#[tokio::test]
async fn best_available_takes_the_lowest_row_nearest_its_centre() {
    let mut fx = seated_fixture(3, 10, 60_000, 50).await;
    let (first, out) = fx.best("u1", 2, true).await;
    assert_eq!(chosen(&out), ids(&[(1, 5), (1, 6)]), "the centre of row 1");
    assert!(matches!(out, HoldOutcome::Held { amount_cents: 2000, quantity: 2, .. }));
    // Row 1 has 1–4 and 7–10 left: a block of 3 either side is as far from
    // the centre; the lower numbers win.
    assert_eq!(chosen(&fx.best("u1", 3, true).await.1), ids(&[(1, 2), (1, 3), (1, 4)]));
    assert_eq!(chosen(&fx.best("u1", 4, true).await.1), ids(&[(1, 7), (1, 8), (1, 9), (1, 10)]));
    assert_eq!(chosen(&fx.best("u1", 2, true).await.1), ids(&[(2, 5), (2, 6)]), "row 1 has one seat left: row 2");
    assert_eq!(chosen(&fx.best("u1", 10, true).await.1), ids(&(1..=10).map(|n| (3, n)).collect::<Vec<_>>()));
    assert_eq!(fx.best("u1", 11, true).await.1, HoldOutcome::NoBlock { available: 9 }, "longer than a row");
    assert_eq!(fx.best("u1", 9, true).await.1, HoldOutcome::NoBlock { available: 9 }, "9 free but not together");

    // The hold is a seat hold like any other: its record, stream event and seats.
    let rec = read_hold(&mut fx.conn, &fx.keys, &first).await.expect("read").expect("exists");
    assert_eq!((rec.seats, rec.section, rec.quantity, rec.amount_cents), (ids(&[(1, 5), (1, 6)]), None, 2, 2000));
    let reply: redis::streams::StreamRangeReply = fx.conn.xrange_count(fx.keys.stream(), "-", "+", 1).await.expect("xrange");
    assert_eq!(reply.ids[0].get::<String>("seats").as_deref(), Some("11:1:5,11:1:6"));
    assert_eq!(reply.ids[0].get::<String>("section").as_deref(), Some(""));
    assert_eq!(fx.avail().await.0, 30 - 21);
    fx.assert_index(10).await;
}

#[tokio::test]
async fn not_adjacent_takes_the_best_seats_across_fragments() {
    let mut fx = seated_fixture(2, 5, 60_000, 50).await;
    assert!(is_held(&fx.hold("u1", &[seat(1, 2), seat(1, 4), seat(2, 3)]).await.1));
    assert_eq!(fx.best("u2", 3, true).await.1, HoldOutcome::NoBlock { available: 7 }, "no 3 together in either row");
    // Row 1 first, nearest its centre (seat 3), then 1 before 5.
    assert_eq!(chosen(&fx.best("u2", 3, false).await.1), ids(&[(1, 3), (1, 1), (1, 5)]));
    assert_eq!(chosen(&fx.best("u2", 3, false).await.1), ids(&[(2, 2), (2, 4), (2, 1)]));
    assert_eq!(fx.best("u2", 2, false).await.1, HoldOutcome::NoBlock { available: 1 });
    assert_eq!(chosen(&fx.best("u2", 1, true).await.1), ids(&[(2, 5)]));
    assert_eq!(fx.best("u3", 1, false).await.1, HoldOutcome::NoBlock { available: 0 });
    assert_eq!(fx.avail().await.0, 0);
    fx.assert_index(5).await;
}

#[tokio::test]
async fn best_available_answers_like_the_other_hold_scripts() {
    let mut fx = seated_fixture(2, 5, 60_000, 4).await;
    // A general-admission section is held as hold_ga.lua holds it.
    let (ga, out) = fx.best_in("u1", GA, 2, true, None).await;
    assert!(matches!(out, HoldOutcome::Held { amount_cents: 3000, quantity: 2, ref seats, .. } if seats.is_empty()), "{out:?}");
    assert_eq!(read_hold(&mut fx.conn, &fx.keys, &ga).await.expect("read").expect("exists").section, Some(GA));
    assert_eq!(fx.best_in("u1", 99, 1, true, None).await.1, HoldOutcome::Unknown(vec!["99".into()]));
    // The per-user limit counts every hold of the event.
    assert_eq!(fx.best("u1", 3, true).await.1, HoldOutcome::Limit { used: 2, limit: 4 });
    // An idempotency key answers with its first hold.
    let (first, out) = fx.best_in("u1", SEATED, 2, true, Some("k1")).await;
    assert!(is_held(&out));
    assert_eq!(fx.best_in("u1", SEATED, 2, true, Some("k1")).await.1, HoldOutcome::Duplicate(first));
    assert_eq!(fx.avail().await.0, 8, "a replay holds nothing more");
    for bad in [0, 51] {
        assert!(matches!(fx.best("u2", bad, true).await.1, HoldOutcome::Bad(_)));
    }
    let mut late = seated_fixture(1, 5, 60_000, 4).await;
    let _: () = late.conn.hset(late.keys.meta(), "sale_ms", now_ms() + 60_000).await.expect("hset");
    assert_eq!(late.best("u1", 1, true).await.1, HoldOutcome::NotOnSale);
    fx.assert_index(5).await;
}

#[tokio::test]
async fn lapsed_seats_come_back_with_no_worker_and_release_keeps_the_index_exact() {
    let mut fx = seated_fixture(1, 6, 300, 50).await;
    let (old, out) = fx.best("u1", 6, true).await;
    assert_eq!(chosen(&out).len(), 6);
    assert_eq!(fx.best("u2", 1, true).await.1, HoldOutcome::NoBlock { available: 0 });
    // Past its expiry and its deadline bucket's end: lapsed, no worker ran.
    fx.wait_lapsed(&old, true).await;
    fx.set_hold_ms(600_000).await;
    let (new, out) = fx.best("u2", 2, true).await;
    assert_eq!(chosen(&out), ids(&[(1, 3), (1, 4)]), "the lapsed hold was expired and its seats held again");
    let rec = read_hold(&mut fx.conn, &fx.keys, &old).await.expect("read").expect("exists");
    assert_eq!(rec.status, "expired");
    let expired: Vec<_> = fx.events().await.into_iter().filter(|(k, _)| k == "hold.expired").collect();
    assert_eq!(expired, vec![("hold.expired".to_owned(), old.clone())]);
    assert_eq!(fx.avail().await.0, 4);
    fx.assert_index(6).await;

    // A release frees the seats in the index too, and they are the best again.
    assert_eq!(release(&mut fx.conn, &fx.scripts, &fx.keys, &new, Reason::Released, Some("u2")).await.expect("r"), ReleaseOutcome::Released);
    assert_eq!(fx.avail().await.0, 6);
    fx.assert_index(6).await;
    assert_eq!(chosen(&fx.best("u3", 4, true).await.1), ids(&[(1, 2), (1, 3), (1, 4), (1, 5)]));
    // Ending the already expired hold again changes nothing: not the
    // count, not the index (its seats are another buyer's now).
    assert_eq!(release(&mut fx.conn, &fx.scripts, &fx.keys, &old, Reason::Expired, None).await.expect("r"), ReleaseOutcome::Noop("expired".into()));
    assert_eq!(fx.avail().await.0, 2);
    fx.assert_index(6).await;
}

#[tokio::test]
async fn a_stale_index_never_double_books() {
    let mut fx = seated_fixture(1, 6, 60_000, 50).await;
    assert!(is_held(&fx.hold("u1", &[seat(1, 3), seat(1, 4)]).await.1));
    // The index loses what it knew (as on Redis without it, or a bug).
    let _: () = fx.conn.del(&[fx.keys.occ(SEATED), fx.keys.runs(SEATED)]).await.expect("del");
    let (_, out) = fx.best("u2", 2, true).await;
    assert_eq!(chosen(&out), ids(&[(1, 1), (1, 2)]), "the row is read from the seat map, not the stale index");
    fx.assert_index(6).await;
    assert_eq!(fx.avail().await.0, 2);
}

#[tokio::test]
async fn expiry_and_confirmation_keep_the_index_exact() {
    let mut fx = seated_fixture(2, 4, 300, 50).await;
    let (a, _) = fx.best("u1", 3, true).await;
    let (b, _) = fx.best("u2", 2, false).await;
    fx.set_hold_ms(600_000).await;
    let (c, _) = fx.best("u3", 2, true).await;
    let order = random_hex(8);
    let pay = Payment { order: &order, payment: "pay_1", charge: "ch_1", method: "card" };
    assert!(matches!(confirm(&mut fx.conn, &fx.scripts, &fx.keys, &c, "u3", &pay).await.expect("confirm"), ConfirmOutcome::Confirmed { .. }));
    fx.wait_lapsed(&a, true).await;
    fx.wait_lapsed(&b, true).await;
    let buckets = due_buckets(&mut fx.conn, &fx.keys, now_ms(), 10).await.expect("due");
    for b in buckets {
        expire_bucket(&mut fx.conn, &fx.scripts, &fx.keys, b, 100).await.expect("expire");
    }
    assert_eq!(read_hold(&mut fx.conn, &fx.keys, &a).await.expect("read").expect("exists").status, "expired");
    let a = availability(&mut fx.conn, &fx.keys).await.expect("avail");
    assert_eq!(a[&SEATED], (6, 2), "the two sold seats stay taken, the rest is free");
    fx.assert_index(4).await;
}
