//! PostgreSQL: one connection pool per process, and the migration runner.
//! Each service crate owns its migrations (`<crate>/migrations/*.sql`, listed
//! in its `MIGRATIONS`); the `stampede` binary assembles them in order.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

/// One schema change. Versions are global across the services (a database
/// holds every service's tables) and never reused: each version runs once,
/// in its own transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// A pool for `url`. Connections are made lazily, so a process starts (and
/// reports not-ready) while Postgres is down.
pub fn pool(url: &str, size: usize) -> anyhow::Result<Pool> {
    let pg = tokio_postgres::Config::from_str(url).context("STAMPEDE_DATABASE_URL: not a valid Postgres URL")?;
    let mgr = Manager::from_config(pg, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
    Pool::builder(mgr)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(5)))
        .create_timeout(Some(Duration::from_secs(5)))
        .recycle_timeout(Some(Duration::from_secs(5)))
        .build()
        .context("building the Postgres pool")
}

/// Applies every migration of `migrations` (in ascending version order) not
/// yet applied. Safe to run from several processes at once (an advisory
/// lock serialises them) and again at every start.
///
/// Each applied migration's checksum (SHA-256 of its SQL) is kept in
/// `schema_migrations`; if an applied migration's SQL has changed since, this
/// refuses, naming it: an applied migration is never edited, a change is a
/// new migration. Migrations applied before checksums were kept get theirs
/// recorded on the first run that knows them.
pub async fn migrate(pool: &Pool, migrations: &[Migration]) -> anyhow::Result<usize> {
    if let Some(w) = migrations.windows(2).find(|w| w[0].version >= w[1].version) {
        anyhow::bail!(
            "migrations out of order: {} ({}) before {} ({})",
            w[0].version,
            w[0].name,
            w[1].version,
            w[1].name
        );
    }
    let mut client = pool.get().await.context("connecting to Postgres to migrate")?;
    client.batch_execute("SELECT pg_advisory_lock(727274)").await?;
    let result = async {
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (
                    version INT PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now());
                 ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS checksum TEXT",
            )
            .await?;
        let mut applied = 0;
        for Migration { version, name, sql } in migrations {
            let sum = checksum(sql);
            let row = client.query_opt("SELECT checksum FROM schema_migrations WHERE version = $1", &[version]).await?;
            if let Some(row) = row {
                match row.get::<_, Option<String>>(0) {
                    Some(recorded) if recorded == sum => {}
                    Some(recorded) => anyhow::bail!(
                        "migration {version} ({name}) has changed since it was applied (checksum {recorded}, now {sum}): \
                         restore its SQL and put the change in a new migration"
                    ),
                    None => {
                        client.execute("UPDATE schema_migrations SET checksum = $2 WHERE version = $1", &[version, &sum]).await?;
                        tracing::info!(version, name, "migration checksum recorded");
                    }
                }
                continue;
            }
            let tx = client.transaction().await?;
            tx.batch_execute(sql).await.with_context(|| format!("migration {version} ({name})"))?;
            tx.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                &[version, name, &sum],
            )
            .await?;
            tx.commit().await?;
            tracing::info!(version, name, "migration applied");
            applied += 1;
        }
        anyhow::Ok(applied)
    }
    .await;
    client.batch_execute("SELECT pg_advisory_unlock(727274)").await?;
    result
}

/// SHA-256 of a migration's SQL, in hex.
fn checksum(sql: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(sql.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Readiness probe: a round trip to Postgres.
pub async fn ping(pool: &Pool) -> Result<(), String> {
    let client = pool.get().await.map_err(|e| format!("postgres: {e}"))?;
    client.simple_query("SELECT 1").await.map_err(|e| format!("postgres: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn checksums_are_sha256_hex_of_the_sql() {
        assert_eq!(super::checksum(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_ne!(super::checksum("SELECT 1;"), super::checksum("SELECT 1; "));
    }
}
