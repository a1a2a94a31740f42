//! `cargo xtask bench NAME`: benchmarks that print figures (medians of many
//! runs, ratios measured in one run), never pass/fail thresholds.
//!
//! * [`agent`]: the agent's steady-state RSS and CPU time per scrape.
//! * [`rebalancer`]: LUN plan time and quality beside a Watcher-style baseline.
//! * [`ebpf`]: the kernel programs' cost per event and the agent's CPU share.
//! * [`notify`]: incident firing to SMTP acceptance, and outbox throughput.
//! * [`planner`]: VM placement plans on 100 to 10,000 hosts beside a greedy
//!   one-VM-at-a-time balancer.
//! * [`ingest`]: how many mutual-TLS agents one watchdog holds.
//! * [`policies`]: the policy engine through a failure storm, beside a
//!   baseline commit built in the same run.

mod agent;
mod ebpf;
mod ingest;
mod notify;
mod planner;
mod policies;
mod rebalancer;

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
    /// The LUN rebalancer on seeded skewed clusters (10,000 and 100,000
    /// LUNs): plan time, spread and bytes moved beside a smallest-LUN-first
    /// baseline measured in the same run.
    Rebalancer,
    /// Each eBPF program's cost per event (kernel BPF statistics) under a
    /// context-switch-heavy load, and the agent's CPU share at 1 s scrapes.
    Ebpf {
        /// Rounds with and without the agent; medians are printed.
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// Seconds per round.
        #[arg(long, default_value_t = 3)]
        seconds: u64,
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
    /// Planner time, spread, migrations and bytes copied on seeded
    /// clusters of 100, 1,000 and 10,000 hosts, beside a greedy baseline.
    Planner {
        /// Only this cluster size (hosts).
        #[arg(long)]
        hosts: Option<usize>,
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
    /// The policy engine with N hosts all failing within 1 s: time to
    /// decide everything, cost per input, snapshot size and its commit
    /// through the store (SQLite, synchronous = FULL); beside the same
    /// bench built from a baseline commit in the same run.
    Policies {
        /// Hosts in the cluster.
        #[arg(long, default_value_t = 10_000)]
        hosts: usize,
        /// The commit to compare with (default: main before the engine's
        /// host index).
        #[arg(long, default_value = policies::BASELINE)]
        baseline: String,
        /// Measure this tree only.
        #[arg(long)]
        no_baseline: bool,
    },
}

pub fn run(which: Bench) -> anyhow::Result<()> {
    match which {
        Bench::Agent { scrapes } => agent::run(scrapes),
        Bench::Rebalancer => rebalancer::run(),
        Bench::Ebpf { rounds, seconds } => ebpf::run(rounds, seconds),
        Bench::Notify {
            incidents,
            rate,
            throughput,
        } => notify::run(incidents, rate, throughput),
        Bench::Planner { hosts } => planner::run(hosts),
        Bench::Ingest { steps, window } => {
            ingest::run(&steps, std::time::Duration::from_secs(window))
        }
        Bench::Policies {
            hosts,
            baseline,
            no_baseline,
        } => policies::run(hosts, (!no_baseline).then_some(baseline.as_str())),
    }
}
