//! The watchdog's subcommands, one file each.
//!
//! * [`serve`]: run the watchdog.
//! * [`demo`]: the whole system on this machine, one story.
//! * [`certs`]: make the cluster CA and certificates.
//! * [`policy`]: check policy files and run their virtual-time tests.
//! * [`notify`]: send a test message through a channel (and the hidden drill).
//! * [`loadgen`]: many simulated agents, for `cargo xtask bench ingest`.
//! * [`ack`], [`silence`], [`maintenance`]: the operators' incident
//!   commands, through the watchdog's API ([`api_client`]).
//! * [`plan`]: ask the watchdog for a rebalance, failover or LUN plan (also
//!   through [`api_client`]).

pub mod ack;
pub mod api_client;
pub mod certs;
pub mod demo;
pub mod loadgen;
pub mod maintenance;
pub mod notify;
pub mod plan;
pub mod policy;
pub mod serve;
pub mod silence;

/// Sets up structured logging to stderr.
pub fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only for a person at a terminal; journald and tests read plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
}

/// Completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing a SIGINT handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received; shutting down"),
        _ = int.recv() => tracing::info!("SIGINT received; shutting down"),
    }
}

/// Lifts the open-files limit to its hard maximum: every agent (real or
/// simulated) holds a socket.
pub fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
    {
        match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => tracing::info!(from = soft, to = hard, "raised the open-files limit"),
            Err(e) => tracing::warn!(error = %e, "cannot raise the open-files limit"),
        }
    }
}
