//! `cargo xtask bench notify`: incident firing to SMTP acceptance (p50,
//! p99) at a steady rate through the durable outbox, and notifications per
//! second through the outbox with each SQLite durability level, measured by
//! the watchdog's `notify` bench target against a real aiosmtpd.

use std::process::Command;

use crate::sh;

pub fn run(incidents: usize, rate: u32, throughput: usize) -> anyhow::Result<()> {
    let root = sh::root();
    sh::run(Command::new("cargo").current_dir(&root).args([
        "bench",
        "--package",
        "hyperwatch",
        "--bench",
        "notify",
        "--",
        "--incidents",
        &incidents.to_string(),
        "--rate",
        &rate.to_string(),
        "--throughput",
        &throughput.to_string(),
    ]))
}
