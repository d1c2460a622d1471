//! The auth service: `/api/auth/*`.
//!
//! Passwords are argon2id hashes (cost from configuration). Access tokens are
//! short-lived JWTs (see `stampede_common::token`); refresh tokens are opaque
//! 256-bit secrets stored only as SHA-256 hashes, rotated on every use. A
//! sign-in starts a *family*; presenting a refresh token that was already
//! spent revokes the whole family, so a stolen token dies with its copy.
//!
//! Accounts verify their e-mail address and reset a forgotten password with
//! single-use tokens sent by e-mail (`account_tokens`, `emails`; delivery by
//! `stampede_common::mail`, over SMTP or into the mail directory); a reset
//! revokes every family of the user, a password change every family but
//! the caller's own.

mod account_tokens;
mod config;
mod emails;
mod passwords;
mod refresh;
mod routes;

use std::sync::Arc;

use deadpool_postgres::Pool;
use hyper::Request;
use hyper::body::Incoming;
use stampede_common::Config;
use stampede_common::http::{Handler, Routed};
use stampede_common::mail::Mailer;
use stampede_common::token::{Role, Tokens};

pub use config::{AuthConfig, MIGRATIONS};
pub use passwords::Passwords;

/// The auth service's state.
pub struct AuthService {
    db: Pool,
    tokens: Arc<Tokens>,
    passwords: Passwords,
    refresh_ttl_seconds: i64,
    max_body: usize,
    mailer: Arc<Mailer>,
    account: AccountSettings,
}

/// The account e-mails' settings (from `AuthConfig`).
struct AccountSettings {
    verify_token_seconds: i64,
    reset_token_seconds: i64,
    emails_per_hour: i64,
    public_url: String,
}

impl AuthService {
    pub fn build(config: &Config, auth: &AuthConfig, db: Pool, tokens: Arc<Tokens>) -> Self {
        metrics::describe_counter!("auth_signups_total", metrics::Unit::Count, "Accounts created.");
        metrics::describe_counter!("auth_signins_total", metrics::Unit::Count, "Sign-in attempts by outcome (ok, failed).");
        metrics::describe_counter!(
            "auth_account_events_total",
            metrics::Unit::Count,
            "Account changes by event (email_verified, password_reset, password_changed)."
        );
        Self {
            db,
            tokens,
            passwords: Passwords::from_config(auth),
            refresh_ttl_seconds: auth.refresh_token_seconds,
            max_body: config.max_body_bytes,
            mailer: Arc::new(Mailer::new(&auth.mail)),
            account: AccountSettings {
                verify_token_seconds: auth.verify_token_seconds,
                reset_token_seconds: auth.reset_token_seconds,
                emails_per_hour: auth.account_emails_per_hour,
                public_url: auth.public_url.clone(),
            },
        }
    }
}

impl Handler for AuthService {
    fn name(&self) -> &'static str {
        "auth"
    }

    async fn handle(&self, req: Request<Incoming>) -> Routed {
        routes::route(self, req).await
    }

    async fn ready(&self) -> Result<(), String> {
        stampede_common::db::ping(&self.db).await
    }
}

/// Creates the admin `email` with `password`, or, if the email exists, makes
/// that user an admin with this password. Used by `stampede admin
/// create-admin` and at start from `STAMPEDE_ADMIN_EMAIL`/`_PASSWORD`.
pub async fn create_admin(db: &Pool, passwords: &Passwords, email: &str, password: &str) -> anyhow::Result<String> {
    let email = routes::normalize_email(email).map_err(|p| anyhow::anyhow!(p.detail))?;
    routes::check_password(password).map_err(|p| anyhow::anyhow!(p.detail))?;
    let hash = passwords.hash(password).await?;
    let client = db.get().await?;
    let row = client
        .query_one(
            "INSERT INTO users (email, password_hash, role) VALUES ($1, $2, $3)
             ON CONFLICT (email) DO UPDATE SET password_hash = EXCLUDED.password_hash, role = EXCLUDED.role
             RETURNING id",
            &[&email, &hash, &Role::Admin.as_str()],
        )
        .await?;
    Ok(row.get::<_, i64>(0).to_string())
}

/// Gives an existing user a role (`stampede admin set-role`); the user's
/// next access token carries it. Audited with no actor (the command line).
/// Returns the user's id.
pub async fn set_role(db: &Pool, email: &str, role: Role) -> anyhow::Result<String> {
    let email = routes::normalize_email(email).map_err(|p| anyhow::anyhow!(p.detail))?;
    let mut client = db.get().await?;
    let tx = client.transaction().await?;
    let row = tx.query_opt("SELECT id, role FROM users WHERE email = $1 FOR UPDATE", &[&email]).await?;
    let row = row.ok_or_else(|| anyhow::anyhow!("no user with the e-mail {email}"))?;
    let (id, before): (i64, String) = (row.get(0), row.get(1));
    tx.execute("UPDATE users SET role = $2 WHERE id = $1", &[&id, &role.as_str()]).await?;
    let target = format!("user:{id}");
    let details = serde_json::json!({ "before": { "role": before }, "after": { "role": role.as_str() }, "via": "cli" });
    let entry = stampede_common::audit::Entry { actor: None, action: "user.role", target: &target, event: None, details };
    stampede_common::audit::record(&tx, &entry).await?;
    tx.commit().await?;
    Ok(id.to_string())
}

/// Inserts `count` customers `<prefix><n>@<domain>` sharing one password,
/// hashed once: provisioning for load tests without a hashing bottleneck.
/// Existing emails are left alone. Returns how many were inserted.
pub async fn seed_users(db: &Pool, passwords: &Passwords, count: u32, password: &str, domain: &str) -> anyhow::Result<u64> {
    routes::check_password(password).map_err(|p| anyhow::anyhow!(p.detail))?;
    let hash = passwords.hash(password).await?;
    let client = db.get().await?;
    let n = client
        .execute(
            "INSERT INTO users (email, password_hash)
             SELECT 'user' || g || '@' || $3, $2 FROM generate_series(1, $1::int) AS g
             ON CONFLICT (email) DO NOTHING",
            &[&(count as i32), &hash, &domain],
        )
        .await?;
    Ok(n)
}
