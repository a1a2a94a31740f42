//! `cargo xtask bench NAME`: benchmarks that print figures (medians of many
//! runs, ratios measured in one run), never pass/fail thresholds.
//!
//! * [`agent`]: the agent's steady-state RSS and CPU time per scrape.
//! * [`planner`]: VM placement plans on 100 to 10,000 hosts beside a greedy
//!   one-VM-at-a-time balancer.

mod agent;
mod planner;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum Bench {
    /// The agent's RSS and CPU per scrape, with eBPF loaded (as root),
    /// beside node_exporter measured in the same run.
    Agent {
        /// Number of scrapes to take the median over.
        #[arg(long, default_value_t = 300)]
        scrapes: usize,
    },
    /// Planner time, spread, migrations and bytes copied on seeded
    /// clusters of 100, 1,000 and 10,000 hosts, beside a greedy baseline.
    Planner {
        /// Only this cluster size (hosts).
        #[arg(long)]
        hosts: Option<usize>,
    },
}

pub fn run(which: Bench) -> anyhow::Result<()> {
    match which {
        Bench::Agent { scrapes } => agent::run(scrapes),
        Bench::Planner { hosts } => planner::run(hosts),
    }
}
