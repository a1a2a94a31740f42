//! The shipped heartbeat-lost policy end to end, with real processes: a
//! `hyperwatch serve` running it (its grouping wait shortened, nothing
//! else changed) and two simulated hypervisors. One is SIGKILLed: the
//! detector declares it failed, the policy's failover step has the
//! placement service restart its VMs on the other host through the agents'
//! actions, and the step's success is the incident's recovery. The host
//! comes back repaired (empty): the incident resolves.

use std::time::Duration;

use anyhow::Context;
use hyperwatch_tests::{
    runtime::{ConsoleFile, heartbeat_lost_watchdog, timeline, wait_new_incident, wait_status},
    sim::{SPARE_HYPERVISOR, start_simulated},
    watchdog::{ClusterCerts, HEALTHY_WITHIN, WatchdogProcess},
};
use serde_json::Value;

/// Bound on detection (3 s), the policy's grouping wait (1 s), the plan and
/// two simulated restarts (a second each), on a loaded machine.
const FAILED_OVER_WITHIN: Duration = Duration::from_secs(60);
/// Bound on the repaired host's reconnection and its incident resolving.
const RESOLVES_WITHIN: Duration = Duration::from_secs(40);

/// The host that dies: two VMs that fit on hv-2.
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
priority = 5

[[vms]]
name = "app-2"
vcpus = 2
memory = "4 GiB"
cpu_cores = 0.5
"#;

/// hv-1 after its repair: back, running nothing.
const HV_1_REPAIRED: &str = r#"
[host]
name = "hv-1"
kind = "hypervisor"
cores = 8
memory = "64 GiB"
tick = 0.2
"#;

/// The VMs `host`'s inventory lists as running.
fn running(w: &WatchdogProcess, host: &str) -> anyhow::Result<Vec<String>> {
    let h = w.host(host)?.context("host known")?;
    Ok(h["inventory"]["vms"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["state"] == "running")
        .filter_map(|v| v["name"].as_str().map(str::to_owned))
        .collect())
}

#[test]
fn a_killed_hypervisors_vms_are_failed_over_by_the_shipped_policy_and_the_incident_resolves()
-> anyhow::Result<()> {
    let certs = ClusterCerts::new("e2e")?;
    let dir = certs.dir.path();
    let console = ConsoleFile::new(dir)?;
    let mut watchdog = heartbeat_lost_watchdog(&certs, &console)?;
    let mut hv1 = start_simulated(&certs, watchdog.stream_addr, "hv-1", HV_1)?;
    let _hv2 = start_simulated(&certs, watchdog.stream_addr, "hv-2", SPARE_HYPERVISOR)?;
    for host in ["hv-1", "hv-2"] {
        watchdog.wait_for(&format!("{host} healthy"), HEALTHY_WITHIN, |w| {
            Ok(w.host(host)?
                .filter(|h| h["state"] == "healthy" && h["heartbeats"].as_u64() >= Some(3)))
        })?;
    }
    assert_eq!(running(&watchdog, "hv-1")?, ["app-1", "app-2"]);

    hv1.kill()?;
    const TARGET: &str = "host:hv-1";
    let id = wait_new_incident(
        &watchdog,
        "heartbeat-lost",
        TARGET,
        None,
        FAILED_OVER_WITHIN,
    )?;
    let moved = watchdog.wait_for("app-1 and app-2 on hv-2", FAILED_OVER_WITHIN, |w| {
        let on = running(w, "hv-2")?;
        Ok(["app-1", "app-2"]
            .iter()
            .all(|vm| on.iter().any(|v| v == vm))
            .then_some(on))
    });
    let lines = timeline(&watchdog, &id)?;
    if let Err(e) = moved {
        eprintln!(
            "{id}: {lines:#?}\nwatchdog log:\n{}",
            watchdog.log().join("\n")
        );
        return Err(e);
    }
    watchdog.wait_for("the failover step's success", FAILED_OVER_WITHIN, |w| {
        let lines = timeline(w, &id)?;
        Ok(lines
            .iter()
            .any(|l| l == &format!("{id} failover on {TARGET} succeeded"))
            .then_some(()))
    })?;
    let lines = timeline(&watchdog, &id)?;
    for want in [
        format!("{id} firing: heartbeat-lost on {TARGET}"),
        format!("{id} run failover on {TARGET} (step 1, attempt 1 of 1)"),
    ] {
        assert!(lines.contains(&want), "no {want:?} in {lines:#?}");
    }
    // The plan the step made, carried out by restarts on hv-2.
    let plans = watchdog.get_json("/api/v1/plans")?;
    let plan = plans["plans"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["kind"] == "failover" && p["target"] == "hv-1")
        .cloned()
        .with_context(|| format!("a failover plan for hv-1 in {plans}"))?;
    assert_eq!(plan["trigger"], "policy", "{plan}");
    assert_eq!(plan["state"], "done", "{plan}");
    let moves: Vec<&Value> = plan["moves"].as_array().into_iter().flatten().collect();
    assert_eq!(moves.len(), 2, "{plan}");
    assert!(
        moves
            .iter()
            .all(|m| m["to"] == "hv-2" && m["how"] == "restart"),
        "{plan}"
    );
    assert_eq!(
        watchdog.metric("hyperwatch_placement_plans_total{mode=\"failover\",outcome=\"done\"}")?,
        Some(1.0)
    );
    assert!(
        console.with_key(&format!("{id}:L1:problem"))?.is_empty(),
        "a failover that worked escalates to nobody at once: {:?}",
        console.lines()?
    );

    // Repaired, hv-1 comes back empty: the condition clears.
    drop(hv1);
    let _hv1 = start_simulated(&certs, watchdog.stream_addr, "hv-1", HV_1_REPAIRED)?;
    let resolved = wait_status(&watchdog, &id, "resolved", RESOLVES_WITHIN)?;
    assert!(resolved["resolved_at"].is_string(), "{resolved}");
    assert_eq!(running(&watchdog, "hv-1")?, Vec::<String>::new());
    Ok(())
}
