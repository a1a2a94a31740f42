//! hyperwatch: the watchdog's command line. Subcommands arrive with their
//! issues (serve, certs, policy, ack, notify).

mod notify_cli;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// hyperwatch, the watchdog of a hypervisor cluster.
#[derive(Parser, Debug)]
#[command(name = "hyperwatch", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Notification channels: send a test message through one.
    #[command(subcommand)]
    Notify(notify_cli::NotifyCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        None => {
            println!("{}", hyperwatch::version::describe());
            ExitCode::SUCCESS
        }
        Some(Command::Notify(command)) => notify_cli::run(command),
    }
}
