//! The command line.

use clap::{Parser, Subcommand};
use stampede_common::Config;

#[derive(Parser, Debug)]
#[command(name = "stampede", version, about = "Flash-sale ticketing: every seat sold exactly once.")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run services and workers: any of auth, catalog, reservation, checkout,
    /// persister, expiry, notifier, or `all`.
    Serve {
        #[arg(required = true)]
        roles: Vec<String>,
    },
    /// Apply the embedded Postgres migrations (also done at every `serve` of a
    /// role that uses Postgres; reservation and expiry never touch it).
    Migrate,
    /// Administrative tools.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Create an admin (or promote an existing user and reset its password).
    CreateAdmin {
        #[arg(long)]
        email: String,
        #[arg(long)]
        password: String,
    },
    /// Give an existing user a role: `customer`, `organiser` (creates and
    /// manages its own events), `gate` (checks tickets in at the doors) or
    /// `admin`. Their next access token carries it; the change is audited
    /// with no actor (the command line).
    SetRole {
        #[arg(long)]
        email: String,
        #[arg(long)]
        role: String,
    },
    /// Bulk-insert customers user1@DOMAIN … userN@DOMAIN sharing one password
    /// (load-test provisioning; existing emails are kept).
    SeedUsers {
        #[arg(long)]
        count: u32,
        #[arg(long)]
        password: String,
        #[arg(long, default_value = "load.test")]
        domain: String,
    },
    /// Check the Redis inventory against itself and Postgres (sold + held +
    /// available = capacity; Redis's sold seats = Postgres's confirmed
    /// orders). Prints a report; exits non-zero on any drift.
    Check {
        /// One event (default: every published event).
        #[arg(long)]
        event: Option<i64>,
    },
    /// Rebuild an event's Redis inventory from Postgres after Redis lost
    /// data. Never resells a sold seat; safe to run twice.
    RebuildInventory {
        #[arg(long)]
        event: i64,
    },
    /// Print the Redis Functions library the services load (`FUNCTION LOAD`
    /// takes it as it is; its first line names its version), for tools such
    /// as `redis-benchmark` that call the functions directly.
    LuaLibrary,
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Admin { command: AdminCommand::LuaLibrary } = cli.command {
        print!("{}", stampede_inventory::Scripts::load().library.code);
        return Ok(());
    }
    let config = Config::from_environment()?;
    match cli.command {
        Command::Serve { roles } => {
            let running = crate::start(config, &roles).await?;
            for (role, addr) in running.addrs() {
                tracing::info!(role, %addr, "listening");
            }
            stampede_common::http::shutdown_signal().await;
            tracing::info!("shutting down");
            running.stop().await;
            Ok(())
        }
        Command::Migrate => {
            let pool = stampede_common::db::pool(&config.database_url, 1)?;
            let n = stampede_common::db::migrate(&pool, &crate::migrations()).await?;
            println!("migrations applied: {n}");
            Ok(())
        }
        Command::Admin { command } => admin(config, command).await,
    }
}

async fn admin(config: Config, command: AdminCommand) -> anyhow::Result<()> {
    let pool = stampede_common::db::pool(&config.database_url, 2)?;
    stampede_common::db::migrate(&pool, &crate::migrations()).await?;
    let passwords = stampede_auth::Passwords::from_config(&stampede_auth::AuthConfig::from_env(&config.env)?);
    match command {
        AdminCommand::CreateAdmin { email, password } => {
            let id = stampede_auth::create_admin(&pool, &passwords, &email, &password).await?;
            println!("admin {email} has id {id}");
        }
        AdminCommand::SetRole { email, role } => {
            let role = stampede_common::token::Role::parse(&role)
                .ok_or_else(|| anyhow::anyhow!("unknown role {role:?}: customer, organiser, gate or admin"))?;
            let id = stampede_auth::set_role(&pool, &email, role).await?;
            println!("{email} (id {id}) is now {}", role.as_str());
        }
        AdminCommand::SeedUsers { count, password, domain } => {
            let n = stampede_auth::seed_users(&pool, &passwords, count, &password, &domain).await?;
            println!("seeded {n} new users (user1@{domain} … user{count}@{domain})");
        }
        AdminCommand::Check { event } => {
            let redis = stampede_common::store::connect(&config.redis_url).await?;
            let report = stampede_persister::check(&pool, &redis, &config.redis_prefix, event).await?;
            print!("{report}");
            if !report.is_clean() {
                anyhow::bail!("inventory drift: {} seats", report.drift_seats());
            }
        }
        AdminCommand::RebuildInventory { event } => {
            let redis = stampede_common::store::connect(&config.redis_url).await?;
            let r = stampede_persister::rebuild_inventory(&pool, &redis, &config.redis_prefix, event).await?;
            println!(
                "event {event} rebuilt: {} sections, {} seats and {} places sold, {} buyers",
                r.sections, r.sold_seats, r.sold_places, r.users
            );
        }
        // Printed in `run`, before any configuration or connection.
        AdminCommand::LuaLibrary => {}
    }
    Ok(())
}
