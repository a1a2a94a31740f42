//! `hyperwatch loadgen` (hidden): many simulated agents for the ingest
//! benchmark. Placeholder until the benchmark lands.

/// Flags of `hyperwatch loadgen`.
#[derive(clap::Args, Debug)]
pub struct LoadgenArgs {}

pub fn run(_args: LoadgenArgs, _log_level: &str) -> std::process::ExitCode {
    std::process::ExitCode::from(2)
}
