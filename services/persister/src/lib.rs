//! The persister (`stampede serve persister`): Postgres is the durable
//! record, Redis the fast present, and this crate keeps the first caught up
//! with the second and can rebuild the second from the first.
//!
//! - [`worker`]: drains every event stream through the consumer group
//!   `persister` into `holds`, `orders`, `order_seats`, `payments` and
//!   `tickets`, one transaction per batch, acked after commit; trims the streams and
//!   exports their gauges.
//! - [`records`] decodes stream entries into rows, [`ledger`] writes them
//!   with idempotent multi-row upserts that never regress a status.
//! - [`inventory_check`]: the inventory check (`stampede admin check`), also run
//!   periodically by the worker.
//! - [`rebuild`]: an event's Redis inventory from Postgres
//!   (`stampede admin rebuild-inventory`).

mod config;
pub mod ledger;
pub mod rebuild;
pub mod inventory_check;
pub mod records;
pub mod worker;

pub use config::{MIGRATIONS, PersisterConfig};
pub use rebuild::{Rebuilt, rebuild_inventory};
pub use inventory_check::{Report, check};
pub use worker::{GROUP, PersisterWorker, Stats};
