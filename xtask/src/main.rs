//! hyperwatch's developer commands: `cargo xtask setup|run|test|bench`.
//!
//! Layout:
//! * [`setup`]: installs what a fresh machine lacks (idempotent, fast when done).
//! * [`run`]: builds and starts the main job (the demo), or the agent alone.
//! * [`test`]: the whole test suite, as CI runs it.
//! * [`bench`]: benchmarks that print figures.
//! * [`package`]: the .deb packages (cargo-deb) and their checks.
//! * [`tools`]: setup steps beyond Debian packages (Node.js and
//!   playwright-core, cargo-deb).
//! * [`sh`]: running commands with their output visible.
//!
//! Every command but `setup` itself runs setup first.

mod bench;
mod package;
mod run;
mod setup;
mod sh;
mod test;
mod tools;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "hyperwatch developer commands")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install the toolchain pieces, system packages and bpf-linker the
    /// build and the tests need. Safe to run again; fast when all is there.
    Setup,
    /// Build and start the main job: the demo (`hyperwatch demo`: the
    /// watchdog, this host's agent and a simulated cluster telling one
    /// story). Arguments go to `hyperwatch demo` (`--forever`, `--short`,
    /// `--help`), or with `--agent` to hyperwatch-agent, started alone
    /// with its embedded default config.
    Run {
        /// Start only this host's agent, not the demo.
        #[arg(long)]
        agent: bool,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run every check CI runs: rustfmt, clippy (warnings denied) and all
    /// tests, eBPF tests included when root.
    Test {
        /// Only run tests whose name contains this filter.
        filter: Option<String>,
    },
    /// Build the .deb packages of the agent and the watchdog (release,
    /// target/debian/release/) and check them, as root also by installing
    /// them into a throwaway root.
    Package {
        /// Package the debug build instead (target/debian/dev/): a quick
        /// check of the packaging, as `cargo xtask test` runs it.
        #[arg(long)]
        dev: bool,
    },
    /// Run a benchmark and print its figures.
    Bench {
        #[command(subcommand)]
        which: bench::Bench,
    },
}

fn main() -> std::process::ExitCode {
    match dispatch(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Setup => setup::run(),
        Command::Run { agent, args } => {
            setup::run()?;
            let job = if agent {
                run::Job::Agent
            } else {
                run::Job::Demo
            };
            run::run(job, &args)
        }
        Command::Test { filter } => {
            setup::run()?;
            test::run(filter.as_deref())
        }
        Command::Package { dev } => {
            setup::run()?;
            let profile = if dev {
                package::Profile::Dev
            } else {
                package::Profile::Release
            };
            for deb in package::run(profile)? {
                println!("{}", deb.display());
            }
            Ok(())
        }
        Command::Bench { which } => {
            setup::run()?;
            bench::run(which)
        }
    }
}
