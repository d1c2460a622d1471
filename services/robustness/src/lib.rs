//! Robustness suites for Stampede; everything lives in `tests/`:
//!
//! - `parsing.rs`: property tests of what the services parse from a
//!   request (JSON bodies, path segments, query parameters, seat and hold
//!   ids, `Idempotency-Key`): never a panic, and exactly the documented
//!   shapes are accepted.
//! - `lua_scripts.rs`: every Lua script (holds, releases, confirmations,
//!   publishing, the waiting room) called with random `KEYS`/`ARGV`
//!   shapes and random operation sequences against a real Redis
//!   (`STAMPEDE_TEST_REDIS_URL`): each call returns a reply or an error,
//!   and after any sequence sold + held + available = capacity.
//! - `server.rs`: the HTTP server's drain (no request in flight is cut)
//!   and its bounded header and body read times (slow clients).
