//! VMs and LUNs moved between simulated hosts through the real command
//! path: a watchdog in this process (its registry, command router and API
//! over mutual TLS) and simulated agents as real processes. The capacity
//! views turn the registry into the planner's and the rebalancer's input;
//! the `agent` actuator and the `agent` LUN mover carry the plans out; the
//! registry and the API then show each VM and LUN at its destination and
//! gone from its source. A migration the destination refuses is undone:
//! the VM runs on at its source.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use hyperwatch::{
    cluster_view::{HostCapacity, planner_snapshot, rebalancer_snapshot},
    config,
    lun_mover::{self, MoveOutcome, agent::AgentMover},
    migration::{self, Actuator, MigrationRequest, agent::AgentActuator},
    planner::{self, Constraints, MoveKind, PlannerSettings},
    rebalancer::{self, Thresholds},
    registry::Registry,
    service::Watchdog,
};
use hyperwatch_tests::{
    http,
    sim::start_simulated,
    watchdog::{ClusterCerts, watchdog_config},
};
use serde_json::Value;

/// Bound on hosts connecting and their windows filling.
const READY_WITHIN: Duration = Duration::from_secs(40);
/// Bound on an inventory change reaching the registry.
const SEEN_WITHIN: Duration = Duration::from_secs(10);

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

const ST_B: &str = r#"
[host]
name = "st-b"
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
used = "10 GiB"
"#;

/// Polls `check` every 50 ms until it is true or `limit` passes.
fn wait(what: &str, limit: Duration, mut check: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    while !check() {
        if Instant::now() > deadline {
            bail!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn capacity(registry: &Registry, host: &str) -> Option<HostCapacity> {
    registry.capacity().into_iter().find(|h| h.id == host)
}

/// The state `host`'s inventory gives `vm`, if it lists it.
fn vm_state(registry: &Registry, host: &str, vm: &str) -> Option<String> {
    let h = capacity(registry, host)?;
    h.inventory
        .vms
        .iter()
        .find(|v| v.name == vm)
        .map(|v| v.state.clone())
}

/// The LUN ids `host` lists on its device `device`, with their states.
fn luns_on(registry: &Registry, host: &str, device: &str) -> Vec<(String, String)> {
    capacity(registry, host)
        .and_then(|h| {
            let d = h.inventory.storage.iter().find(|d| d.name == device)?;
            Some(
                d.luns
                    .iter()
                    .map(|l| (l.id.clone(), l.state.clone()))
                    .collect(),
            )
        })
        .unwrap_or_default()
}

fn api(addr: SocketAddr, path: &str) -> anyhow::Result<Value> {
    let r = http::get(addr, path, &[])?;
    serde_json::from_str(&r.body).with_context(|| format!("GET {path}: {}", r.body))
}

#[test]
fn the_agent_actuator_and_mover_move_vms_and_luns_between_simulated_hosts() -> anyhow::Result<()> {
    let certs = ClusterCerts::new("e2e")?;
    let text = watchdog_config(&certs, 0, "\n[commands]\ntimeout_seconds = 30.0\n");
    let config = config::parse(&text, "watchdog.toml")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let watchdog = runtime.block_on(Watchdog::bind(config))?;
    let (registry, commands) = (watchdog.registry.clone(), watchdog.commands.clone());
    let (stream, api_addr) = (watchdog.stream_addr, watchdog.http_addr);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = runtime.spawn(watchdog.run(async {
        let _ = stopped.await;
    }));
    let _agents = [
        ("hv-a", HV_A),
        ("hv-b", HV_B),
        ("st-a", ST_A),
        ("st-b", ST_B),
    ]
    .into_iter()
    .map(|(host, scenario)| start_simulated(&certs, stream, host, scenario))
    .collect::<anyhow::Result<Vec<_>>>()?;
    wait("every VM with three CPU samples", READY_WITHIN, || {
        let hosts = registry.capacity();
        hosts.len() == 4
            && hosts.iter().filter(|h| h.id.starts_with("hv")).all(|h| {
                !h.inventory.vms.is_empty()
                    && h.inventory.vms.iter().all(|v| {
                        h.usage
                            .vms
                            .get(&v.name)
                            .is_some_and(|w| w.cpu_cores.len() >= 3)
                    })
            })
    })?;

    // Rebalance: the planner moves VMs off the overloaded hv-a, the agent
    // actuator carries the plan out through both agents.
    let built = planner_snapshot(&registry.capacity(), Constraints::default());
    let plan = planner::rebalance(&built.snapshot, &PlannerSettings::default())?;
    assert!(
        !plan.migrations.is_empty(),
        "hv-a is over 90 % busy: {plan:?}"
    );
    let actuator = Arc::new(AgentActuator::new(registry.clone(), commands.clone()));
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
    let report = runtime.block_on(executor.run(&plan));
    assert_eq!(report.done(), plan.migrations.len(), "{report:#?}");
    for m in &plan.migrations {
        assert_eq!(
            (m.source.as_str(), m.destination.as_str()),
            ("hv-a", "hv-b")
        );
        assert_eq!(
            vm_state(&registry, "hv-b", &m.vm).as_deref(),
            Some("running")
        );
        wait(&format!("{} gone from hv-a", m.vm), SEEN_WITHIN, || {
            vm_state(&registry, "hv-a", &m.vm).is_none()
        })?;
        let b = api(api_addr, "/api/v1/hosts/hv-b")?;
        let listed = b["inventory"]["vms"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["name"] == m.vm.as_str() && v["state"] == "running");
        assert!(listed, "the API shows {} at hv-b: {}", m.vm, b["inventory"]);
        let a = api(api_addr, "/api/v1/hosts/hv-a")?;
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
    let refused = runtime
        .block_on(actuator.transfer(&big))
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("vm-migrate-in on hv-b") && refused.contains("free"),
        "{refused}"
    );
    assert_eq!(
        vm_state(&registry, "hv-a", "big-1").as_deref(),
        Some("migrating")
    );
    runtime.block_on(actuator.abort(&big))?;
    wait("big-1 running at hv-a again", SEEN_WITHIN, || {
        vm_state(&registry, "hv-a", "big-1").as_deref() == Some("running")
    })?;
    assert_eq!(vm_state(&registry, "hv-b", "big-1"), None);
    assert!(!runtime.block_on(actuator.confirm_running(&big))?);

    // Storage: st-a's d1 is 90 % full; the rebalancer moves LUNs to st-b's
    // d1 in the same shared group, the agent mover carries the moves out.
    wait("storage usage sampled", READY_WITHIN, || {
        capacity(&registry, "st-a")
            .is_some_and(|h| h.usage.luns.get("vol-1").is_some_and(|w| w.iops.len() >= 2))
    })?;
    let built = rebalancer_snapshot(
        &registry.capacity(),
        &BTreeMap::new(),
        &Thresholds::default(),
        0.9,
    );
    let lun_plan = rebalancer::plan(&built.snapshot)?;
    assert!(
        !lun_plan.moves.is_empty(),
        "st-a/d1 is 90 % full: {lun_plan:?}"
    );
    let journals = tempfile::tempdir()?;
    let mover = AgentMover::new(registry.clone(), commands.clone(), runtime.handle().clone());
    let lun_executor = lun_mover::Executor::new(
        lun_mover::ExecutorConfig {
            state_dir: journals.path().to_owned(),
            dry_run: false,
            per_device: 1,
            parallel: 2,
            move_timeout_seconds: 60,
        },
        Arc::new(mover),
    );
    let outcomes = runtime.block_on(lun_executor.execute(&lun_plan))?;
    assert!(
        outcomes.iter().all(|o| *o == MoveOutcome::Done),
        "{outcomes:?}"
    );
    for m in &lun_plan.moves {
        let lun = m.lun.strip_prefix("st-a/").context("a LUN of st-a")?;
        assert_eq!(m.to, "st-b/d1");
        assert!(luns_on(&registry, "st-b", "d1").contains(&(lun.to_owned(), "active".to_owned())));
        wait(&format!("{lun} gone from st-a"), SEEN_WITHIN, || {
            !luns_on(&registry, "st-a", "d1")
                .iter()
                .any(|(l, _)| l == lun)
        })?;
        let map = api(api_addr, "/api/v1/storage")?;
        let host = |id: &str| {
            map["hosts"]
                .as_array()
                .unwrap()
                .iter()
                .find(|h| h["host"] == id)
                .cloned()
                .unwrap()
        };
        let on = |h: &Value| {
            h["devices"][0]["luns"]
                .as_array()
                .unwrap()
                .iter()
                .any(|l| l["id"] == lun)
        };
        assert!(on(&host("st-b")) && !on(&host("st-a")), "{map}");
    }
    assert_eq!(
        std::fs::read_dir(journals.path())?.count(),
        0,
        "every move settled"
    );

    let _ = stop.send(());
    runtime
        .block_on(async { tokio::time::timeout(Duration::from_secs(10), server).await })???;
    Ok(())
}
