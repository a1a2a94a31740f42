//! hyperwatch-agent: parses the command line, loads the configuration, sets
//! up logging and runs the agent until SIGTERM or SIGINT.
//!
//! Exit status: 0 after a clean stop or a config that checks, 1 when the
//! configuration (or the scenario) is invalid, 2 for bad command-line
//! usage, 3 when the agent cannot start (for example, the port is taken),
//! 4 when a simulated host crashes as its scenario says.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

use clap::{Arg, ArgAction, ArgMatches, CommandFactory, FromArgMatches, Parser};
use hyperwatch_agent::{
    collectors::COLLECTORS,
    config,
    sim::{self, scenario::Scenario},
};

/// hyperwatch-agent measures this host (CPU, memory, disks, network, through
/// procfs and eBPF) and serves the figures at /metrics for Prometheus.
#[derive(Parser, Debug)]
#[command(name = "hyperwatch-agent", version, about, long_about = None)]
struct Cli {
    /// Configuration file (TOML). Without it the embedded default is used;
    /// print that with --print-default-config.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Check the configuration and exit: 0 when it is valid, 1 with the
    /// file, line and column of the first error otherwise.
    #[arg(long)]
    check_config: bool,

    /// Print the embedded default configuration and exit.
    #[arg(long)]
    print_default_config: bool,

    /// Listen address for /metrics, overriding [http] listen.
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<SocketAddr>,

    /// Simulate the host a scenario file describes (VMs or storage, timed
    /// phases) instead of measuring this one; [stream] and [http] of the
    /// configuration apply as usual. See agent/sim/*.toml.
    #[arg(long, value_name = "SCENARIO")]
    simulate: Option<PathBuf>,

    /// Log filter (tracing env-filter syntax), e.g. `info` or
    /// `hyperwatch_agent=debug`. RUST_LOG overrides it.
    #[arg(long, default_value = "info")]
    log_level: String,
}

fn main() -> ExitCode {
    let mut command = Cli::command();
    for (name, help) in COLLECTORS {
        command = command
            .arg(
                Arg::new(format!("collector.{name}"))
                    .long(format!("collector.{name}"))
                    .action(ArgAction::SetTrue)
                    .help(format!("Enable the {name} collector: {help}"))
                    .conflicts_with(format!("no-collector.{name}")),
            )
            .arg(
                Arg::new(format!("no-collector.{name}"))
                    .long(format!("no-collector.{name}"))
                    .action(ArgAction::SetTrue)
                    .help(format!("Disable the {name} collector")),
            );
    }
    let matches = command.get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());

    if cli.print_default_config {
        print!("{}", config::DEFAULT_CONFIG);
        return ExitCode::SUCCESS;
    }

    let mut config = match config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hyperwatch-agent: invalid configuration: {e}");
            return ExitCode::from(1);
        }
    };
    apply_collector_flags(&mut config, &matches);
    if let Some(listen) = cli.listen {
        config.http.listen = listen;
    }
    let scenario = match cli.simulate.as_deref().map(Scenario::load).transpose() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("hyperwatch-agent: invalid scenario: {e}");
            return ExitCode::from(1);
        }
    };
    if cli.check_config {
        if let Some(path) = &cli.simulate {
            println!("{}: scenario is valid", path.display());
        }
        let name = cli
            .config
            .as_deref()
            .map_or(config::DEFAULT_CONFIG_NAME.to_owned(), |p| {
                p.display().to_string()
            });
        println!("{name}: configuration is valid");
        return ExitCode::SUCCESS;
    }

    init_logging(&cli.log_level);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hyperwatch-agent: cannot start the async runtime: {e}");
            return ExitCode::from(3);
        }
    };
    // Signal handlers are installed before anything starts, so a SIGTERM that
    // arrives during start-up still gets the clean shutdown.
    let result = runtime.block_on(async {
        let shutdown = shutdown_signal();
        match scenario {
            Some(scenario) => sim::run(config, scenario, shutdown).await,
            None => hyperwatch_agent::run(config, shutdown).await,
        }
    });
    match result {
        Ok(()) => {
            tracing::info!("hyperwatch-agent stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "hyperwatch-agent failed");
            eprintln!("hyperwatch-agent: {e}");
            ExitCode::from(3)
        }
    }
}

/// --collector.NAME / --no-collector.NAME override the file's switches.
fn apply_collector_flags(config: &mut config::Config, matches: &ArgMatches) {
    for (name, _) in COLLECTORS {
        let enabled = config
            .collectors
            .enabled_mut(name)
            .expect("every listed collector has a switch");
        if matches.get_flag(&format!("collector.{name}")) {
            *enabled = true;
        }
        if matches.get_flag(&format!("no-collector.{name}")) {
            *enabled = false;
        }
    }
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Installs the SIGTERM and SIGINT handlers now and returns a future that
/// completes when either arrives. Must be called inside the runtime.
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing a SIGINT handler");
    async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received; shutting down"),
            _ = int.recv() => tracing::info!("SIGINT received; shutting down"),
        }
    }
}
