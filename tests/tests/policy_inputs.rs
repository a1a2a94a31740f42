//! What agents report reaches the shipped policies, with real processes.
//!
//! * Storage: a watchdog running storage-latency (as shipped) and
//!   storage-capacity (its ten-minute windows cut to a second, nothing else
//!   changed), and a simulated storage host (`hyperwatch-agent
//!   --simulate`) whose device is slow and fills up. The device's fill and
//!   mean IO latency reach the policies from the agent's telemetry, under
//!   the storage-device target the inventory announced, and both policies
//!   open incidents on it.
//! * eBPF: of two real agents, the one configured without eBPF raises
//!   nothing; the one that wants eBPF and cannot load it (its tracefs
//!   mount point is missing) has ebpf-unavailable open on its host.

use std::{path::Path, time::Duration};

use hyperwatch_tests::{
    runtime::{ConsoleFile, find_incident, unused_email_and_sms, wait_until, write_policy},
    sim::start_simulated,
    watchdog::{
        ClusterCerts, HEALTHY_WITHIN, WatchdogProcess, agent_config, start_agent,
        wanting_ebpf_that_fails, watchdog_config,
    },
};

/// Bound on both incidents: the host connects (a second or two), fills for
/// 3 s and has 4 slow summaries of 5 at 1 s; generous for a loaded CI
/// machine.
const FIRES_WITHIN: Duration = Duration::from_secs(40);
/// The storage device as a policy target.
const DEVICE: &str = "storage-device:st-a/d1";

/// d1: 80 ms per IO (over storage-latency's 50 ms) and 70 % full; from 1 s
/// to 4 s a backup writes 6 GiB/s to it: 88 % (over storage-capacity's
/// 85 %). The inventory, sent at connection, still says 70 %.
const STORAGE_HOST: &str = r#"
[host]
name = "st-a"
kind = "storage"
cores = 4
memory = "8 GiB"
tick = 0.2

[[devices]]
id = "d1"
group = "fast"
capacity = "100 GiB"
used = "70 GiB"
iops = 500.0
latency_ms = 80.0

[[phases]]
at = "1s"
device = "d1"
fill_per_second = "6 GiB"
say = "a backup starts writing to d1"

[[phases]]
at = "4s"
device = "d1"
fill_per_second = 0
say = "the backup is done"
"#;

/// A shipped policy's text.
fn shipped(name: &str) -> anyhow::Result<String> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../policies/default/{name}.toml"));
    Ok(std::fs::read_to_string(path)?)
}

#[test]
fn a_slow_filling_device_opens_storage_latency_and_storage_capacity() -> anyhow::Result<()> {
    let certs = ClusterCerts::new("e2e")?;
    let dir = certs.dir.path();
    let policies = dir.join("policies");
    write_policy(&policies, "storage-latency", &shipped("storage-latency")?)?;
    let capacity = shipped("storage-capacity")?;
    anyhow::ensure!(
        capacity.contains("for = \"10m\""),
        "storage-capacity changed: {capacity}"
    );
    write_policy(
        &policies,
        "storage-capacity",
        &capacity.replace("for = \"10m\"", "for = \"1s\""),
    )?;
    let console = ConsoleFile::new(dir)?;
    let extra = format!(
        "\n[policies]\ndir = \"{}\"\n\n{}\n{}",
        policies.display(),
        console.channel(),
        unused_email_and_sms()
    );
    let watchdog = WatchdogProcess::start(dir, &watchdog_config(&certs, 0, &extra))?;
    let _agent = start_simulated(&certs, watchdog.stream_addr, "st-a", STORAGE_HOST)?;

    for policy in ["storage-latency", "storage-capacity"] {
        wait_until(&format!("{policy} on {DEVICE}"), FIRES_WITHIN, || {
            find_incident(&watchdog, policy, DEVICE)
        })?;
    }
    let latency = find_incident(&watchdog, "storage-latency", DEVICE)?
        .ok_or_else(|| anyhow::anyhow!("storage-latency vanished"))?;
    assert_eq!(
        latency["summary"], "storage device d1 on st-a: mean IO latency over 50 ms",
        "{latency}"
    );
    Ok(())
}

#[test]
fn only_an_agent_that_wants_ebpf_and_lacks_it_raises_ebpf_unavailable() -> anyhow::Result<()> {
    let certs = ClusterCerts::new("e2e")?;
    let dir = certs.dir.path();
    // The shipped policies, built into the binary.
    let watchdog = WatchdogProcess::start(dir, &watchdog_config(&certs, 0, ""))?;
    let mut agents = Vec::new();
    for host in ["hv-off", "hv-want"] {
        certs.agent(host)?;
        let config = agent_config(&certs, watchdog.stream_addr, host, host, "");
        let config = if host == "hv-want" {
            wanting_ebpf_that_fails(&config, &dir.join("no-tracefs"))
        } else {
            config
        };
        agents.push(start_agent(dir, host, &config)?);
        watchdog.wait_for(&format!("{host} connected"), HEALTHY_WITHIN, |w| {
            Ok(w.host(host)?.filter(|h| h["connected"] == true))
        })?;
    }
    // hv-off's hello came first: the engine has seen it when hv-want's
    // incident opens.
    wait_until("ebpf-unavailable on host:hv-want", FIRES_WITHIN, || {
        find_incident(&watchdog, "ebpf-unavailable", "host:hv-want")
    })?;
    assert_eq!(
        find_incident(&watchdog, "ebpf-unavailable", "host:hv-off")?,
        None,
        "an agent without eBPF by its configuration is not a failure"
    );
    Ok(())
}
