//! Every inventory script with random `KEYS`/`ARGV` shapes and random
//! sequences of operations, against a real Redis (`STAMPEDE_TEST_REDIS_URL`).
//!
//! Each operation is first built the way the services build it (the key
//! layout of the typed calls in `services/inventory/src/` (`holds.rs`,
//! `release.rs`, `orders.rs`, …), documented at the top of each
//! script in `lua/`), then, often, deformed: keys dropped, repeated,
//! swapped or replaced by other keys of the event (a wrong section's seat
//! hash, the general-admission set of a seated section, a key of no kind),
//! arguments dropped, added or replaced by hostile values (empty, negative,
//! fractional, huge, `nan`, separators the scripts use: `,` `;` `:`). A call
//! may answer anything or fail with an error reply; afterwards the event
//! must still be whole:
//!
//! - per section, sold + held + available = capacity, and the `sold:`
//!   counter equals the sold seats (seated) — no counter below zero;
//! - the seated section's seat index marks exactly the seats its seat hash
//!   has, and its per-row runs never understate a row's longest free run;
//! - no key outside the layout (a seat hash of an unknown section, a junk key);
//! - a live hold owns every seat (or its places) it lists, is listed in
//!   the deadline bucket of its expiry (whose bucket is in `deadlines`)
//!   and in its user's record; a finished one is not in its user's record,
//!   and is in the ended set (until forgotten); every idempotency entry
//!   names a hold of its user, and every hold made with a key is its entry;
//! - the waiting room: one ticket per user, each in line once at a place
//!   of its own, admissions only of tickets in line;
//! - the stream is the outbox: every hold has its `hold.created`, every
//!   finished hold the event of its end, every order its `order.confirmed`,
//!   and every hold event names a hold that exists;
//! - each user's sold count is the places of their confirmed holds, and
//!   sold + live ≤ the per-user limit.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use redis::{Commands, Connection, Value};
use stampede_inventory::scripts::Function;
use stampede_inventory::keys::TIMER_BUCKET_MS;
use stampede_inventory::{EventKeys, HoldRecord, Scripts};

const SEATED: i64 = 11;
const GA: i64 = 12;
const ROWS: u32 = 3;
const PER_ROW: u32 = 4;
const GA_CAPACITY: i64 = 10;
const LIMIT: i64 = 6;
const HOLD_MS: i64 = 200;
const USERS: [&str; 4] = ["1", "2", "3", "4"];

fn redis_url() -> String {
    std::env::var("STAMPEDE_TEST_REDIS_URL")
        .expect("STAMPEDE_TEST_REDIS_URL is not set: run the tests through scripts/test")
}

fn prefix() -> &'static str {
    static PREFIX: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PREFIX.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        format!("fz{:x}{:x}", std::process::id(), nanos)
    })
}

static NEXT_EVENT: AtomicI64 = AtomicI64::new(1);

fn token() -> String {
    stampede_common::ids::random_hex(16)
}

// ---------------------------------------------------------------------------
// operations and how they are deformed
// ---------------------------------------------------------------------------

/// What a call means to do before it is deformed.
#[derive(Clone, Debug)]
enum Action {
    /// Seats by (row, number) of the seated section; `other` names a seat of
    /// the general-admission section or an unknown one instead.
    HoldSeats {
        user: usize,
        seats: Vec<(u32, u32)>,
        other: Option<i64>,
        idem: Option<u8>,
    },
    HoldGa {
        user: usize,
        qty: i64,
        section: i64,
        idem: Option<u8>,
    },
    /// Best available: `qty` seats of a section (mostly the seated one),
    /// adjacent or not.
    HoldBest {
        user: usize,
        qty: i64,
        section: i64,
        adjacent: bool,
        idem: Option<u8>,
    },
    /// A hold made earlier (by index, modulo), released by its owner, another
    /// user or the expiry worker.
    Release {
        pick: usize,
        by: Requester,
        expired: bool,
    },
    /// A hold paid for by its owner or another user.
    Confirm { pick: usize, owner: bool },
    /// Joins the event's waiting room.
    QueueJoin { user: usize },
    /// Asks where a ticket stands: the user's own, or another one's.
    QueueStatus { user: usize, own: bool },
    /// The expiry worker's turn at a deadline bucket (one that is listed,
    /// mostly), by index, modulo.
    ExpireBucket { pick: usize },
    /// Forgets finished holds that ended up to `ago` ms before now (or
    /// after it, when negative), as the expiry worker does once Postgres
    /// has them.
    Forget { ago: i64 },
    /// Lets time pass, so holds lapse (lazy expiry).
    Sleep(u64),
}

#[derive(Clone, Debug)]
enum Requester {
    Owner,
    Other,
    Worker,
}

/// How a well-formed call is bent out of shape.
#[derive(Clone, Debug)]
enum Deform {
    DropKey(usize),
    RepeatKey(usize),
    SwapKeys(usize, usize),
    ReplaceKey(usize, usize),
    DropArg(usize),
    RepeatArg(usize),
    SwapArgs(usize, usize),
    ReplaceArg(usize, usize),
    PushArg(usize),
}

/// Hostile argument values.
const NASTY: &[&str] = &[
    "",
    "0",
    "-1",
    "1",
    "2",
    "7",
    "1.5",
    "1e3",
    "0x10",
    "nan",
    "inf",
    "-inf",
    "abc",
    ",",
    ";",
    "a,b",
    "1;2",
    ":",
    " ",
    "1 ",
    "11:1:1",
    "12:1:1",
    "11:0:1",
    "99:1:1",
    "11",
    "12",
    "99",
    "h1:x",
    "s",
    "{ev:1}",
    "released",
    "expired",
    "confirmed",
    "held",
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551616",
    "99999999999999999999999999999999999999",
    "\u{0}",
    "\u{e9}",
    "%",
    "'",
    "\"",
    "*",
    "-",
];

/// Key suffixes (after the event's base) to put where a key was.
const OTHER_KEYS: &[&str] = &[
    "seats:12",
    "seats:99",
    "ga:11",
    "ga:99",
    "avail",
    "meta",
    "users",
    "deadlines",
    "stream",
    "junk",
    "holds",
    "ended",
    "idem",
    "t:1",
    "seats:11",
    "ga:12",
    "occ:11",
    "runs:11",
    "occ:12",
    "queue",
    "queue:users",
    "queue:seq",
    "queue:admitted",
];

fn action() -> impl Strategy<Value = Action> {
    let seat = prop_oneof![12 => (1u32..=ROWS, 1u32..=PER_ROW), 1 => (0u32..=ROWS + 1, 0u32..=PER_ROW + 1)];
    prop_oneof![
        6 => (0..USERS.len(), prop::collection::vec(seat, 1..4), prop::option::weighted(0.1, prop_oneof![Just(GA), Just(99)]),
              prop::option::weighted(0.3, 0u8..3))
            .prop_map(|(user, seats, other, idem)| Action::HoldSeats { user, seats, other, idem }),
        4 => (0..USERS.len(), -1i64..8, prop_oneof![8 => Just(GA), 1 => Just(SEATED), 1 => Just(99)], prop::option::weighted(0.3, 0u8..3))
            .prop_map(|(user, qty, section, idem)| Action::HoldGa { user, qty, section, idem }),
        5 => (0..USERS.len(), -1i64..6, prop_oneof![8 => Just(SEATED), 1 => Just(GA), 1 => Just(99)], any::<bool>(), prop::option::weighted(0.3, 0u8..3))
            .prop_map(|(user, qty, section, adjacent, idem)| Action::HoldBest { user, qty, section, adjacent, idem }),
        3 => (any::<usize>(), prop_oneof![Just(Requester::Owner), Just(Requester::Other), Just(Requester::Worker)], any::<bool>())
            .prop_map(|(pick, by, expired)| Action::Release { pick, by, expired }),
        3 => (any::<usize>(), prop::bool::weighted(0.85)).prop_map(|(pick, owner)| Action::Confirm { pick, owner }),
        1 => (0..USERS.len()).prop_map(|user| Action::QueueJoin { user }),
        1 => (0..USERS.len(), prop::bool::weighted(0.8)).prop_map(|(user, own)| Action::QueueStatus { user, own }),
        1 => (-1000i64..1000).prop_map(|ago| Action::Forget { ago }),
        2 => any::<usize>().prop_map(|pick| Action::ExpireBucket { pick }),
        1 => (0u64..=HOLD_MS as u64 + 100).prop_map(Action::Sleep),
    ]
}

fn deform() -> impl Strategy<Value = Deform> {
    let i = 0usize..16;
    prop_oneof![
        i.clone().prop_map(Deform::DropKey),
        i.clone().prop_map(Deform::RepeatKey),
        (i.clone(), i.clone()).prop_map(|(a, b)| Deform::SwapKeys(a, b)),
        (i.clone(), 0..OTHER_KEYS.len()).prop_map(|(a, b)| Deform::ReplaceKey(a, b)),
        i.clone().prop_map(Deform::DropArg),
        i.clone().prop_map(Deform::RepeatArg),
        (i.clone(), i.clone()).prop_map(|(a, b)| Deform::SwapArgs(a, b)),
        (i.clone(), 0..NASTY.len()).prop_map(|(a, b)| Deform::ReplaceArg(a, b)),
        (0..NASTY.len()).prop_map(Deform::PushArg),
    ]
}

/// An operation: an action and, for about half of them, deformations.
fn op() -> impl Strategy<Value = (Action, Vec<Deform>)> {
    (
        action(),
        prop_oneof![1 => Just(Vec::new()), 1 => prop::collection::vec(deform(), 1..3)],
    )
}

// ---------------------------------------------------------------------------
// the fixture: one fresh event per case
// ---------------------------------------------------------------------------

struct Event {
    keys: EventKeys,
    base: String,
    /// Every hold id tried, and those a hold script accepted.
    holds: Vec<String>,
    made: Vec<String>,
}

impl Event {
    /// Mostly a hold that exists, sometimes one that never did.
    fn pick(&self, i: usize) -> Option<String> {
        let from = if !self.made.is_empty() && !i.is_multiple_of(8) {
            &self.made
        } else {
            &self.holds
        };
        from.get(i / 8 % from.len().max(1)).cloned()
    }
}

/// Publishes a fresh event whose holds last `hold_ms`.
fn publish(con: &mut Connection, scripts: &Scripts, hold_ms: i64) -> Event {
    let id = NEXT_EVENT.fetch_add(1, Ordering::SeqCst);
    let keys = EventKeys::new(prefix(), id);
    let base = keys.meta().trim_end_matches("meta").to_owned();
    let reply: Vec<String> = scripts
        .publish
        .key(keys.meta())
        .key(keys.avail())
        .arg(0)
        .arg(hold_ms)
        .arg(LIMIT)
        .arg(1) // a waiting room, so the queue script has work to do
        .arg(1) // holds need a verified e-mail (the callers below have one)
        .arg(SEATED)
        .arg(format!("s,{ROWS},{PER_ROW},{},1000", ROWS * PER_ROW))
        .arg(GA)
        .arg(format!("g,0,0,{GA_CAPACITY},500"))
        .invoke(con)
        .expect("publish");
    assert_eq!(reply, vec!["ok".to_owned()]);
    Event {
        keys,
        base,
        holds: Vec::new(),
        made: Vec::new(),
    }
}

/// The well-formed call for `action`, as the services make it: (script, keys, args).
fn build<'s>(
    con: &mut Connection,
    scripts: &'s Scripts,
    ev: &mut Event,
    action: &Action,
) -> Option<(&'s Function, Vec<String>, Vec<String>)> {
    let k = &ev.keys;
    // The hold functions take the event's meta key alone (the library
    // finds the others from it).
    let hold_keys = || vec![k.meta()];
    let hold_args = |hold: &str, user: &str, idem: Option<u8>| {
        let key = idem.map(|i| format!("key{i}")).unwrap_or_default();
        // user, hold, idempotency key, a valid queue pass presented, a verified e-mail
        vec![user.to_owned(), hold.to_owned(), key, "1".to_owned(), "1".to_owned()]
    };
    match action {
        Action::HoldSeats {
            user,
            seats,
            other,
            idem,
        } => {
            let user = USERS[*user];
            let hold = token();
            ev.holds.push(hold.clone());
            let keys = hold_keys();
            let mut args = hold_args(&hold, user, *idem);
            for (i, (r, n)) in seats.iter().enumerate() {
                let section = if i == 0 {
                    other.unwrap_or(SEATED)
                } else {
                    SEATED
                };
                args.push(format!("{section}:{r}:{n}"));
            }
            Some((&scripts.hold, keys, args))
        }
        Action::HoldGa {
            user,
            qty,
            section,
            idem,
        } => {
            let user = USERS[*user];
            let hold = token();
            ev.holds.push(hold.clone());
            let keys = hold_keys();
            let mut args = hold_args(&hold, user, *idem);
            args.push(section.to_string());
            args.push(qty.to_string());
            Some((&scripts.hold_ga, keys, args))
        }
        Action::HoldBest {
            user,
            qty,
            section,
            adjacent,
            idem,
        } => {
            let user = USERS[*user];
            let hold = token();
            ev.holds.push(hold.clone());
            let keys = hold_keys();
            let mut args = hold_args(&hold, user, *idem);
            args.push(section.to_string());
            args.push(qty.to_string());
            args.push(if *adjacent { "1" } else { "0" }.to_owned());
            Some((&scripts.hold_best, keys, args))
        }
        Action::Release { pick, by, expired } => {
            let hold = ev.pick(*pick)?;
            let (owner, seat_keys) = record_keys(con, k, &hold);
            let requester = match by {
                Requester::Owner => owner.clone().unwrap_or_default(),
                Requester::Other => "4".to_owned(),
                Requester::Worker => String::new(),
            };
            let mut keys = vec![k.holds(), k.avail(), k.users(), k.stream(), k.ended()];
            keys.extend(seat_keys);
            let reason = if *expired { "expired" } else { "released" };
            Some((
                &scripts.release,
                keys,
                vec![hold, reason.to_owned(), requester],
            ))
        }
        Action::Confirm { pick, owner } => {
            let hold = ev.pick(*pick)?;
            let (user, seat_keys) = record_keys(con, k, &hold);
            let user = if *owner {
                user.unwrap_or_else(|| "1".to_owned())
            } else {
                "4".to_owned()
            };
            let order = token();
            let mut keys = vec![k.holds(), k.avail(), k.users(), k.stream(), k.ended(), k.order(&order)];
            keys.extend(seat_keys);
            let args = vec![
                hold,
                user,
                order,
                format!("pay_{}", &token()[..24]),
                format!("ch_{}", &token()[..24]),
                "pm_card_visa".to_owned(),
                "604800000".to_owned(),
            ];
            Some((&scripts.confirm, keys, args))
        }
        Action::QueueJoin { user } => {
            let keys = vec![k.meta(), k.queue(), k.queue_users(), k.queue_seq(), k.queue_admitted(), k.avail(), k.holds(), k.ended()];
            let args = vec!["join".to_owned(), USERS[*user].to_owned(), token(), "2".to_owned(), "1".to_owned()];
            Some((&scripts.queue, keys, args))
        }
        Action::QueueStatus { user, own } => {
            let asker = USERS[*user];
            let whose = if *own { asker } else { USERS[(*user + 1) % USERS.len()] };
            let ticket: Option<String> = con.hget(k.queue_users(), whose).ok().flatten();
            let keys = vec![k.meta(), k.queue(), k.queue_users(), k.queue_seq(), k.queue_admitted(), k.avail(), k.holds(), k.ended()];
            let args = vec!["status".to_owned(), asker.to_owned(), ticket.unwrap_or_else(token), "2".to_owned(), "1".to_owned()];
            Some((&scripts.queue, keys, args))
        }
        Action::ExpireBucket { pick } => {
            let buckets: Vec<String> = con.zrange(k.deadlines(), 0, -1).expect("zrange");
            let b = match buckets.len() {
                0 => "1".to_owned(),
                _ if pick % 8 == 0 => (redis_now(con) / TIMER_BUCKET_MS + 1).to_string(),
                n => buckets[pick % n].clone(),
            };
            let keys = vec![k.holds(), k.avail(), k.users(), k.stream(), k.ended(), k.deadlines(), k.bucket(b.parse().unwrap_or(1))];
            Some((&scripts.expire_bucket, keys, vec![b, "100".to_owned()]))
        }
        Action::Forget { ago } => {
            let keys = vec![k.holds(), k.ended(), k.idem()];
            let args = vec![(redis_now(con) - ago).to_string(), "100".to_owned()];
            Some((&scripts.forget, keys, args))
        }
        Action::Sleep(_) => None,
    }
}

/// A hold's owner and the keys of what it holds, as `holds.rs` reads them.
fn record_keys(con: &mut Connection, k: &EventKeys, hold: &str) -> (Option<String>, Vec<String>) {
    let record: Option<String> = con.hget(k.holds(), hold).expect("hget");
    let Some(rec) = record.as_deref().and_then(HoldRecord::parse) else {
        return (None, Vec::new());
    };
    let keys = match rec.section {
        Some(sid) => vec![k.ga(sid)],
        None => rec
            .seats
            .iter()
            .filter_map(|s| s.split(':').next()?.parse::<i64>().ok())
            .map(|sid| k.seats(sid))
            .collect(),
    };
    (Some(rec.user), keys)
}

fn apply(deforms: &[Deform], base: &str, keys: &mut Vec<String>, args: &mut Vec<String>) {
    fn at(len: usize, i: usize) -> Option<usize> {
        (len > 0).then(|| i % len)
    }
    for d in deforms {
        match *d {
            Deform::DropKey(i) => {
                if let Some(i) = at(keys.len(), i) {
                    keys.remove(i);
                }
            }
            Deform::RepeatKey(i) => {
                if let Some(i) = at(keys.len(), i) {
                    keys.push(keys[i].clone());
                }
            }
            Deform::SwapKeys(a, b) => {
                if let (Some(a), Some(b)) = (at(keys.len(), a), at(keys.len(), b)) {
                    keys.swap(a, b);
                }
            }
            Deform::ReplaceKey(i, o) => {
                if let Some(i) = at(keys.len(), i) {
                    keys[i] = format!("{base}{}", OTHER_KEYS[o]);
                }
            }
            Deform::DropArg(i) => {
                if let Some(i) = at(args.len(), i) {
                    args.remove(i);
                }
            }
            Deform::RepeatArg(i) => {
                if let Some(i) = at(args.len(), i) {
                    args.push(args[i].clone());
                }
            }
            Deform::SwapArgs(a, b) => {
                if let (Some(a), Some(b)) = (at(args.len(), a), at(args.len(), b)) {
                    args.swap(a, b);
                }
            }
            Deform::ReplaceArg(i, v) => {
                if let Some(i) = at(args.len(), i) {
                    args[i] = NASTY[v].to_owned();
                }
            }
            Deform::PushArg(v) => args.push(NASTY[v].to_owned()),
        }
    }
}

fn call(
    con: &mut Connection,
    function: &Function,
    keys: &[String],
    args: &[String],
) -> Result<Value, String> {
    let Some((first, rest)) = keys.split_first() else {
        return Err("no keys".to_owned());
    };
    let mut inv = function.key(first);
    for k in rest {
        inv.key(k);
    }
    for a in args {
        inv.arg(a);
    }
    match inv.invoke::<Value>(con) {
        Ok(v) => Ok(v),
        // An error reply is a fine answer; a broken connection is not.
        Err(e) if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() => {
            panic!("Redis connection failed: {e}")
        }
        Err(e) => Err(e.to_string()),
    }
}

// ---------------------------------------------------------------------------
// the invariants
// ---------------------------------------------------------------------------

fn redis_now(con: &mut Connection) -> i64 {
    let t: (i64, i64) = redis::cmd("TIME").query(con).expect("time");
    t.0 * 1000 + t.1 / 1000
}

fn check(con: &mut Connection, ev: &Event) -> Result<(), String> {
    let k = &ev.keys;
    let base = &ev.base;
    let now = redis_now(con);
    let mut problems: Vec<String> = Vec::new();

    // Keys: nothing outside the layout.
    let mut all: Vec<String> = con
        .scan_match::<_, String>(format!("{}*", base.replace('{', "\\{").replace('}', "\\}")))
        .map_err(|e| format!("scan: {e}"))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("scan: {e}"))?;
    all.sort();
    let mut orders: Vec<String> = Vec::new();
    for key in &all {
        let suffix = &key[base.len()..];
        let ok = match suffix {
            "meta" | "avail" | "users" | "deadlines" | "stream" | "holds" | "ended" | "idem" | "queue" | "queue:users"
            | "queue:seq" | "queue:admitted" | "tickets" => true,
            s if s == format!("seats:{SEATED}")
                || s == format!("occ:{SEATED}")
                || s == format!("runs:{SEATED}")
                || s == format!("ga:{GA}") =>
            {
                true
            }
            s => match s.split_once(':') {
                Some(("t" | "d", b)) => b.parse::<i64>().is_ok_and(|b| b > 0),
                Some(("o", t)) if is_token(t) => {
                    orders.push(t.to_owned());
                    true
                }
                _ => false,
            },
        };
        if !ok {
            problems.push(format!("key outside the layout: {key}"));
        }
    }

    let records: HashMap<String, String> = con.hgetall(k.holds()).map_err(|e| format!("holds: {e}"))?;
    let holds: Vec<String> = records.keys().cloned().collect();
    for t in &holds {
        if !is_token(t) {
            problems.push(format!("hold id {t:?} in the holds hash"));
        }
    }

    // Counters.
    let avail: HashMap<String, String> =
        con.hgetall(k.avail()).map_err(|e| format!("avail: {e}"))?;
    let num = |f: &str| avail.get(f).map(|v| v.parse::<i64>().unwrap_or(i64::MIN));
    let seats: HashMap<String, String> = con
        .hgetall(k.seats(SEATED))
        .map_err(|e| format!("seats: {e}"))?;
    let (mut held, mut sold) = (0i64, 0i64);
    for (field, value) in &seats {
        let in_range = field
            .split_once(':')
            .and_then(|(r, n)| Some((r.parse::<u32>().ok()?, n.parse::<u32>().ok()?)))
            .is_some_and(|(r, n)| (1..=ROWS).contains(&r) && (1..=PER_ROW).contains(&n));
        if !in_range {
            problems.push(format!("seat field {field:?} is not a seat"));
        }
        if value == "s" {
            sold += 1;
        } else if value
            .strip_prefix('h')
            .and_then(|v| v.split_once(':'))
            .is_some_and(|(e, h)| e.parse::<i64>().is_ok() && is_token(h))
        {
            held += 1;
        } else {
            problems.push(format!("seat {field} has the value {value:?}"));
        }
    }
    // The seat index: a byte a seat, 1 exactly where the seat hash has the
    // seat; per row, a bound on the longest free run (0 unknown, else 1 +
    // a run at least the row's longest).
    let occ: Vec<u8> = con.get::<_, Option<Vec<u8>>>(format!("{base}occ:{SEATED}")).map_err(|e| format!("occ: {e}"))?.unwrap_or_default();
    let runs: Vec<u8> = con.get::<_, Option<Vec<u8>>>(format!("{base}runs:{SEATED}")).map_err(|e| format!("runs: {e}"))?.unwrap_or_default();
    if occ.len() > (ROWS * PER_ROW) as usize || runs.len() > ROWS as usize {
        problems.push(format!("seat index of {} bytes, runs of {}", occ.len(), runs.len()));
    }
    for r in 1..=ROWS {
        let mut longest = 0u8;
        let mut run = 0u8;
        for n in 1..=PER_ROW {
            let at = ((r - 1) * PER_ROW + n - 1) as usize;
            let byte = occ.get(at).copied().unwrap_or(0);
            let taken = seats.contains_key(&format!("{r}:{n}"));
            if byte != u8::from(taken) {
                problems.push(format!("seat index byte {byte} for seat {r}:{n} (in the seat hash: {taken})"));
            }
            run = if taken { 0 } else { run + 1 };
            longest = longest.max(run);
        }
        let bound = runs.get(r as usize - 1).copied().unwrap_or(0);
        if bound != 0 && bound - 1 < longest {
            problems.push(format!("runs says row {r} has a longest free run of {} but it has {longest}", bound - 1));
        }
    }
    let capacity = i64::from(ROWS * PER_ROW);
    match (num(&SEATED.to_string()), num(&format!("sold:{SEATED}"))) {
        (Some(a), Some(s)) if a >= 0 && s == sold && a + held + sold == capacity => {}
        (a, s) => problems.push(format!(
            "seated: available {a:?} + held {held} + sold {sold} (counter {s:?}) != {capacity}"
        )),
    }
    let members: Vec<(String, i64)> = con
        .zrange_withscores(k.ga(GA), 0, -1)
        .map_err(|e| format!("ga: {e}"))?;
    let mut ga_held = 0i64;
    for (m, _) in &members {
        match m
            .split_once(':')
            .and_then(|(q, h)| Some((q.parse::<i64>().ok()?, h)))
        {
            Some((q, h)) if q > 0 && is_token(h) => ga_held += q,
            _ => problems.push(format!("GA member {m:?}")),
        }
    }
    match (num(&GA.to_string()), num(&format!("sold:{GA}"))) {
        (Some(a), Some(s)) if a >= 0 && s >= 0 && a + ga_held + s == GA_CAPACITY => {}
        (a, s) => problems.push(format!(
            "GA: available {a:?} + held {ga_held} + sold {s:?} != {GA_CAPACITY}"
        )),
    }
    let fields: HashSet<String> = avail.keys().cloned().collect();
    let expected: HashSet<String> = [
        SEATED.to_string(),
        GA.to_string(),
        format!("sold:{SEATED}"),
        format!("sold:{GA}"),
    ]
    .into();
    if fields != expected {
        problems.push(format!("avail fields {fields:?}"));
    }

    // The outbox.
    let entries: redis::streams::StreamRangeReply = con
        .xrange_all(k.stream())
        .map_err(|e| format!("xrange: {e}"))?;
    let mut events: HashMap<String, Vec<String>> = HashMap::new();
    let mut confirmed_qty: BTreeMap<String, i64> = BTreeMap::new();
    let mut ordered: HashSet<String> = HashSet::new();
    for e in &entries.ids {
        let kind: String = e.get("type").unwrap_or_default();
        let hold: String = e.get("hold").unwrap_or_default();
        if kind == "order.confirmed" {
            ordered.insert(e.get("order").unwrap_or_default());
            let qty: i64 = e
                .get::<String>("qty")
                .and_then(|q| q.parse().ok())
                .unwrap_or(-1);
            *confirmed_qty
                .entry(e.get("user").unwrap_or_default())
                .or_default() += qty;
        }
        events.entry(hold).or_default().push(kind);
    }
    // Every hold event names a hold that exists, unless that hold has
    // finished (a finished record is kept only for the retention asked).
    for (hold, kinds) in &events {
        let finished = kinds
            .iter()
            .any(|k| k == "hold.released" || k == "hold.expired" || k == "order.confirmed");
        if kinds.iter().any(|k| k.starts_with("hold.")) && !holds.contains(hold) && !finished {
            problems.push(format!(
                "{kinds:?} for a hold that does not exist: {hold:?}"
            ));
        }
    }
    // Deadline buckets: each listed with its end, and each list's bucket listed.
    let buckets: HashMap<String, i64> = con
        .zrange_withscores::<_, Vec<(String, i64)>>(k.deadlines(), 0, -1)
        .map_err(|e| format!("deadlines: {e}"))?
        .into_iter()
        .collect();
    for (b, end) in &buckets {
        if b.parse::<i64>().map(|b| b * TIMER_BUCKET_MS) != Ok(*end) {
            problems.push(format!("deadline bucket {b} ends at {end}"));
        }
    }
    let mut listed: HashMap<String, String> = HashMap::new();
    for key in all.iter().filter(|key| key[base.len()..].starts_with("d:")) {
        let b = key[base.len() + 2..].to_owned();
        if !buckets.contains_key(&b) {
            problems.push(format!("deadline list {key} of a bucket not in deadlines"));
        }
        let ids: Vec<String> = con.lrange(key, 0, -1).map_err(|e| format!("lrange: {e}"))?;
        for id in ids {
            listed.insert(id, b.clone());
        }
    }
    let users: HashMap<String, String> =
        con.hgetall(k.users()).map_err(|e| format!("users: {e}"))?;
    let ended: HashSet<String> = con
        .zrange::<_, Vec<String>>(k.ended(), 0, -1)
        .map_err(|e| format!("ended: {e}"))?
        .into_iter()
        .collect();
    let idem: HashMap<String, String> = con.hgetall(k.idem()).map_err(|e| format!("idem: {e}"))?;
    for (field, t) in &idem {
        let owner = field.split_once(':').map(|x| x.0).unwrap_or_default();
        if records.get(t).is_none_or(|r| r.split('|').nth(1) != Some(owner)) {
            problems.push(format!("idempotency entry {field} names {t}, no hold of that user's"));
        }
    }
    for t in ended.iter().filter(|t| !records.contains_key(*t)) {
        problems.push(format!("ended names {t}, which has no record"));
    }
    for (t, record) in &records {
        const FIELDS: [&str; 10] = ["status", "user", "exp", "qty", "amount", "section", "seats", "order", "payment", "idem"];
        let h: HashMap<&str, String> = FIELDS.iter().copied().zip(record.splitn(10, '|').map(str::to_owned)).collect();
        if h.len() != FIELDS.len() || HoldRecord::parse(record).is_none() {
            problems.push(format!("hold {t} has the record {record:?}"));
            continue;
        }
        let get = |f: &str| h.get(f).cloned().unwrap_or_default();
        let (user, status) = (get("user"), get("status"));
        let exp: i64 = get("exp").parse().unwrap_or(-1);
        let qty: i64 = get("qty").parse().unwrap_or(-1);
        let kinds = events.get(t).cloned().unwrap_or_default();
        if !kinds.iter().any(|x| x == "hold.created") {
            problems.push(format!(
                "hold {t} ({status}) has no hold.created on the stream"
            ));
        }
        if !is_token(&user) {
            problems.push(format!("hold {t} belongs to {user:?}"));
        }
        match status.as_str() {
            "held" => {}
            "released" | "expired" => {
                if !kinds.contains(&format!("hold.{status}")) {
                    problems.push(format!("hold {t} is {status} without hold.{status}"));
                }
            }
            "confirmed" => {
                if !kinds.iter().any(|x| x == "order.confirmed") {
                    problems.push(format!("hold {t} is confirmed without order.confirmed"));
                }
            }
            other => problems.push(format!("hold {t} has the status {other:?}")),
        }
        if (status == "held") == ended.contains(t) {
            problems.push(format!("hold {t} ({status}) is in the ended set: {}", ended.contains(t)));
        }
        let key = get("idem");
        if !key.is_empty() && idem.get(&format!("{user}:{key}")) != Some(t) {
            problems.push(format!("hold {t} made with key {key} is not its idempotency entry"));
        }
        let live = status == "held" && exp > now;
        if live {
            let bucket = (exp + TIMER_BUCKET_MS - 1) / TIMER_BUCKET_MS;
            if listed.get(t) != Some(&bucket.to_string()) {
                problems.push(format!("live hold {t} is not listed in deadline bucket {bucket} (in {:?})", listed.get(t)));
            }
            let entry = format!("{t},{qty},{exp}");
            if !users
                .get(&user)
                .is_some_and(|r| r.split(';').skip(1).any(|p| p == entry))
            {
                problems.push(format!("live hold {t} is not in user {user}'s record"));
            }
            let section = get("section");
            if section.is_empty() {
                let listed: Vec<String> = get("seats").split(',').map(str::to_owned).collect();
                if listed.len() as i64 != qty {
                    problems.push(format!(
                        "live hold {t} lists {} seats for quantity {qty}",
                        listed.len()
                    ));
                }
                for s in listed {
                    let field = s
                        .split_once(':')
                        .map(|x| x.1)
                        .unwrap_or_default()
                        .to_owned();
                    let owner: Option<String> = con
                        .hget(k.seats(SEATED), &field)
                        .map_err(|e| format!("hget: {e}"))?;
                    if owner.as_deref() != Some(format!("h{exp}:{t}").as_str())
                        || !s.starts_with(&format!("{SEATED}:"))
                    {
                        problems.push(format!(
                            "live hold {t} lists seat {s} but the seat map says {owner:?}"
                        ));
                    }
                }
            } else {
                let score: Option<i64> = con
                    .zscore(k.ga(GA), format!("{qty}:{t}"))
                    .map_err(|e| format!("zscore: {e}"))?;
                if section != GA.to_string() || score != Some(exp) {
                    problems.push(format!("live GA hold {t} of section {section} is not in the GA set at its expiry ({score:?})"));
                }
            }
        }
    }
    for o in &orders {
        let h: HashMap<String, String> =
            con.hgetall(k.order(o)).map_err(|e| format!("order: {e}"))?;
        if h.is_empty() {
            continue;
        }
        let hold = h.get("hold").cloned().unwrap_or_default();
        let back: Option<String> = records.get(&hold).and_then(|r| r.split('|').nth(7)).map(str::to_owned);
        // A forgotten hold (finished, persisted) leaves its order behind.
        let back_ok = back.as_deref() == Some(o.as_str()) || !records.contains_key(&hold);
        if !ordered.contains(o)
            || !back_ok
            || h.get("status").map(String::as_str) != Some("confirmed")
        {
            problems.push(format!(
                "order {o} of hold {hold}: event {}, hold says {back:?}",
                ordered.contains(o)
            ));
        }
    }

    // The waiting room: one ticket per user, each in line once at its own
    // place, places handed out in order, admissions only of tickets in line.
    let line: Vec<(String, i64)> = con.zrange_withscores(k.queue(), 0, -1).map_err(|e| format!("queue: {e}"))?;
    let tickets: HashMap<String, String> = con.hgetall(k.queue_users()).map_err(|e| format!("queue users: {e}"))?;
    let seq: Option<i64> = con.get(k.queue_seq()).map_err(|e| format!("queue seq: {e}"))?;
    let admitted: HashSet<String> = con.smembers(k.queue_admitted()).map_err(|e| format!("admitted: {e}"))?;
    let in_line: HashMap<&str, i64> = line.iter().map(|(t, p)| (t.as_str(), *p)).collect();
    let places: HashSet<i64> = line.iter().map(|(_, p)| *p).collect();
    if places.len() != line.len() || line.iter().any(|(t, p)| !is_token(t) || *p < 1 || Some(*p) > seq) {
        problems.push(format!("the line {line:?} (sequence {seq:?}) has shared, foreign or future places"));
    }
    let owners: HashSet<&str> = tickets.values().map(String::as_str).collect();
    if tickets.len() != line.len() || owners.len() != tickets.len() || tickets.values().any(|t| !in_line.contains_key(t.as_str())) {
        problems.push(format!("tickets by user {tickets:?} do not match the line {line:?}"));
    }
    if admitted.iter().any(|t| !in_line.contains_key(t.as_str())) {
        problems.push(format!("admitted tickets {admitted:?} not in line"));
    }

    // The per-user limit.
    for (user, record) in &users {
        let mut parts = record.split(';');
        let sold: i64 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(-1);
        if sold != confirmed_qty.get(user).copied().unwrap_or(0) {
            problems.push(format!(
                "user {user:?} has sold {sold} in their record but {:?} confirmed",
                confirmed_qty.get(user)
            ));
        }
        let live: i64 = parts
            .filter_map(|p| {
                let mut f = p.split(',');
                let (_h, q, e) = (
                    f.next()?,
                    f.next()?.parse::<i64>().ok()?,
                    f.next()?.parse::<i64>().ok()?,
                );
                (e > now).then_some(q)
            })
            .sum();
        if sold + live > LIMIT {
            problems.push(format!(
                "user {user} has {sold} sold + {live} held > limit {LIMIT}"
            ));
        }
    }
    for (user, qty) in &confirmed_qty {
        if !users.contains_key(user) && *qty > 0 {
            problems.push(format!("user {user} bought {qty} but has no record"));
        }
    }

    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

fn is_token(s: &str) -> bool {
    stampede_common::ids::is_token(s, 64)
}

fn connect() -> Connection {
    redis::Client::open(redis_url())
        .expect("redis url")
        .get_connection()
        .expect("connect to the test Redis")
}

/// Deletes every key of an event (so a shared test Redis is not left with
/// thousands of keys with lifetimes, which slows its active expiry and thus
/// keyspace notifications for other tests).
fn cleanup(con: &mut Connection, base: &str) {
    let keys: Vec<String> = con
        .scan_match::<_, String>(format!("{}*", base.replace('{', "\\{").replace('}', "\\}")))
        .map(|it| it.filter_map(Result::ok).collect())
        .unwrap_or_default();
    for chunk in keys.chunks(500) {
        let _: Result<i64, _> = con.del(chunk);
    }
}

fn run_sequence(ops: &[(Action, Vec<Deform>)]) -> Result<(), TestCaseError> {
    let mut con = connect();
    let scripts = Scripts::load();
    let mut ev = publish(&mut con, &scripts, HOLD_MS);
    let result = run_ops(&mut con, &scripts, &mut ev, ops);
    cleanup(&mut con, &ev.base);
    result
}

fn run_ops(
    con: &mut Connection,
    scripts: &Scripts,
    ev: &mut Event,
    ops: &[(Action, Vec<Deform>)],
) -> Result<(), TestCaseError> {
    let mut log = Vec::new();
    for (action, deforms) in ops {
        if let Action::Sleep(ms) = action {
            std::thread::sleep(std::time::Duration::from_millis(*ms));
            log.push(format!("sleep {ms} ms"));
            continue;
        }
        let Some((script, mut keys, mut args)) = build(con, scripts, ev, action) else {
            continue;
        };
        apply(deforms, &ev.base, &mut keys, &mut args);
        let reply = call(con, script, &keys, &args);
        let accepted = matches!(&reply, Ok(Value::Array(a)) if matches!(a.first(), Some(Value::BulkString(b)) if b == b"ok"));
        if accepted && matches!(action, Action::HoldSeats { .. } | Action::HoldGa { .. } | Action::HoldBest { .. }) {
            ev.made.extend(ev.holds.last().cloned());
        }
        let short = |v: &[String]| {
            v.iter()
                .map(|s| s.trim_start_matches(&ev.base).to_owned())
                .collect::<Vec<_>>()
        };
        log.push(format!(
            "{action:?} {deforms:?}\n    KEYS {:?}\n    ARGV {:?}\n    -> {reply:?}",
            short(&keys),
            args
        ));
        if let Err(why) = check(con, ev) {
            return Err(TestCaseError::fail(format!(
                "after:\n  {}\nthe event is broken:\n{why}",
                log.join("\n  ")
            )));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("STAMPEDE_FUZZ_CASES").ok().map_or(64, |v| v.parse().expect("STAMPEDE_FUZZ_CASES: a number of cases")),
        max_shrink_iters: 2000,
        ..ProptestConfig::default()
    })]

    /// Random sequences of well-formed and deformed calls of every script.
    #[test]
    fn scripts_never_corrupt_the_inventory(ops in prop::collection::vec(op(), 1..40)) {
        run_sequence(&ops)?;
    }
}

/// The well-formed calls this test builds are the services' calls: a hold,
/// a general-admission hold, a confirmation and a release succeed. (If the
/// scripts' argument layout changes, this fails first: update `build`.)
#[test]
fn well_formed_calls_succeed() {
    let mut con = connect();
    let scripts = Scripts::load();
    // Holds that outlive the test, however slow the machine: a lapse
    // would turn the confirmation into a `gone` (the property test above
    // covers expiry on purpose, with HOLD_MS).
    let mut ev = publish(&mut con, &scripts, 600_000);
    let ok = |v: &Result<Value, String>| matches!(v, Ok(Value::Array(a)) if matches!(a.first(), Some(Value::BulkString(b)) if b == b"ok"));
    for action in [
        Action::HoldSeats {
            user: 0,
            seats: vec![(1, 1), (1, 2)],
            other: None,
            idem: Some(1),
        },
        Action::HoldGa {
            user: 1,
            qty: 3,
            section: GA,
            idem: None,
        },
        Action::HoldBest {
            user: 2,
            qty: 3,
            section: SEATED,
            adjacent: true,
            idem: None,
        },
        Action::HoldBest {
            user: 3,
            qty: 2,
            section: SEATED,
            adjacent: false,
            idem: Some(2),
        },
        Action::Confirm {
            pick: 0,
            owner: true,
        },
    ] {
        let (script, keys, args) = build(&mut con, &scripts, &mut ev, &action).expect("a call");
        let reply = call(&mut con, script, &keys, &args);
        assert!(ok(&reply), "{action:?} answered {reply:?}");
        check(&mut con, &ev).expect("whole");
        if !matches!(action, Action::Confirm { .. }) {
            ev.made.extend(ev.holds.last().cloned());
        }
    }
    // pick 9: the second hold made (the general-admission one).
    let (script, keys, args) = build(
        &mut con,
        &scripts,
        &mut ev,
        &Action::Release {
            pick: 9,
            by: Requester::Owner,
            expired: false,
        },
    )
    .expect("a call");
    let base = ev.base.clone();
    let reply = call(&mut con, script, &keys, &args);
    assert!(
        matches!(&reply, Ok(Value::Array(a)) if matches!(a.first(), Some(Value::BulkString(b)) if b == b"released")),
        "{reply:?}"
    );
    check(&mut con, &ev).expect("whole");
    cleanup(&mut con, &base);
}

/// `publish.lua` with random section layouts: either the event is published
/// whole (every section's counters at its capacity) or nothing is written.
#[test]
fn publish_is_all_or_nothing() {
    let con = std::cell::RefCell::new(connect());
    let scripts = Scripts::load();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    });
    let layout = prop_oneof![
        (1u32..4, 1u32..4, 1i64..1000).prop_map(|(r, n, p)| format!("s,{r},{n},{},{p}", r * n)),
        (1i64..50, 1i64..1000).prop_map(|(c, p)| format!("g,0,0,{c},{p}")),
        (0..NASTY.len()).prop_map(|i| NASTY[i].to_owned()),
        Just("s,1,2".to_owned()),
        Just("x,1,1,1,1".to_owned()),
    ];
    let sections = prop::collection::vec(
        (
            prop_oneof![
                (1i64..30).prop_map(|s| s.to_string()),
                (0..NASTY.len()).prop_map(|i| NASTY[i].to_owned())
            ],
            layout,
        ),
        0..4,
    );
    let extra = prop::option::weighted(0.2, (0..NASTY.len()).prop_map(|i| NASTY[i].to_owned()));
    runner
        .run(&(sections, extra), |(sections, extra)| {
            let id = NEXT_EVENT.fetch_add(1, Ordering::SeqCst);
            let keys = EventKeys::new(prefix(), id);
            let mut inv = scripts.publish.key(keys.meta());
            inv.key(keys.avail()).arg(0).arg(HOLD_MS).arg(LIMIT).arg(0).arg(0);
            for (sid, lay) in &sections {
                inv.arg(sid).arg(lay);
            }
            if let Some(x) = &extra {
                inv.arg(x);
            }
            let mut con = con.borrow_mut();
            let reply = inv.invoke::<Value>(&mut *con);
            let meta: HashMap<String, String> = con.hgetall(keys.meta()).expect("meta");
            let avail: HashMap<String, String> = con.hgetall(keys.avail()).expect("avail");
            let _: i64 = con.del(&[keys.meta(), keys.avail()]).expect("del");
            if meta.is_empty() {
                prop_assert!(
                    avail.is_empty(),
                    "no meta but counters {avail:?} ({reply:?})"
                );
                return Ok(());
            }
            for (sid, lay) in meta
                .iter()
                .filter_map(|(f, v)| Some((f.strip_prefix("s:")?, v)))
            {
                let cap = lay.split(',').nth(3).and_then(|c| c.parse::<i64>().ok());
                let whole = cap.is_some()
                    && avail.get(sid).and_then(|a| a.parse::<i64>().ok()) == cap
                    && avail.get(&format!("sold:{sid}")).map(String::as_str) == Some("0");
                prop_assert!(
                    whole,
                    "section {sid} {lay:?} published with counters {avail:?} ({reply:?})"
                );
            }
            Ok(())
        })
        .expect("publish.lua leaves either a whole event or nothing");
}
