//! `stampede`: parses the command line and hands over to the library.

use clap::Parser;

/// mimalloc: the hot path allocates a few small buffers per request, and
/// glibc's malloc showed as ~15 % of the reservation service's CPU.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = stampede::cli::Cli::parse();
    if let Err(e) = stampede_common::telemetry::init_tracing() {
        eprintln!("stampede: {e}");
        return std::process::ExitCode::FAILURE;
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    match std::env::var("STAMPEDE_WORKER_THREADS").ok().map(|v| v.parse::<usize>()) {
        None => {}
        Some(Ok(n)) if (1..=256).contains(&n) => {
            builder.worker_threads(n);
        }
        Some(_) => {
            eprintln!("stampede: STAMPEDE_WORKER_THREADS must be a number from 1 to 256");
            return std::process::ExitCode::FAILURE;
        }
    }
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("stampede: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(stampede::cli::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stampede: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
