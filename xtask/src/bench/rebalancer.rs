//! `cargo xtask bench rebalancer`: runs the watchdog's rebalancer benchmark
//! (watchdog/benches/rebalancer.rs), which plans seeded, skewed clusters
//! and prints plan time, spread before and after and bytes moved beside a
//! smallest-LUN-first baseline measured in the same run.

use std::process::Command;

use crate::sh;

pub fn run() -> anyhow::Result<()> {
    sh::run(Command::new("cargo").current_dir(sh::root()).args([
        "bench",
        "-p",
        "hyperwatch",
        "--bench",
        "rebalancer",
    ]))
}
