//! Wiring: builds the shared stores once, then each requested role on its
//! own listener, all stopped together. Roles that keep nothing in Postgres
//! (reservation, expiry) start and serve while it is down.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, bail};
use stampede_common::config::ROLES;
use stampede_common::http::{self, Handler};
use stampede_common::token::Tokens;
use stampede_auth::AuthConfig;
use stampede_catalog::CatalogConfig;
use stampede_checkout::CheckoutConfig;
use stampede_common::{Config, db, telemetry};
use stampede_persister::PersisterConfig;
use stampede_reservation::ReservationConfig;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A running set of roles.
pub struct Running {
    addrs: BTreeMap<&'static str, SocketAddr>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Where each role listens.
    pub fn addrs(&self) -> impl Iterator<Item = (&'static str, SocketAddr)> + '_ {
        self.addrs.iter().map(|(k, v)| (*k, *v))
    }

    pub fn addr(&self, role: &str) -> SocketAddr {
        self.addrs[role]
    }

    /// Stops accepting, drains in-flight requests, stops workers.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

fn expand(roles: &[String]) -> anyhow::Result<Vec<&'static str>> {
    let mut out = Vec::new();
    for r in roles {
        if r == "all" {
            out.extend(ROLES.iter().map(|(n, _)| *n));
            continue;
        }
        let Some((name, _)) = ROLES.iter().find(|(n, _)| n == r) else {
            bail!("unknown role {r:?}; roles are {} or all", ROLES.map(|(n, _)| n).join(", "));
        };
        out.push(*name);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

async fn spawn_service<H: Handler>(
    config: &Config,
    role: &'static str,
    handler: H,
    stop: &watch::Receiver<bool>,
) -> anyhow::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = http::bind(SocketAddr::new(config.bind_host, config.port(role))).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(http::serve(listener, Arc::new(handler), http::stopped(stop.clone())));
    Ok((addr, task))
}

/// The roles that never touch Postgres: the hot path and its expiry worker
/// live in Redis alone. Any other role (and any role added later) is taken
/// to need Postgres.
const REDIS_ONLY: [&str; 2] = ["reservation", "expiry"];

/// Starts `roles` (names from [`ROLES`] or `all`) with `config`. Migrates
/// Postgres first, unless every role is Redis-only; the pool itself connects
/// on first use, so a Redis-only process never connects to Postgres at all.
pub async fn start(config: Config, roles: &[String]) -> anyhow::Result<Running> {
    let roles = expand(roles)?;
    // Every role's own settings, read from the same variables: a bad value
    // fails the start naming its variable, whichever roles run.
    let auth = AuthConfig::from_env(&config.env)?;
    let catalog = CatalogConfig::from_env(&config.env)?;
    let reservation = ReservationConfig::from_env(&config.env)?;
    let checkout = CheckoutConfig::from_env(&config.env)?;
    let persister = PersisterConfig::from_env(&config.env)?;
    telemetry::install_metrics();
    let pool = db::pool(&config.database_url, config.db_pool_size)?;
    if roles.iter().any(|r| !REDIS_ONLY.contains(r)) {
        db::migrate(&pool, &crate::migrations()).await.context("migrating at start")?;
    }
    let tokens = Arc::new(Tokens::new(&config.jwt, config.access_token_seconds));
    let redis = stampede_common::store::connect(&config.redis_url).await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut addrs = BTreeMap::new();
    let mut tasks = Vec::new();
    for role in roles {
        let (addr, task) = match role {
            "auth" => {
                let svc = stampede_auth::AuthService::build(&config, &auth, pool.clone(), tokens.clone());
                if let (Some(email), Some(password)) = (&auth.admin_email, &auth.admin_password) {
                    let passwords = stampede_auth::Passwords::from_config(&auth);
                    stampede_auth::create_admin(&pool, &passwords, email, password)
                        .await
                        .context("STAMPEDE_ADMIN_EMAIL: creating the admin")?;
                }
                spawn_service(&config, role, svc, &stop_rx).await?
            }
            "catalog" => {
                let svc = stampede_catalog::CatalogService::build(&config, &catalog, pool.clone(), redis.clone(), tokens.clone());
                spawn_service(&config, role, svc, &stop_rx).await?
            }
            "reservation" => {
                let svc = stampede_reservation::ReservationService::build(&config, &reservation, redis.clone(), tokens.clone());
                spawn_service(&config, role, svc, &stop_rx).await?
            }
            "checkout" => {
                let gateway = Arc::new(stampede_checkout::MockGateway::from_config(&checkout));
                let reconciler = stampede_checkout::ChargeReconciler::build(&config, &checkout, pool.clone(), redis.clone(), gateway.clone());
                tasks.push(tokio::spawn(Arc::new(reconciler).run(stop_rx.clone())));
                let svc = stampede_checkout::CheckoutService::build(&config, &checkout, pool.clone(), redis.clone(), tokens.clone(), gateway);
                spawn_service(&config, role, svc, &stop_rx).await?
            }
            "persister" => {
                let worker = Arc::new(stampede_persister::PersisterWorker::build(&config, &persister, pool.clone(), redis.clone()));
                tasks.push(tokio::spawn(worker.run(stop_rx.clone())));
                let endpoints = http::WorkerEndpoints::new("persister", redis.clone(), Some(pool.clone()));
                spawn_service(&config, role, endpoints, &stop_rx).await?
            }
            "notifier" => {
                let worker = Arc::new(stampede_checkout::NotifierWorker::build(&config, &checkout, pool.clone(), redis.clone()));
                tasks.push(tokio::spawn(worker.run(stop_rx.clone())));
                let endpoints = http::WorkerEndpoints::new("notifier", redis.clone(), Some(pool.clone()));
                spawn_service(&config, role, endpoints, &stop_rx).await?
            }
            "expiry" => {
                let worker = Arc::new(stampede_reservation::ExpiryWorker::build(&config, &reservation, redis.clone()));
                tasks.push(tokio::spawn(worker.run(stop_rx.clone())));
                let endpoints = http::WorkerEndpoints::new("expiry", redis.clone(), None);
                spawn_service(&config, role, endpoints, &stop_rx).await?
            }
            other => bail!("unknown role {other:?}"),
        };
        addrs.insert(role, addr);
        tasks.push(task);
    }
    Ok(Running { addrs, stop: stop_tx, tasks })
}
