//! The inventory in Redis: where every key lives ([`keys`]), the scripts
//! that change it ([`scripts`], the files in `lua/`), and typed calls to
//! them, one module per concept: the published layout, putting an event on
//! sale, seat status, holds, releases, expiry, orders, tickets, resale and the waiting room.
//! Catalog publishes through it, reservation holds and releases, checkout
//! confirms, and the expiry worker and persister read what it writes
//! ([`streams`]). See `docs/redis-layout.md` for the keys and
//! `lua/README.md` for the scripts.

pub mod keys;
pub mod scripts;
pub mod streams;

mod expiry;
mod holds;
mod layout;
mod orders;
mod publish;
mod queue;
mod release;
mod reply;
mod resale;
mod seats;
mod tickets;

pub use expiry::{BucketExpiry, due_buckets, expire_bucket, pending_holds, redis_now_ms};
pub use holds::{HoldOutcome, HoldRecord, HoldView, HoldRequest, hold_best, hold_general, hold_seats, read_hold};
pub use keys::{EventKeys, HoldId, scan_event_keys};
pub use layout::{EventMeta, SeatRef, SectionLayout};
pub use orders::{ConfirmOutcome, ORDER_RETENTION_MS, OrderRecord, Payment, confirm, read_order};
pub use publish::{availability, publish, published_events, read_meta, update_terms};
pub use queue::{Admission, QueueOutcome, queue_join, queue_joined, queue_status};
pub use release::{FINISHED_RETENTION_MS, Reason, ReleaseOutcome, forget, release};
pub use resale::{
    ListOutcome, ListingHold, ListingHoldRequest, ListingId, ListingRecord, NewListing, Withdrawal, hold_listing, list_ticket, open_listings,
    read_listing, withdraw,
};
pub use scripts::Scripts;
pub use seats::{SeatStatus, taken_seats};
pub use tickets::{CheckIn, Presented, TicketId, TicketRecord, Transfer, check_in, read_ticket, read_tickets, transfer};
