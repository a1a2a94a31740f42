//! `cargo xtask bench NAME`: benchmarks that print figures (medians of many
//! runs, ratios measured in one run), never pass/fail thresholds.
//!
//! * [`agent`]: the agent's steady-state RSS and CPU time per scrape.
//! * [`ingest`]: how many mutual-TLS agents one watchdog holds.

mod agent;
mod ingest;

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
    /// How many agents (mutual TLS, 1 Hz heartbeats, telemetry every 10 s)
    /// one watchdog holds with p99 heartbeat lag under 100 ms, with its CPU
    /// and RSS; the load generator runs on the same machine.
    Ingest {
        /// Host counts to try, in order; stops at the first not held. The
        /// last default sits just under this machine's open-files hard limit
        /// (20,000 per process), the ceiling before CPU is.
        #[arg(long, value_delimiter = ',', default_values_t = [2500, 5000, 10000, 15000, 18000])]
        steps: Vec<usize>,
        /// Seconds measured at each step.
        #[arg(long, default_value_t = 30)]
        window: u64,
    },
}

pub fn run(which: Bench) -> anyhow::Result<()> {
    match which {
        Bench::Agent { scrapes } => agent::run(scrapes),
        Bench::Ingest { steps, window } => {
            ingest::run(&steps, std::time::Duration::from_secs(window))
        }
    }
}
