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

/// Puts `user` in the event's line with the new `ticket`, or answers the
/// ticket they already have (one per user and event).
pub async fn queue_join(conn: &mut Redis, scripts: &Scripts, keys: &EventKeys, user: &str, ticket: &str, admission: Admission) -> RedisResult<QueueOutcome> {
    Ok(queue_outcome(queue_call(scripts, keys, "join", user, ticket, admission).invoke_async(conn).await?))
}

/// Where `user`'s `ticket` stands; another user's ticket is `NotFound`.
pub async fn queue_status(conn: &mut Redis, scripts: &Scripts, keys: &EventKeys, user: &str, ticket: &str, admission: Admission) -> RedisResult<QueueOutcome> {
    Ok(queue_outcome(queue_call(scripts, keys, "status", user, ticket, admission).invoke_async(conn).await?))
}
