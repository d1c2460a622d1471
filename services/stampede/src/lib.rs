//! The `stampede` binary's library: one process, any set of roles.
//!
//! `stampede serve reservation checkout` runs those two services, each on its
//! own port; `stampede serve all` runs every role. Roles share one Postgres
//! pool, one Redis connection and one metrics registry per process, so
//! nginx and Nomad route the same way whether roles share a process or not.

pub mod app;
pub mod cli;

pub use app::{Running, start};

use stampede_common::db::Migration;

/// Every service's migrations, in version order: each crate owns its own
/// (`<crate>/migrations/`), and this is the one place that knows them all.
/// A new migration takes the next free version, whichever crate owns it.
pub fn migrations() -> Vec<Migration> {
    let mut all = [stampede_auth::MIGRATIONS, stampede_catalog::MIGRATIONS, stampede_persister::MIGRATIONS].concat();
    // A crate's later migrations interleave with the others' (auth's 5
    // follows the persister's 4): the runner takes them in version order.
    all.sort_by_key(|m| m.version);
    all
}

#[cfg(test)]
mod tests {
    #[test]
    fn migrations_keep_their_versions_in_order() {
        let all = super::migrations();
        // Databases migrated before each crate owned its migrations know
        // them by these versions: they must never change.
        let known: Vec<(i32, &str)> = all.iter().take(3).map(|m| (m.version, m.name)).collect();
        assert_eq!(known, [(1, "auth"), (2, "catalog"), (3, "ledger")]);
        assert!(all.windows(2).all(|w| w[0].version < w[1].version), "versions ascend, each used once");
    }
}
