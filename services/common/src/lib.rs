//! Shared plumbing for every Stampede service.
//!
//! Each service crate builds on these pieces: typed configuration from
//! `STAMPEDE_*` variables ([`config`]), a hyper server with graceful shutdown
//! and the `/healthz`, `/readyz`, `/metrics` endpoints ([`http`]), RFC 9457
//! problem responses ([`problem`]), local access-token verification
//! ([`token`]), metrics and logs ([`telemetry`]), the Postgres and Redis
//! stores ([`db`], [`store`]) and the jittered waits of every retry loop
//! ([`backoff`]); e-mail over SMTP or into a mail directory (`mail`,
//! feature `mail`). `testkit` (feature `testkit`, turned on by
//! the other crates' dev-dependencies only) spins up isolated stores for
//! tests, and `smtp_sink` is a real SMTP server for them.

pub mod audit;
pub mod backoff;
pub mod clock;
pub mod config;
pub mod db;
pub mod http;
pub mod ids;
#[cfg(feature = "mail")]
pub mod mail;
pub mod problem;
pub mod store;
pub mod telemetry;
#[cfg(feature = "testkit")]
pub mod smtp_sink;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod token;

pub use config::Config;
pub use problem::Problem;
