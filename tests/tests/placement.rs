//! The placement service in a running watchdog with simulated agents as
//! real processes: the capacity loop rebalances a hypervisor a scenario
//! phase overloads (carried out with execution on, recorded only with it
//! off), an operator's dry run and execution through the API and `hyperwatch
//! plan`, a SIGKILLed hypervisor's VMs failed over by the policy step (and
//! the VM that fits nowhere reported with the reason), and LUNs moved off a
//! storage device that filled past its threshold.

use std::{process::Command, time::Duration};

use anyhow::Context;
use hyperwatch::{
    health::HostState,
    placement::{self, history::PlanState, step::StepOutcome},
};
use hyperwatch_policies::planner::{PlanKind, PlanRequest, Planner};
use hyperwatch_policies::target::{TargetKind, TargetRef};
use hyperwatch_tests::{
    http,
    process::{AgentProcess, binary},
    sim::{SPARE_STORAGE, SimCluster, start_simulated, wait_until},
    watchdog::{ClusterCerts, WatchdogProcess, watchdog_config},
};
use serde_json::Value;

/// Bound on a scenario phase showing in a plan: the phase, a few telemetry
/// summaries (1 s apart) for the percentile to see it, a loop pass.
const PLANNED_WITHIN: Duration = Duration::from_secs(40);
/// Bound on migrations (a few GiB at 8 GiB/s) and inventories following.
const MOVED_WITHIN: Duration = Duration::from_secs(30);

/// hv-a at 62 % of its 8 cores until, 4 s in, web-3 gets busy: 91 %.
const HV_A: &str = r#"
[host]
name = "hv-a"
kind = "hypervisor"
cores = 8
memory = "64 GiB"
tick = 0.2
noise = 0.02
base_cpu_cores = 0.2
copy_per_second = "8 GiB"

[[vms]]
name = "web-1"
vcpus = 2
memory = "4 GiB"
cpu_cores = 1.2

[[vms]]
name = "web-2"
vcpus = 2
memory = "4 GiB"
cpu_cores = 1.2

[[vms]]
name = "web-3"
vcpus = 4
memory = "4 GiB"
cpu_cores = 1.2

[[vms]]
name = "batch-1"
vcpus = 2
memory = "4 GiB"
cpu_cores = 1.2

[[phases]]
at = "4s"
vm = "web-3"
cpu_cores = 3.5
say = "web-3 gets busy"
"#;

/// Room for hv-a's VMs, not for huge-1.
const HV_B: &str = r#"
[host]
name = "hv-b"
kind = "hypervisor"
cores = 8
memory = "32 GiB"
tick = 0.2
noise = 0.02
copy_per_second = "8 GiB"

[[vms]]
name = "small-1"
vcpus = 1
memory = "2 GiB"
cpu_cores = 0.2
"#;

/// The hypervisor that dies: two VMs that fit on hv-b and one that fits
/// nowhere (36 GiB, hv-b has 32).
const HV_C: &str = r#"
[host]
name = "hv-c"
kind = "hypervisor"
cores = 8
memory = "64 GiB"
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

[[vms]]
name = "huge-1"
vcpus = 4
memory = "36 GiB"
cpu_cores = 0.5
"#;

/// d1 70 % full; from 2 s to 4 s something writes 6 GiB/s to it: 82 %.
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
used = "30 GiB"

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

[[phases]]
at = "2s"
device = "d1"
fill_per_second = "6 GiB"
say = "a backup starts writing to d1"

[[phases]]
at = "4s"
device = "d1"
fill_per_second = 0
say = "the backup is done"
"#;

/// Quick executor bounds for simulated hosts (their moves take a second).
const QUICK_MIGRATION: &str = "confirm_poll_ms = 50\nmigration_timeout_seconds = 30\nconfirm_timeout_seconds = 10\ncleanup_timeout_seconds = 10\n";

/// A `hyperwatch serve` process with hv-a and hv-b simulated around it.
struct ServeCluster {
    watchdog: WatchdogProcess,
    _agents: Vec<AgentProcess>,
    _journals: tempfile::TempDir,
    _certs: ClusterCerts,
}

impl ServeCluster {
    /// `execute` turns the capacity loop's execution on. The loop runs
    /// every second once hosts have sent five summaries; with a spread
    /// target of 0.5 only a host over its threshold makes it move anything,
    /// so the phase is what it answers.
    fn start(execute: bool) -> anyhow::Result<Self> {
        let certs = ClusterCerts::new("e2e")?;
        let journals = tempfile::tempdir()?;
        let extra = format!(
            "\n[planner]\ninterval_seconds = 1.0\nmin_samples = 5\nsettle_seconds = 120.0\nspread_target = 0.5\n\
             [migration]\nexecute_rebalance = {execute}\n{QUICK_MIGRATION}\
             [storage]\ninterval_seconds = 0.0\nstate_dir = \"{}\"\n\
             [commands]\ntimeout_seconds = 30.0\n",
            journals.path().display()
        );
        let watchdog =
            WatchdogProcess::start(certs.dir.path(), &watchdog_config(&certs, 0, &extra))?;
        let agents = [("hv-a", HV_A), ("hv-b", HV_B)]
            .iter()
            .map(|(h, s)| start_simulated(&certs, watchdog.stream_addr, h, s))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self {
            watchdog,
            _agents: agents,
            _journals: journals,
            _certs: certs,
        })
    }

    fn plans(&self) -> anyhow::Result<Vec<Value>> {
        let list = self.watchdog.get_json("/api/v1/plans")?;
        Ok(list["plans"].as_array().cloned().unwrap_or_default())
    }

    /// The newest plan the capacity loop made in `state`, once there is one.
    fn loop_plan(&self, state: &str) -> anyhow::Result<Value> {
        self.watchdog.wait_for(
            &format!("a capacity-loop plan {state}"),
            PLANNED_WITHIN,
            |_| {
                Ok(self.plans()?.into_iter().find(|p| {
                    p["trigger"] == "capacity-loop"
                        && p["state"] == state
                        && p["moves"].as_array().is_some_and(|m| !m.is_empty())
                }))
            },
        )
    }

    /// The VMs `host`'s inventory lists, with their states.
    fn vms(&self, host: &str) -> anyhow::Result<Vec<(String, String)>> {
        let h = self.watchdog.host(host)?.context("host known")?;
        Ok(h["inventory"]["vms"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| {
                (
                    v["name"].as_str().unwrap_or_default().to_owned(),
                    v["state"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect())
    }

    fn metric(&self, sample: &str) -> anyhow::Result<f64> {
        self.watchdog
            .metric(sample)?
            .with_context(|| format!("no sample {sample}"))
    }
}

/// The moves of a plan record: (VM, from, to).
fn moves(plan: &Value) -> Vec<(String, String, String)> {
    plan["moves"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            let s = |k: &str| m[k].as_str().unwrap_or_default().to_owned();
            (s("item"), s("from"), s("to"))
        })
        .collect()
}

/// (a) with execution on, and (a') + (d) with it off, side by side.
#[test]
fn the_capacity_loop_rebalances_an_overloaded_host_only_with_execution_on() -> anyhow::Result<()> {
    let executing = ServeCluster::start(true)?;
    let recording = ServeCluster::start(false)?;

    // (a) The phase overloads hv-a; the loop's plan is carried out.
    let done = executing.loop_plan("done")?;
    let moved = moves(&done);
    assert!(
        moved
            .iter()
            .all(|(_, from, to)| from == "hv-a" && to == "hv-b"),
        "{done:#}"
    );
    assert!(
        done["dry_run"] == false && done["spread_after"].as_f64() < done["spread_before"].as_f64(),
        "{done:#}"
    );
    let id = done["id"].as_str().context("id")?;
    let full = executing
        .watchdog
        .get_json(&format!("/api/v1/plans/{id}"))?;
    assert_eq!(full["detail"]["type"], "vms");
    // Planned from the VMs' measured load after the phase (91 %), not from
    // their vCPUs (125 %) nor from before it (62 %).
    let source = full["detail"]["migrations"][0]["source_utilization"]["before"]
        .as_f64()
        .context("source utilization")?;
    assert!((0.85..1.0).contains(&source), "{source}");
    assert_eq!(
        full["explanation"].as_array().map(Vec::len),
        Some(moved.len())
    );
    for m in full["moves"].as_array().context("moves")? {
        assert_eq!(m["state"], "done");
        let why = m["why"].as_str().unwrap_or_default();
        assert!(why.contains("source above its threshold 80%"), "{why}");
    }
    for (vm, _, _) in &moved {
        assert!(
            executing
                .vms("hv-b")?
                .contains(&(vm.clone(), "running".into())),
            "{vm} runs on hv-b"
        );
        executing
            .watchdog
            .wait_for(&format!("{vm} gone from hv-a"), MOVED_WITHIN, |_| {
                Ok((!executing.vms("hv-a")?.iter().any(|(v, _)| v == vm)).then_some(()))
            })?;
    }
    let cpu = |host: &str| -> anyhow::Result<Option<f64>> {
        let h = executing.watchdog.host(host)?.context("host known")?;
        Ok(h["telemetry"]["cpu_utilisation"].as_f64())
    };
    executing
        .watchdog
        .wait_for("hv-a under its 80 % threshold", MOVED_WITHIN, |_| {
            Ok(cpu("hv-a")?.filter(|u| *u < 0.8))
        })?;
    let n = moved.len() as f64;
    assert_eq!(
        executing.metric("hyperwatch_placement_migrations_total{outcome=\"done\"}")?,
        n
    );
    assert!(
        executing
            .metric("hyperwatch_placement_plans_total{mode=\"rebalance\",outcome=\"done\"}")?
            >= 1.0
    );
    assert!(executing.metric("hyperwatch_placement_moved_bytes_total{what=\"vm_memory\"}")? > 0.0);
    assert!(executing.metric("hyperwatch_plans_recent{mode=\"rebalance\"}")? >= 1.0);
    assert!(
        executing.metric("hyperwatch_plan_moves_recent{mode=\"rebalance\",outcome=\"done\"}")? >= n
    );
    let status = executing.watchdog.get_json("/api/v1/status")?;
    assert_eq!(status["plans"]["available"], true);
    assert_eq!(status["storage"]["source"], "provider");

    // (a') Execution off: the plan is recorded as a dry run, nothing moves.
    let dry = recording.loop_plan("dry-run")?;
    assert!(
        moves(&dry).iter().all(|(_, from, _)| from == "hv-a"),
        "{dry:#}"
    );
    assert!(
        dry["moves"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["state"] == "would-run")
    );
    recording
        .watchdog
        .wait_for("another loop pass", PLANNED_WITHIN, |_| {
            let passes: u64 = recording
                .plans()?
                .iter()
                .filter(|p| p["trigger"] == "capacity-loop")
                .map(|p| 1 + p["repeats"].as_u64().unwrap_or(0))
                .sum();
            Ok((passes >= 2).then_some(()))
        })?;
    let on_a = recording.vms("hv-a")?;
    assert_eq!(on_a.len(), 4, "nothing moved: {on_a:?}");
    assert_eq!(
        recording.metric("hyperwatch_placement_migrations_total{outcome=\"done\"}")?,
        0.0
    );
    assert!(
        recording
            .metric("hyperwatch_plan_moves_recent{mode=\"rebalance\",outcome=\"would_run\"}")?
            >= 1.0
    );

    // (d) An operator's dry run through the API...
    let api = recording.watchdog.http_addr;
    let r = http::post(
        api,
        "/api/v1/plans",
        r#"{"kind":"rebalance","target":"hv-a","execute":false}"#,
    )?;
    assert_eq!(r.status, 201, "{}", r.body);
    let asked: Value = serde_json::from_str(&r.body)?;
    assert_eq!(
        (asked["state"].as_str(), asked["trigger"].as_str()),
        (Some("dry-run"), Some("operator"))
    );
    assert!(!moves(&asked).is_empty());
    assert_eq!(recording.vms("hv-a")?.len(), 4, "a dry run moves nothing");
    let refused = http::post(
        api,
        "/api/v1/plans",
        r#"{"kind":"failover","target":"hv-a","execute":true}"#,
    )?;
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert!(refused.body.contains("not failed"), "{}", refused.body);

    // ...and an execution through `hyperwatch plan`, followed to its end.
    let out = Command::new(binary("hyperwatch"))
        .args([
            "plan",
            "rebalance",
            "hv-a",
            "--execute",
            "--wait",
            "60s",
            "--api",
        ])
        .arg(format!("http://{api}"))
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("plan p") && stdout.contains("rebalance of hv-a"),
        "{stdout}"
    );
    assert!(stdout.contains("hv-a -> hv-b: done"), "{stdout}");
    let executed = recording
        .plans()?
        .into_iter()
        .find(|p| p["trigger"] == "operator" && p["state"] == "done")
        .context("the operator's plan is done")?;
    for (vm, _, _) in moves(&executed) {
        assert!(
            recording
                .vms("hv-b")?
                .contains(&(vm.clone(), "running".into())),
            "{vm} on hv-b"
        );
    }
    Ok(())
}

fn request(kind: PlanKind, target: TargetKind, id: &str) -> PlanRequest {
    PlanRequest {
        kind,
        target: TargetRef::new(target, id),
    }
}

/// (b) failover of a SIGKILLed hypervisor and (c) LUNs off a full device,
/// through the steps the policy runtime runs.
#[test]
fn policy_steps_fail_a_dead_host_over_and_move_luns_off_a_full_device() -> anyhow::Result<()> {
    let journals = tempfile::tempdir()?;
    let extra = format!(
        "\n[planner]\ninterval_seconds = 0.0\n\
         [migration]\n{QUICK_MIGRATION}\
         [storage]\ninterval_seconds = 1.0\nmin_samples = 3\nsettle_seconds = 120.0\nstate_dir = \"{}\"\n\
         [storage.thresholds]\ncapacity_band = inf\niops_band = inf\n\
         [commands]\ntimeout_seconds = 30.0\n",
        journals.path().display()
    );
    let hosts = [
        ("hv-c", HV_C),
        ("hv-b", HV_B),
        ("st-a", ST_A),
        ("st-b", SPARE_STORAGE),
    ];
    let (mut c, service) = SimCluster::start_with(&hosts, &extra, placement::attach)?;

    // (c) d1 fills past 80 %: the storage loop records what it would move.
    wait_until("st-a/d1 over 80 %", PLANNED_WITHIN, || {
        c.get_json("/api/v1/storage").is_ok_and(|m| {
            m["hosts"].as_array().into_iter().flatten().any(|h| {
                h["host"] == "st-a" && h["devices"][0]["used_fraction"].as_f64() > Some(0.8)
            })
        })
    })?;
    wait_until("the storage loop's dry run", PLANNED_WITHIN, || {
        service.history().list().iter().any(|p| {
            p.trigger == placement::history::Trigger::StorageLoop
                && p.state == PlanState::DryRun
                && p.moves.iter().any(|m| m.from == "st-a/d1")
        })
    })?;
    assert_eq!(c.luns_on("st-a", "d1").len(), 2, "a dry run moves nothing");

    let luns = request(PlanKind::MoveLuns, TargetKind::StorageDevice, "st-a/d1");
    assert_eq!(service.check(&luns), Ok(()));
    let dry = c.runtime.block_on(service.run_step(&luns));
    assert_eq!(
        dry.outcome,
        StepOutcome::Failed,
        "LUN moves are a dry run by default"
    );
    assert!(
        dry.dry_run && dry.message.contains("[storage] dry_run = false"),
        "{}",
        dry.message
    );

    let moved = c.runtime.block_on(service.run_step_with(&luns, Some(true)));
    assert_eq!(moved.outcome, StepOutcome::Succeeded, "{}", moved.message);
    assert!(moved.done >= 1 && moved.failed == 0, "{moved:?}");
    let record = service
        .history()
        .get(moved.plan.as_deref().context("plan")?)
        .context("kept")?;
    for m in &record.moves {
        let lun = m.item.strip_prefix("st-a/").context("a LUN of st-a")?;
        assert_eq!(m.to, "st-b/d1");
        assert!(
            c.luns_on("st-b", "d1")
                .contains(&(lun.to_owned(), "active".to_owned()))
        );
        wait_until(&format!("{lun} gone from st-a"), MOVED_WITHIN, || {
            !c.luns_on("st-a", "d1").iter().any(|(l, _)| l == lun)
        })?;
    }
    assert!(record.target_load.context("d1's fill")?.after <= 0.8);
    assert_eq!(
        std::fs::read_dir(journals.path())?.count(),
        0,
        "every move settled"
    );

    // (b) hv-c is killed: declared failed, its VMs restarted on hv-b; the
    // one that fits nowhere is reported with the reason.
    drop(c.agents.remove(0));
    wait_until("hv-c failed", PLANNED_WITHIN, || {
        c.capacity("hv-c")
            .is_some_and(|h| h.state == HostState::Failed)
    })?;
    let failover = request(PlanKind::Failover, TargetKind::Host, "hv-c");
    assert_eq!(service.check(&failover), Ok(()));
    let report = c.runtime.block_on(service.run_step(&failover));
    assert_eq!(
        report.outcome,
        StepOutcome::Failed,
        "huge-1 fits nowhere: {}",
        report.message
    );
    assert_eq!(
        (report.done, report.failed, report.unplaced),
        (2, 0, 1),
        "{}",
        report.message
    );
    assert!(
        report
            .message
            .contains("huge-1 (on hv-c, priority 0) not placed: no host can take it")
            && report.message.contains("too little memory"),
        "{}",
        report.message
    );
    for vm in ["app-1", "app-2"] {
        assert_eq!(c.vm_state("hv-b", vm).as_deref(), Some("running"), "{vm}");
    }
    let plan = service
        .history()
        .get(report.plan.as_deref().context("plan")?)
        .context("kept")?;
    assert!(plan.moves.iter().all(|m| m.how == "restart"));
    let samples = http::get(c.api, "/metrics", &[])?.body;
    for line in [
        "hyperwatch_placement_plans_total{mode=\"failover\",outcome=\"failed\"} 1",
        "hyperwatch_placement_migrations_total{outcome=\"done\"} 2",
        "hyperwatch_placement_plans_total{mode=\"move-luns\",outcome=\"done\"} 1",
    ] {
        assert!(samples.lines().any(|l| l == line), "{line} in\n{samples}");
    }
    Ok(())
}
