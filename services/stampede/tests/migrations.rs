//! The migration runner over the services' real migrations, against a real
//! Postgres: each runs once, and an applied migration whose SQL has
//! changed stops the start, named.

use stampede_common::db::{self, Migration};
use stampede_common::testkit::test_config;

/// `migrations` with the SQL of `version` edited (a comment added).
fn edited(migrations: &[Migration], version: i32) -> Vec<Migration> {
    migrations
        .iter()
        .map(|m| {
            if m.version == version {
                Migration { sql: format!("{}\n-- edited after it was applied\n", m.sql).leak(), ..*m }
            } else {
                *m
            }
        })
        .collect()
}

#[tokio::test]
async fn each_migration_runs_once_and_an_edited_one_is_refused_by_name() {
    let config = test_config(&[]).await;
    let pool = db::pool(&config.database_url, 2).expect("pool");
    let all = stampede::migrations();
    assert_eq!(db::migrate(&pool, &all).await.expect("first run"), all.len());
    assert_eq!(db::migrate(&pool, &all).await.expect("second run"), 0, "nothing runs twice");

    let err = db::migrate(&pool, &edited(&all, 2)).await.expect_err("an edited migration must be refused");
    let msg = format!("{err:#}");
    assert!(msg.contains("migration 2 (catalog) has changed"), "{msg}");

    assert_eq!(db::migrate(&pool, &all).await.expect("the unedited list still passes"), 0);
}

#[tokio::test]
async fn a_start_refuses_when_an_applied_migration_differs() {
    let config = test_config(&[]).await;
    let pool = db::pool(&config.database_url, 2).expect("pool");
    db::migrate(&pool, &stampede::migrations()).await.expect("migrate");
    // The database applied a catalog migration other than the one this
    // binary carries.
    let client = pool.get().await.expect("pg");
    client.execute("UPDATE schema_migrations SET checksum = 'f00d' WHERE version = 2", &[]).await.expect("tamper");

    let Err(err) = stampede::start(config, &["catalog".to_owned()]).await else {
        panic!("a start over a changed migration must fail")
    };
    assert!(format!("{err:#}").contains("migration 2 (catalog) has changed"), "{err:#}");
}

#[tokio::test]
async fn a_database_migrated_before_checksums_gets_them_then_refuses_edits() {
    let config = test_config(&[]).await;
    let pool = db::pool(&config.database_url, 2).expect("pool");
    let all = stampede::migrations();
    db::migrate(&pool, &all).await.expect("migrate");
    // As a database migrated by the runner without checksums looks.
    let client = pool.get().await.expect("pg");
    client.batch_execute("ALTER TABLE schema_migrations DROP COLUMN checksum").await.expect("drop column");

    assert_eq!(db::migrate(&pool, &all).await.expect("old database"), 0, "nothing re-runs");
    let missing: i64 = client
        .query_one("SELECT count(*) FROM schema_migrations WHERE checksum IS NULL", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(missing, 0, "every applied migration has its checksum now");

    let err = db::migrate(&pool, &edited(&all, 1)).await.expect_err("an edited migration must be refused");
    assert!(format!("{err:#}").contains("migration 1 (auth) has changed"), "{err:#}");
}
