//! `stampede-tokens --count N [--domain D]`: prints one access token per line
//! for the seeded users `user1@D` … `userN@D` (see `stampede admin
//! seed-users`), signed with the deployment's key. For load generators that
//! cannot afford a password hash per virtual user (the lean hold benchmark).
//! Needs `STAMPEDE_DATABASE_URL` and `STAMPEDE_JWT_SECRET` like the services.

use stampede_common::Config;
use stampede_common::token::{Role, Tokens};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let count: i64 = arg("--count").ok_or_else(|| anyhow::anyhow!("usage: stampede-tokens --count N [--domain D]"))?.parse()?;
    let domain = arg("--domain").unwrap_or_else(|| "load.test".into());
    let config = Config::from_environment()?;
    let tokens = Tokens::new(&config.jwt, config.access_token_seconds.max(3600));
    let (client, conn) = tokio_postgres::connect(&config.database_url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    let emails: Vec<String> = (1..=count).map(|n| format!("user{n}@{domain}")).collect();
    let rows = client.query("SELECT id FROM users WHERE email = ANY($1) ORDER BY id", &[&emails]).await?;
    anyhow::ensure!(rows.len() as i64 == count, "only {} of {count} users exist: run stampede admin seed-users first", rows.len());
    let mut out = String::with_capacity(rows.len() * 200);
    for row in rows {
        let id: i64 = row.get(0);
        out.push_str(&tokens.issue(&id.to_string(), Role::Customer).map_err(|p| anyhow::anyhow!(p.detail))?);
        out.push('\n');
    }
    print!("{out}");
    Ok(())
}
