//! PostgreSQL: one connection pool per process and the embedded migrations.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

/// The schema, in order. Each runs once, in its own transaction.
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "auth", include_str!("../migrations/0001_auth.sql")),
    (2, "catalog", include_str!("../migrations/0002_catalog.sql")),
    (3, "ledger", include_str!("../migrations/0003_ledger.sql")),
];

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

/// Applies every migration not yet applied. Safe to run from several
/// processes at once (an advisory lock serialises them) and again at every
/// start.
pub async fn migrate(pool: &Pool) -> anyhow::Result<usize> {
    let mut client = pool.get().await.context("connecting to Postgres to migrate")?;
    client.batch_execute("SELECT pg_advisory_lock(727274)").await?;
    let result = async {
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (
                    version INT PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
            )
            .await?;
        let mut applied = 0;
        for (version, name, sql) in MIGRATIONS {
            let done = client.query_opt("SELECT 1 FROM schema_migrations WHERE version = $1", &[version]).await?;
            if done.is_some() {
                continue;
            }
            let tx = client.transaction().await?;
            tx.batch_execute(sql).await.with_context(|| format!("migration {version} ({name})"))?;
            tx.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", &[version, name]).await?;
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

/// Readiness probe: a round trip to Postgres.
pub async fn ping(pool: &Pool) -> Result<(), String> {
    let client = pool.get().await.map_err(|e| format!("postgres: {e}"))?;
    client.simple_query("SELECT 1").await.map_err(|e| format!("postgres: {e}"))?;
    Ok(())
}
