//! `hyperwatch serve`: runs the watchdog until SIGTERM or SIGINT.
//!
//! Exit status: 0 after a clean stop or a config that checks, 1 for an
//! invalid configuration, 3 when the watchdog cannot start.

use std::{path::PathBuf, process::ExitCode};

use crate::{config, placement, service::Watchdog};

/// Flags of `hyperwatch serve`.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Configuration file (TOML); without it the embedded default is used
    /// (print it with --print-default-config).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Check the configuration and exit.
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
        println!("{name}: configuration is valid");
        return ExitCode::SUCCESS;
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
        // loops, the plans API. The policy runtime takes `placement` as
        // its planner.
        let placement = placement::attach(&config, &mut watchdog);
        // Tests and operators read where it listens from these lines.
        println!(
            "hyperwatch: cluster {} stream at {} api at http://{}/",
            watchdog.cluster, watchdog.stream_addr, watchdog.http_addr
        );
        let served = watchdog.run(super::shutdown_signal()).await;
        placement.stop();
        served
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "hyperwatch failed");
            eprintln!("hyperwatch: {e}");
            ExitCode::from(3)
        }
    }
}
