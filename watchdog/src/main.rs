//! hyperwatch: the watchdog's command line. Subcommands arrive with their
//! issues (serve, certs, policy, ack, notify).

use clap::Parser;

/// hyperwatch, the watchdog of a hypervisor cluster.
#[derive(Parser, Debug)]
#[command(name = "hyperwatch", version, about, long_about = None)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
    println!("{}", hyperwatch::version::describe());
}
