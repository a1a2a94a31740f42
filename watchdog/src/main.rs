//! hyperwatch: the watchdog's command line. Parses flags and hands over to
//! the library's subcommands (serve, demo, certs, policy, notify, ack,
//! silence, maintenance, plan, loadgen).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hyperwatch::cli;

/// hyperwatch, the watchdog of a hypervisor cluster.
#[derive(Parser, Debug)]
#[command(name = "hyperwatch", version, about, long_about = None)]
struct Cli {
    /// Log filter (tracing env-filter syntax); RUST_LOG overrides it.
    #[arg(long, global = true, default_value = "info")]
    log_level: String,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the watchdog: agents' streams, failure detection, HTTP API.
    Serve(cli::serve::ServeArgs),
    /// Run the demo: a watchdog, this host's agent and a simulated cluster
    /// on this machine, telling one story; Ctrl-C stops it.
    Demo(cli::demo::DemoArgs),
    /// Make the cluster CA and agent/watchdog certificates.
    #[command(subcommand)]
    Certs(cli::certs::CertsCommand),
    /// Check and test recovery policies.
    #[command(subcommand)]
    Policy(cli::policy::PolicyCommand),
    /// Notification channels: send a test message through one.
    #[command(subcommand)]
    Notify(cli::notify::NotifyCommand),
    /// Acknowledge an incident: hold back its escalation.
    Ack(cli::ack::AckArgs),
    /// Silence incidents by label matchers until an expiry.
    #[command(subcommand)]
    Silence(cli::silence::SilenceCommand),
    /// Put a host in maintenance (no recovery, no notifications) or end it.
    Maintenance(cli::maintenance::MaintenanceArgs),
    /// Ask the watchdog for a VM or LUN plan; show it or carry it out.
    #[command(subcommand)]
    Plan(cli::plan::PlanCommand),
    /// Simulated agents for the ingest benchmark.
    #[command(hide = true)]
    Loadgen(cli::loadgen::LoadgenArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        None => {
            println!("{}", hyperwatch::version::describe());
            ExitCode::SUCCESS
        }
        Some(Command::Serve(args)) => cli::serve::run(args, &cli.log_level),
        Some(Command::Demo(args)) => cli::demo::run(args),
        Some(Command::Certs(c)) => cli::certs::run(c),
        Some(Command::Policy(c)) => cli::policy::run(c),
        Some(Command::Notify(c)) => cli::notify::run(c),
        Some(Command::Ack(args)) => cli::ack::run(args),
        Some(Command::Silence(c)) => cli::silence::run(c),
        Some(Command::Maintenance(args)) => cli::maintenance::run(args),
        Some(Command::Plan(c)) => cli::plan::run(c),
        Some(Command::Loadgen(args)) => cli::loadgen::run(args, &cli.log_level),
    }
}
