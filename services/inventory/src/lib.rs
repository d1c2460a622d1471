//! The inventory in Redis: where every key lives ([`keys`]), the scripts
//! that change it ([`scripts`], the files in `lua/`), and typed calls to
//! them ([`ops`]). Catalog publishes through it, reservation holds and
//! releases, checkout confirms, and the expiry worker and persister read
//! what it writes. See `docs/redis-layout.md` for the keys and
//! `lua/README.md` for the scripts.

pub mod keys;
pub mod ops;
pub mod scripts;
pub mod streams;

pub use keys::{EventKeys, HoldId};
pub use ops::*;
pub use scripts::Scripts;
