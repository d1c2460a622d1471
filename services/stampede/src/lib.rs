//! The `stampede` binary's library: one process, any set of roles.
//!
//! `stampede serve reservation checkout` runs those two services, each on its
//! own port; `stampede serve all` runs every role. Roles share one Postgres
//! pool, one Redis connection and one metrics registry per process, so
//! nginx and Nomad route the same way whether roles share a process or not.

pub mod app;
pub mod cli;

pub use app::{Running, start};
