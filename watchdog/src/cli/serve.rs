//! `hyperwatch serve`: runs the watchdog until SIGTERM or SIGINT.
//!
//! Exit status: 0 after a clean stop or a config that checks, 1 for an
//! invalid configuration, 3 when the watchdog cannot start.

use std::{path::PathBuf, process::ExitCode, sync::Arc};

use crate::{
    config, placement,
    runtime::{self, PolicyRuntime},
    service::Watchdog,
};

/// Bound on the last tasks' ending after the watchdog stopped serving.
const EXIT_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Flags of `hyperwatch serve`.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Configuration file (TOML); without it the embedded default is used
    /// (print it with --print-default-config).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Check the configuration, its channels, and the policies against
    /// the channels and actions it configures; then exit.
    #[arg(long)]
    pub check_config: bool,
    /// Print the embedded default configuration and exit.
    #[arg(long)]
    pub print_default_config: bool,
}

pub fn run(args: ServeArgs, log_level: &str) -> ExitCode {
    if args.print_default_config {
        print!("{}", config::DEFAULT_CONFIG);
        return ExitCode::SUCCESS;
    }
    let config = match config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hyperwatch: invalid configuration: {e}");
            return ExitCode::from(1);
        }
    };
    if args.check_config {
        let name = args
            .config
            .as_deref()
            .map_or(config::DEFAULT_CONFIG_NAME.to_owned(), |p| {
                p.display().to_string()
            });
        return match runtime::check(&config) {
            Ok(report) => {
                println!("{name}: configuration is valid");
                println!("policies: {report}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("hyperwatch: {name}: {e}");
                ExitCode::from(1)
            }
        };
    }
    super::init_logging(log_level);
    // Every agent holds a socket; the default soft limit (1024) would cap
    // the cluster far below what the watchdog handles.
    super::raise_fd_limit();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hyperwatch: cannot start the async runtime: {e}");
            return ExitCode::from(3);
        }
    };
    let result = runtime.block_on(async {
        let mut watchdog = Watchdog::bind(config.clone()).await?;
        // VM and LUN placement: policy steps, the capacity and storage
        // loops, the plans API. The policy runtime takes it as its planner
        // (failover, rebalance and move-luns steps).
        let placement = placement::attach(&config, &mut watchdog);
        let mut policies =
            PolicyRuntime::start(&config, &watchdog, Arc::new(placement.clone())).await?;
        watchdog.add_routes(policies.routes());
        // Tests and operators read where it listens from these lines.
        println!(
            "hyperwatch: cluster {} stream at {} api at http://{}/",
            watchdog.cluster, watchdog.stream_addr, watchdog.http_addr
        );
        let served = watchdog.run(super::shutdown_signal()).await;
        placement.stop();
        policies.stop().await;
        served.map_err(anyhow::Error::from)
    });
    // A task stuck in long work (the engine digesting a storm) must not
    // hold the exit: everything decided is already on disk.
    runtime.shutdown_timeout(EXIT_GRACE);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "hyperwatch failed");
            eprintln!("hyperwatch: {e:#}");
            ExitCode::from(3)
        }
    }
}
