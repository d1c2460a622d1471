//! The waiting room (`lua/queue.lua`): joining the line and asking where
//! a ticket stands.

use redis::{RedisResult, Value};
use stampede_common::store::Redis;

use crate::keys::EventKeys;
use crate::reply::{int, text};
use crate::scripts::{Invocation, Scripts};

/// How fast a waiting room lets people through: `initial` places at the
/// sale's start, then `per_second` more each second.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Admission {
    pub initial: i64,
    pub per_second: i64,
}

impl Admission {
    /// How many places are admitted `now_ms` into a sale starting at
    /// `sale_ms`: `lua/queue.lua`'s formula (0 before the sale).
    pub fn through(&self, sale_ms: i64, now_ms: i64) -> i64 {
        if now_ms < sale_ms { 0 } else { self.initial + self.per_second * (now_ms - sale_ms) / 1000 }
    }

    /// How many of `joined` places still wait in line at `now_ms`.
    pub fn waiting(&self, joined: i64, sale_ms: i64, now_ms: i64) -> i64 {
        (joined - self.through(sale_ms, now_ms)).max(0)
    }
}

/// What the waiting-room script answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueueOutcome {
    /// The caller's ticket and its place in line (1-based, fixed at the
    /// join), admitted once the admission count has reached it. `fresh`:
    /// this join made the ticket, or this status check first found it
    /// admitted. `sold_out`: no seat or place is free and no hold pending.
    Place { ticket: String, position: i64, admitted: bool, fresh: bool, sold_out: bool },
    /// The event is on sale without a waiting room.
    NoWaitingRoom,
    /// No such event on sale, or no such ticket of this user's.
    NotFound,
}

fn queue_call<'s>(scripts: &'s Scripts, keys: &EventKeys, op: &str, user: &str, ticket: &str, admission: Admission) -> Invocation<'s> {
    let mut inv = scripts.queue.key(keys.meta());
    inv.key(keys.queue())
        .key(keys.queue_users())
        .key(keys.queue_seq())
        .key(keys.queue_admitted())
        .key(keys.avail())
        .key(keys.holds())
        .key(keys.ended())
        .arg(op)
        .arg(user)
        .arg(ticket)
        .arg(admission.initial)
        .arg(admission.per_second);
    inv
}

fn queue_outcome(reply: Vec<Value>) -> QueueOutcome {
    match reply.first().map(text).as_deref() {
        Some("ok") => QueueOutcome::Place {
            ticket: reply.get(1).map(text).unwrap_or_default(),
            position: int(reply.get(2)),
            admitted: int(reply.get(3)) == 1,
            fresh: int(reply.get(4)) == 1,
            sold_out: int(reply.get(5)) == 1,
        },
        Some("no_waiting_room") => QueueOutcome::NoWaitingRoom,
        _ => QueueOutcome::NotFound,
    }
}

/// How many places the event's line has handed out (the last position).
pub async fn queue_joined(conn: &mut Redis, keys: &EventKeys) -> RedisResult<i64> {
    let seq: Option<i64> = redis::cmd("GET").arg(keys.queue_seq()).query_async(conn).await?;
    Ok(seq.unwrap_or(0))
}

/// Puts `user` in the event's line with the new `ticket`, or answers the
/// ticket they already have (one per user and event).
pub async fn queue_join(conn: &mut Redis, scripts: &Scripts, keys: &EventKeys, user: &str, ticket: &str, admission: Admission) -> RedisResult<QueueOutcome> {
    Ok(queue_outcome(queue_call(scripts, keys, "join", user, ticket, admission).invoke_async(conn).await?))
}

/// Where `user`'s `ticket` stands; another user's ticket is `NotFound`.
pub async fn queue_status(conn: &mut Redis, scripts: &Scripts, keys: &EventKeys, user: &str, ticket: &str, admission: Admission) -> RedisResult<QueueOutcome> {
    Ok(queue_outcome(queue_call(scripts, keys, "status", user, ticket, admission).invoke_async(conn).await?))
}

#[cfg(test)]
mod tests {
    use super::Admission;

    #[test]
    fn the_line_is_what_joined_beyond_the_admitted_count() {
        let a = Admission { initial: 2, per_second: 3 };
        assert_eq!(a.through(10_000, 9_999), 0, "nothing before the sale");
        assert_eq!(a.through(10_000, 10_000), 2);
        assert_eq!(a.through(10_000, 12_500), 2 + 7);
        assert_eq!(a.waiting(5, 10_000, 9_000), 5);
        assert_eq!(a.waiting(5, 10_000, 10_000), 3);
        assert_eq!(a.waiting(5, 10_000, 11_000), 0, "never below zero");
    }
}
