//! `cargo xtask bench NAME`: benchmarks that print figures (medians of many
//! runs, ratios measured in one run), never pass/fail thresholds.
//!
//! * [`agent`]: the agent's steady-state RSS and CPU time per scrape.
//! * [`notify`]: incident firing to SMTP acceptance, and outbox throughput.

mod agent;
mod notify;

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
    /// Incident firing to SMTP acceptance (p50, p99) through the durable
    /// outbox at a steady rate, and notifications per second through the
    /// outbox with each durability level.
    Notify {
        /// Number of incidents fired for the latency figures.
        #[arg(long, default_value_t = 1000)]
        incidents: usize,
        /// Incidents fired per second.
        #[arg(long, default_value_t = 100)]
        rate: u32,
        /// Number of notifications for the throughput figures.
        #[arg(long, default_value_t = 2000)]
        throughput: usize,
    },
}

pub fn run(which: Bench) -> anyhow::Result<()> {
    match which {
        Bench::Agent { scrapes } => agent::run(scrapes),
        Bench::Notify {
            incidents,
            rate,
            throughput,
        } => notify::run(incidents, rate, throughput),
    }
}
