//! `hyperwatch notify ...`: `test CHANNEL` sends a clearly marked test
//! message through the real channel and prints what each receiver
//! answered; the hidden `drill` enqueues synthetic notifications and
//! delivers them (the crash test and the benchmark drive it).
//!
//! Exit status: 0 every receiver accepted; 1 the configuration is invalid
//! or names no such channel; 2 bad usage; 3 a receiver did not accept.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use crate::{
    channels::{ChannelSet, config, test_message},
    outbox::drill,
};
use anyhow::Context;
use clap::Subcommand;

/// Where the watchdog's configuration lives by default.
const DEFAULT_CONFIG: &str = "/etc/hyperwatch/watchdog.toml";

#[derive(Subcommand, Debug)]
pub enum NotifyCommand {
    /// Send a clearly marked test message through CHANNEL (to each of its
    /// recipients) and print what the receiver answered.
    Test {
        /// The channel's name, as in `[channels.NAME]`.
        channel: String,
        /// The watchdog configuration file.
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Record COUNT synthetic notifications for CHANNEL in the store and
    /// deliver them; exits when nothing is pending.
    #[command(hide = true)]
    Drill {
        /// The watchdog configuration file.
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The store (SQLite file).
        #[arg(long)]
        store: PathBuf,
        /// The channel to deliver to.
        #[arg(long)]
        channel: String,
        /// How many notifications.
        #[arg(long, default_value_t = 20)]
        count: usize,
        /// Bound on the whole drill, in seconds.
        #[arg(long, default_value_t = 120)]
        timeout_secs: u64,
    },
}

pub fn run(command: NotifyCommand) -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hyperwatch notify: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match command {
        NotifyCommand::Test { channel, config } => {
            match runtime.block_on(test(&channel, &config)) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::from(3),
                Err(e) => {
                    eprintln!("hyperwatch notify test: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
        NotifyCommand::Drill {
            config,
            store,
            channel,
            count,
            timeout_secs,
        } => {
            let options = drill::DrillOptions {
                config,
                store,
                channel,
                count,
                timeout: Duration::from_secs(timeout_secs),
            };
            match runtime.block_on(drill::run(&options, |line| println!("{line}"))) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("hyperwatch notify drill: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

/// Sends the test message; true when every receiver accepted.
async fn test(channel: &str, path: &std::path::Path) -> anyhow::Result<bool> {
    let channels = ChannelSet::build(&config::load(path)?)
        .with_context(|| format!("building the channels of {}", path.display()))?;
    let outcomes = test_message::send(&channels, channel).await?;
    let mut all = true;
    for outcome in outcomes {
        let to = if outcome.recipient.is_empty() {
            String::new()
        } else {
            format!(" to {}", outcome.recipient)
        };
        match outcome.result {
            Ok(receipt) => {
                println!("{channel}{to}: accepted: {}", receipt.answer);
                if !receipt.detail.is_empty() {
                    println!("{}", receipt.detail);
                }
            }
            Err(e) => {
                all = false;
                println!("{channel}{to}: NOT accepted: {e}");
            }
        }
    }
    Ok(all)
}
