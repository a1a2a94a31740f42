//! VMs and LUNs moved between simulated hosts through the real command
//! path: a watchdog in this process (its registry, command router and API
//! over mutual TLS) and simulated agents as real processes. The capacity
//! views turn the registry into the planner's and the rebalancer's input;
//! the `agent` actuator and the `agent` LUN mover carry the plans out; the
//! registry and the API then show each VM and LUN at its destination and
//! gone from its source. A migration the destination refuses is undone
//! (the VM runs on at its source); an interrupted LUN move is settled from
//! its journal: rolled back before the destination serves, finished after.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use anyhow::Context;
use hyperwatch::{
    cluster_view::{planner_snapshot, rebalancer_snapshot},
    health::HostState,
    lun_mover::{
        self, Cancel, Journal, LunMover, MoveOrder, MoveOutcome, Phase, Recovered,
        agent::AgentMover,
    },
    migration::{self, Actuator, MigrationRequest, agent::AgentActuator},
    planner::{self, Constraints, MoveKind, PlannerSettings},
    rebalancer::{self, Thresholds},
};
use hyperwatch_tests::sim::{SPARE_STORAGE, SimCluster, wait_until as wait};

/// Bound on the usage windows filling.
const READY_WITHIN: Duration = Duration::from_secs(40);
/// Bound on an inventory change reaching the registry.
const SEEN_WITHIN: Duration = Duration::from_secs(10);

/// The watchdog waits up to 30 s for a command's result (a copy).
const COMMANDS: &str = "\n[commands]\ntimeout_seconds = 30.0\n";

/// The agent mover of `c`, waiting at most SEEN_WITHIN for confirmations.
fn mover(c: &SimCluster) -> AgentMover {
    AgentMover::new(
        c.registry.clone(),
        c.commands.clone(),
        c.runtime.handle().clone(),
    )
    .with_confirm_timeout(SEEN_WITHIN)
}

/// Overloaded: 7.4 of 8 cores busy. big-1 fits nowhere else.
const HV_A: &str = r#"
[host]
name = "hv-a"
kind = "hypervisor"
cores = 8
memory = "64 GiB"
tick = 0.2
noise = 0.02
copy_per_second = "8 GiB"

[[vms]]
name = "web-1"
vcpus = 2
memory = "4 GiB"
cpu_cores = 1.8
tenant = "shop"
labels = { app = "web" }

[[vms]]
name = "web-2"
vcpus = 2
memory = "4 GiB"
cpu_cores = 1.8
tenant = "shop"

[[vms]]
name = "web-3"
vcpus = 2
memory = "4 GiB"
cpu_cores = 1.8
tenant = "shop"

[[vms]]
name = "batch-1"
vcpus = 2
memory = "4 GiB"
cpu_cores = 1.8

[[vms]]
name = "big-1"
vcpus = 4
memory = "40 GiB"
cpu_cores = 0.2
"#;

const HV_B: &str = r#"
[host]
name = "hv-b"
kind = "hypervisor"
cores = 8
memory = "32 GiB"
tick = 0.2
noise = 0.02
base_memory = "2 GiB"
copy_per_second = "8 GiB"

[[vms]]
name = "small-1"
vcpus = 1
memory = "2 GiB"
cpu_cores = 0.2
"#;

/// A host that will die, with two VMs.
const HV_C: &str = r#"
[host]
name = "hv-c"
kind = "hypervisor"
cores = 8
memory = "32 GiB"
tick = 0.2

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
priority = 1
"#;

/// d1 at 90 % of its capacity, over the rebalancer's 80 % line.
const ST_A: &str = r#"
[host]
name = "st-a"
kind = "storage"
cores = 4
memory = "8 GiB"
tick = 0.2
copy_per_second = "20 GiB"

[[devices]]
id = "d1"
group = "fast"
shared = true
capacity = "100 GiB"
used = "50 GiB"

[[luns]]
id = "vol-1"
device = "d1"
size = "20 GiB"
iops = 100.0

[[luns]]
id = "vol-2"
device = "d1"
size = "20 GiB"
iops = 50.0
"#;

#[test]
fn the_agent_actuator_moves_vms_off_an_overloaded_simulated_host() -> anyhow::Result<()> {
    let c = SimCluster::start(&[("hv-a", HV_A), ("hv-b", HV_B)], COMMANDS)?;
    wait("every VM with three CPU samples", READY_WITHIN, || {
        ["hv-a", "hv-b"].iter().all(|h| {
            c.capacity(h).is_some_and(|h| {
                h.inventory.vms.iter().all(|v| {
                    h.usage
                        .vms
                        .get(&v.name)
                        .is_some_and(|w| w.cpu_cores.len() >= 3)
                })
            })
        })
    })?;

    // Rebalance: the planner moves VMs off the overloaded hv-a, the agent
    // actuator carries the plan out through both agents.
    let built = planner_snapshot(&c.registry.capacity(), Constraints::default());
    let plan = planner::rebalance(&built.snapshot, &PlannerSettings::default())?;
    assert!(
        !plan.migrations.is_empty(),
        "hv-a is over 90 % busy: {plan:?}"
    );
    let actuator = Arc::new(AgentActuator::new(c.registry.clone(), c.commands.clone()));
    let executor = migration::Executor::new(
        migration::ExecutorConfig {
            execute_rebalance: true,
            confirm_poll_ms: 50,
            migration_timeout_secs: 30,
            confirm_timeout_secs: 10,
            cleanup_timeout_secs: 10,
            ..Default::default()
        },
        actuator.clone(),
    );
    let report = c.runtime.block_on(executor.run(&plan));
    assert_eq!(report.done(), plan.migrations.len(), "{report:#?}");
    for m in &plan.migrations {
        assert_eq!(
            (m.source.as_str(), m.destination.as_str()),
            ("hv-a", "hv-b")
        );
        assert_eq!(c.vm_state("hv-b", &m.vm).as_deref(), Some("running"));
        wait(&format!("{} gone from hv-a", m.vm), SEEN_WITHIN, || {
            c.vm_state("hv-a", &m.vm).is_none()
        })?;
        let b = c.get_json("/api/v1/hosts/hv-b")?;
        let listed = b["inventory"]["vms"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["name"] == m.vm.as_str() && v["state"] == "running");
        assert!(listed, "the API shows {} at hv-b: {}", m.vm, b["inventory"]);
        let a = c.get_json("/api/v1/hosts/hv-a")?;
        assert!(
            !a["inventory"]["vms"]
                .as_array()
                .unwrap()
                .iter()
                .any(|v| v["name"] == m.vm.as_str())
        );
    }

    // A migration the destination cannot take (40 GiB into 32) is undone:
    // the source prepared it, the destination refused, abort puts it back.
    let big = MigrationRequest {
        index: 0,
        vm: "big-1".into(),
        source: "hv-a".into(),
        destination: "hv-b".into(),
        kind: MoveKind::Live,
    };
    let refused = c
        .runtime
        .block_on(actuator.transfer(&big))
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("vm-migrate-in on hv-b") && refused.contains("free"),
        "{refused}"
    );
    assert_eq!(c.vm_state("hv-a", "big-1").as_deref(), Some("migrating"));
    c.runtime.block_on(actuator.abort(&big))?;
    wait("big-1 running at hv-a again", SEEN_WITHIN, || {
        c.vm_state("hv-a", "big-1").as_deref() == Some("running")
    })?;
    assert_eq!(c.vm_state("hv-b", "big-1"), None);
    assert!(!c.runtime.block_on(actuator.confirm_running(&big))?);
    Ok(())
}

#[test]
fn the_agent_actuator_restarts_a_dead_hosts_vms_elsewhere() -> anyhow::Result<()> {
    let mut c = SimCluster::start(&[("hv-c", HV_C), ("hv-b", HV_B)], COMMANDS)?;
    drop(c.agents.remove(0)); // SIGKILL: hv-c dies with its VMs.
    wait("hv-c failed", READY_WITHIN, || {
        c.capacity("hv-c")
            .is_some_and(|h| h.state == HostState::Failed)
    })?;
    let built = planner_snapshot(&c.registry.capacity(), Constraints::default());
    let plan = planner::failover(&built.snapshot, &PlannerSettings::default())?;
    let moved: Vec<(&str, MoveKind)> = plan
        .migrations
        .iter()
        .map(|m| (m.vm.as_str(), m.kind))
        .collect();
    assert_eq!(
        moved,
        [("app-1", MoveKind::Restart), ("app-2", MoveKind::Restart)],
        "priority order"
    );
    let actuator = Arc::new(AgentActuator::new(c.registry.clone(), c.commands.clone()));
    let executor = migration::Executor::new(
        migration::ExecutorConfig {
            confirm_poll_ms: 50,
            migration_timeout_secs: 30,
            confirm_timeout_secs: 10,
            cleanup_timeout_secs: 10,
            ..Default::default()
        },
        actuator,
    );
    let report = c.runtime.block_on(executor.run(&plan));
    assert_eq!(report.done(), 2, "{report:#?}");
    for vm in ["app-1", "app-2"] {
        assert_eq!(c.vm_state("hv-b", vm).as_deref(), Some("running"));
    }
    let after = planner_snapshot(&c.registry.capacity(), Constraints::default());
    assert!(
        after.snapshot.vms.iter().all(|v| v.host == "hv-b"),
        "{:?}",
        after.snapshot.vms
    );
    let again = planner::failover(&after.snapshot, &PlannerSettings::default())?;
    assert!(
        again.migrations.is_empty(),
        "nothing is left to fail over: {again:?}"
    );
    Ok(())
}

#[test]
fn the_agent_mover_moves_luns_off_a_full_simulated_device() -> anyhow::Result<()> {
    let c = SimCluster::start(&[("st-a", ST_A), ("st-b", SPARE_STORAGE)], COMMANDS)?;
    wait("storage usage sampled", READY_WITHIN, || {
        c.capacity("st-a")
            .is_some_and(|h| h.usage.luns.get("vol-1").is_some_and(|w| w.iops.len() >= 2))
    })?;
    let built = rebalancer_snapshot(
        &c.registry.capacity(),
        &BTreeMap::new(),
        &Thresholds::default(),
        0.9,
    );
    let plan = rebalancer::plan(&built.snapshot)?;
    assert!(!plan.moves.is_empty(), "st-a/d1 is 90 % full: {plan:?}");
    let journals = tempfile::tempdir()?;
    let executor = lun_mover::Executor::new(
        lun_mover::ExecutorConfig {
            state_dir: journals.path().to_owned(),
            dry_run: false,
            per_device: 1,
            parallel: 2,
            move_timeout_seconds: 60,
        },
        Arc::new(mover(&c)),
    );
    let outcomes = c.runtime.block_on(executor.execute(&plan))?;
    assert!(
        outcomes.iter().all(|o| *o == MoveOutcome::Done),
        "{outcomes:?}"
    );
    for m in &plan.moves {
        let lun = m.lun.strip_prefix("st-a/").context("a LUN of st-a")?;
        assert_eq!(m.to, "st-b/d1");
        assert!(
            c.luns_on("st-b", "d1")
                .contains(&(lun.to_owned(), "active".to_owned()))
        );
        wait(&format!("{lun} gone from st-a"), SEEN_WITHIN, || {
            !c.luns_on("st-a", "d1").iter().any(|(l, _)| l == lun)
        })?;
        let map = c.get_json("/api/v1/storage")?;
        let on = |host: &str| {
            map["hosts"].as_array().unwrap().iter().any(|h| {
                h["host"] == host
                    && h["devices"][0]["luns"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|l| l["id"] == lun)
            })
        };
        assert!(on("st-b") && !on("st-a"), "{map}");
    }
    assert_eq!(
        std::fs::read_dir(journals.path())?.count(),
        0,
        "every move settled"
    );
    Ok(())
}

#[test]
fn an_interrupted_lun_move_is_rolled_back_or_finished() -> anyhow::Result<()> {
    let c = SimCluster::start(&[("st-a", ST_A), ("st-b", SPARE_STORAGE)], COMMANDS)?;
    let journals = tempfile::tempdir()?;
    let mover = mover(&c);

    // The destination refuses (no such device): rolled back, served at
    // the source as before.
    let order = MoveOrder {
        lun: "st-a/vol-1".into(),
        from: "st-a/d1".into(),
        to: "st-b/d9".into(),
        bytes: 20 << 30,
    };
    let mut journal = Journal::create(journals.path(), mover.name(), &order)?;
    let failed = mover
        .run(&order, &mut journal, &Cancel::default())
        .unwrap_err()
        .to_string();
    assert!(
        failed.contains("lun-migrate-in on st-b") && failed.contains("d9"),
        "{failed}"
    );
    assert_eq!(mover.recover(&mut journal)?, Recovered::RolledBack);
    journal.settle()?;
    wait("vol-1 served at st-a again", SEEN_WITHIN, || {
        c.luns_on("st-a", "d1")
            .contains(&("vol-1".to_owned(), "active".to_owned()))
    })?;

    // The watchdog died after the copy, before the release: recovery sees
    // the destination serving and releases the source.
    let spec = r#"{"size_bytes":21474836480,"used_bytes":21474836480,"iops":50.0}"#;
    let prepared = c.command(
        "st-a",
        "lun-migrate-out",
        &[
            ("lun", "vol-2"),
            ("destination", "st-b"),
            ("stage", "prepare"),
        ],
    )?;
    assert_eq!(prepared, "succeeded");
    let copied = c.command(
        "st-b",
        "lun-migrate-in",
        &[
            ("lun", "vol-2"),
            ("source", "st-a"),
            ("device", "d1"),
            ("stage", "start"),
            ("spec", spec),
        ],
    )?;
    assert_eq!(copied, "succeeded");
    let order = MoveOrder {
        lun: "st-a/vol-2".into(),
        from: "st-a/d1".into(),
        to: "st-b/d1".into(),
        bytes: 20 << 30,
    };
    let mut journal = Journal::create(journals.path(), mover.name(), &order)?;
    journal.advance(Phase::Copied, &[])?;
    wait("vol-2 served at st-b", SEEN_WITHIN, || {
        c.luns_on("st-b", "d1")
            .contains(&("vol-2".to_owned(), "active".to_owned()))
    })?;
    assert_eq!(
        c.luns_on("st-a", "d1")
            .iter()
            .find(|(l, _)| l == "vol-2")
            .map(|(_, s)| s.as_str()),
        Some("leaving")
    );
    assert_eq!(mover.recover(&mut journal)?, Recovered::Finished);
    journal.settle()?;
    wait("vol-2 released at st-a", SEEN_WITHIN, || {
        !c.luns_on("st-a", "d1").iter().any(|(l, _)| l == "vol-2")
    })?;
    Ok(())
}
