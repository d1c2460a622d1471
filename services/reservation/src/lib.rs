//! The reservation service, Stampede's hot path: `POST /api/events/{id}/holds`,
//! `GET`/`DELETE /api/holds/{id}`. One Lua script per hold checks the sale
//! window, the seats and the per-user limit, creates the hold with its
//! timer and appends `hold.created` to the event's stream, atomically. No
//! Postgres here, ever. The [`expiry`] worker lives beside it because it
//! runs the same release script. It also serves the waiting room
//! (`/api/events/{id}/queue…`), whose [`pass`]es it verifies on each hold.

mod config;
pub mod expiry;
pub mod pass;
mod routes;

use std::sync::Arc;

use hyper::Request;
use hyper::body::Incoming;
use metrics::{Unit, counter, describe_counter, describe_histogram};
use stampede_common::Config;
use stampede_common::http::{Handler, Routed};
use stampede_common::store::Redis;
use stampede_common::token::Tokens;
use stampede_inventory::{Admission, Scripts};

pub use config::ReservationConfig;
pub use expiry::ExpiryWorker;
pub use pass::Passes;

/// The reservation service's state.
pub struct ReservationService {
    redis: Redis,
    scripts: Scripts,
    tokens: Arc<Tokens>,
    prefix: String,
    max_body: usize,
    passes: Passes,
    admission: Admission,
    metrics: routes::HoldMetrics,
}

impl ReservationService {
    pub fn build(config: &Config, reservation: &ReservationConfig, redis: Redis, tokens: Arc<Tokens>) -> Self {
        describe_counter!(
            "holds_total",
            Unit::Count,
            "Hold requests by outcome: created, replayed, unavailable, limit_exceeded, not_on_sale, queue_pass_required, email_unverified, invalid."
        );
        describe_counter!("queue_joins_total", Unit::Count, "Users who joined an event's waiting room (a repeated join is not counted).");
        describe_counter!("queue_admitted_total", Unit::Count, "Waiting-room tickets found admitted, each counted once (at the status check that first saw it).");
        // At zero from the start, so the waiting-room panels have a series
        // before the first line forms.
        counter!("queue_joins_total").increment(0);
        counter!("queue_admitted_total").increment(0);
        describe_histogram!("redis_script_duration_seconds", Unit::Seconds, "Round trip of one inventory script call, by script.");
        Self {
            redis,
            scripts: Scripts::load(),
            tokens,
            prefix: config.redis_prefix.clone(),
            max_body: config.max_body_bytes,
            passes: Passes::new(&config.jwt),
            admission: Admission { initial: reservation.queue_initial_admit, per_second: reservation.queue_admit_per_second },
            metrics: routes::HoldMetrics::register(),
        }
    }
}

impl Handler for ReservationService {
    fn name(&self) -> &'static str {
        "reservation"
    }

    async fn handle(&self, req: Request<Incoming>) -> Routed {
        routes::route(self, req).await
    }

    async fn ready(&self) -> Result<(), String> {
        stampede_common::store::ping(&self.redis).await
    }
}
