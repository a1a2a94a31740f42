//! `cargo xtask bench planner`: runs the planner benchmark
//! (watchdog/benches/planner), which prints its own figures: plan time,
//! spread before and after, migrations and bytes copied per cluster size,
//! beside two baselines measured in the same run (OpenStack Watcher's
//! workload_stabilization as its code does it, and a stronger global
//! greedy).

use std::process::Command;

use crate::sh;

pub fn run(hosts: Option<usize>) -> anyhow::Result<()> {
    let mut cargo = Command::new("cargo");
    cargo
        .current_dir(sh::root())
        .args(["bench", "-p", "hyperwatch", "--bench", "planner", "--"]);
    if let Some(hosts) = hosts {
        cargo.arg(hosts.to_string());
    }
    sh::run(&mut cargo)
}
