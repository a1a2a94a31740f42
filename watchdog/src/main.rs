//! hyperwatch: the watchdog's command line. Subcommands arrive with their
//! issues (serve, certs, ack, notify); `policy check` and `policy test` are
//! here, thin over the policies library.

mod notify_cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hyperwatch_policies::{CheckOptions, check_dir, test_file};

/// hyperwatch, the watchdog of a hypervisor cluster.
#[derive(Parser, Debug)]
#[command(name = "hyperwatch", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check and test recovery policies.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Notification channels: send a test message through one.
    #[command(subcommand)]
    Notify(notify_cli::NotifyCommand),
}

#[derive(Subcommand, Debug)]
enum PolicyCommand {
    /// Check every policy file (*.toml but *.test.toml) in DIR. Errors name
    /// file, line and column. Exit status 1 on any error.
    Check {
        /// The policy directory.
        dir: PathBuf,
        /// Channel names the watchdog has configured (comma-separated);
        /// without it channel names are not checked.
        #[arg(long, value_delimiter = ',')]
        channels: Option<Vec<String>>,
        /// Agent action names the agents allow (comma-separated); without it
        /// action names are not checked.
        #[arg(long, value_delimiter = ',')]
        actions: Option<Vec<String>>,
    },
    /// Run policy test files in virtual time. Exit status 1 if a file does
    /// not check or a test fails.
    Test {
        /// Test files (*.test.toml).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        None => {
            println!("{}", hyperwatch::version::describe());
            ExitCode::SUCCESS
        }
        Some(Command::Policy {
            command:
                PolicyCommand::Check {
                    dir,
                    channels,
                    actions,
                },
        }) => {
            let opts = CheckOptions {
                channels: channels.map(|c| c.into_iter().collect()),
                actions: actions.map(|a| a.into_iter().collect()),
            };
            let report = check_dir(&dir, &opts);
            if report.is_ok() {
                println!("{report}");
                ExitCode::SUCCESS
            } else {
                eprintln!("{report}");
                ExitCode::FAILURE
            }
        }
        Some(Command::Policy {
            command: PolicyCommand::Test { files },
        }) => {
            let mut passed = true;
            for f in &files {
                let report = test_file(f);
                passed &= report.passed();
                println!("{report}\n");
            }
            if passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Some(Command::Notify(command)) => notify_cli::run(command),
    }
}
