//! `hyperwatch policy check DIR` and `hyperwatch policy test FILE...`: thin
//! over the policies library's checker and virtual-time test runner.
//!
//! Exit status: 0 all good; 1 a policy does not check or a test fails.

use std::{path::PathBuf, process::ExitCode};

use clap::Subcommand;
use hyperwatch_policies::{CheckOptions, check_dir, test_file};

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
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

pub fn run(command: PolicyCommand) -> ExitCode {
    match command {
        PolicyCommand::Check {
            dir,
            channels,
            actions,
        } => {
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
        PolicyCommand::Test { files } => {
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
    }
}
