//! A planned agent stop is not a host failure, end to end with real
//! processes: a `hyperwatch serve` running the shipped heartbeat-lost
//! policy (its grouping wait shortened, nothing else changed) and two
//! simulated hypervisors. SIGTERM to one agent (`systemctl stop`): it says
//! goodbye, its host is `stopped` at once and stays so well past the
//! detector's hard timeout; no incident, no failover plan, its VMs are not
//! restarted elsewhere. Started again it is healthy; SIGKILLed (no goodbye)
//! it is failed, as before.

use std::time::{Duration, Instant};

use anyhow::Context;
use hyperwatch_tests::{
    runtime::{ConsoleFile, find_incident, heartbeat_lost_watchdog},
    sim::{SPARE_HYPERVISOR, start_simulated},
    watchdog::{ClusterCerts, HEALTHY_WITHIN, WatchdogProcess},
};

/// Bound on the host showing `stopped` after the SIGTERM: the goodbye is
/// the agent's last message, sent at once (its own bound is 1 s); slack
/// for a loaded machine.
const STOPPED_WITHIN: Duration = Duration::from_secs(5);
/// How long the stopped host is watched: twice the detector's 3 s hard
/// timeout plus the policy's 1 s grouping wait, so a failure verdict, its
/// incident and a failover plan would all have shown by then.
const WATCHED_FOR: Duration = Duration::from_secs(7);
/// Bound on a SIGKILLed agent's host being failed (3 s detection; slack).
const FAILED_WITHIN: Duration = Duration::from_secs(10);

/// The host whose agent is stopped: two running VMs, which fit on hv-2, so
/// a (wrong) failover would have somewhere to put them.
const HV_1: &str = r#"
[host]
name = "hv-1"
kind = "hypervisor"
cores = 8
memory = "64 GiB"
tick = 0.2
copy_per_second = "8 GiB"

[[vms]]
name = "app-1"
vcpus = 2
memory = "4 GiB"
cpu_cores = 1.0

[[vms]]
name = "app-2"
vcpus = 2
memory = "4 GiB"
cpu_cores = 0.5
"#;

/// The VMs `host`'s inventory lists.
fn vms(w: &WatchdogProcess, host: &str) -> anyhow::Result<Vec<String>> {
    let h = w.host(host)?.context("host known")?;
    Ok(h["inventory"]["vms"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["name"].as_str().map(str::to_owned))
        .collect())
}

fn healthy(w: &WatchdogProcess, host: &str) -> anyhow::Result<()> {
    w.wait_for(&format!("{host} healthy"), HEALTHY_WITHIN, |w| {
        Ok(w.host(host)?
            .filter(|h| h["state"] == "healthy" && h["heartbeats"].as_u64() >= Some(3))
            .map(|_| ()))
    })
}

#[test]
fn a_stopped_agent_is_stopped_not_failed_and_its_vms_stay() -> anyhow::Result<()> {
    let certs = ClusterCerts::new("e2e")?;
    let dir = certs.dir.path();
    let console = ConsoleFile::new(dir)?;
    let mut watchdog = heartbeat_lost_watchdog(&certs, &console)?;
    let mut hv1 = start_simulated(&certs, watchdog.stream_addr, "hv-1", HV_1)?;
    let _hv2 = start_simulated(&certs, watchdog.stream_addr, "hv-2", SPARE_HYPERVISOR)?;
    for host in ["hv-1", "hv-2"] {
        healthy(&watchdog, host)?;
    }
    let on_hv2 = vms(&watchdog, "hv-2")?;
    assert_eq!(vms(&watchdog, "hv-1")?, ["app-1", "app-2"]);

    // `systemctl stop hyperwatch-agent`.
    let stopped_at = Instant::now();
    let status = hv1.terminate()?;
    assert!(status.success(), "clean stop: {status}");
    let log = hv1.log().join("\n");
    assert!(
        log.contains("said goodbye to the watchdog"),
        "the watchdog confirmed the goodbye:\n{log}"
    );
    watchdog.wait_for("hv-1 stopped", STOPPED_WITHIN, |w| {
        Ok((w.state("hv-1")?.as_deref() == Some("stopped")).then_some(()))
    })?;
    eprintln!("stopped after {:?}", stopped_at.elapsed());

    // Well past the hard timeout it is still stopped, never anything else.
    while stopped_at.elapsed() < WATCHED_FOR {
        let state = watchdog.state("hv-1")?;
        assert_eq!(
            state.as_deref(),
            Some("stopped"),
            "{:?} after the SIGTERM",
            stopped_at.elapsed()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let host = watchdog.host("hv-1")?.context("hv-1 known")?;
    assert_eq!(host["connected"], false, "{host}");
    assert_eq!(
        watchdog.metric("hyperwatch_hosts{state=\"stopped\"}")?,
        Some(1.0)
    );
    assert_eq!(
        watchdog.metric("hyperwatch_host_state_changes_total{state=\"failed\"}")?,
        None,
        "nothing failed"
    );
    let status = watchdog.get_json("/api/v1/status")?;
    assert_eq!(status["counts"]["stopped"], 1, "{}", status["counts"]);
    assert_eq!(
        find_incident(&watchdog, "heartbeat-lost", "host:hv-1")?,
        None,
        "no heartbeat-lost incident for a planned stop"
    );
    let plans = watchdog.get_json("/api/v1/plans")?;
    assert!(
        plans["plans"].as_array().is_none_or(|p| p.is_empty()),
        "no plan made: {plans}"
    );
    assert_eq!(
        vms(&watchdog, "hv-2")?,
        on_hv2,
        "hv-1's VMs were not restarted elsewhere"
    );
    assert_eq!(
        vms(&watchdog, "hv-1")?,
        ["app-1", "app-2"],
        "the stopped host keeps its last inventory"
    );
    watchdog.wait_log(
        "the goodbye logged with its reason",
        Duration::from_secs(5),
        |l| l.contains("agent said goodbye") && l.contains("agent stopping"),
    )?;

    // Started again: healthy at once, no recovery period.
    drop(hv1);
    let mut hv1 = start_simulated(&certs, watchdog.stream_addr, "hv-1", HV_1)?;
    healthy(&watchdog, "hv-1")?;

    // A crash says nothing: that is still a failure.
    hv1.kill()?;
    watchdog.wait_for("hv-1 failed after SIGKILL", FAILED_WITHIN, |w| {
        Ok((w.state("hv-1")?.as_deref() == Some("failed")).then_some(()))
    })?;
    Ok(())
}
