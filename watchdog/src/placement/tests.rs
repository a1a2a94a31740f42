//! The service over a real registry fed hellos and telemetry as ingest
//! feeds it, with the simulated actuator and mover: checks, steps, dry
//! runs and executions, the history and the metrics.

use std::{sync::Arc, time::SystemTime};

use hyperwatch_policies::{
    input::StepResult,
    planner::{PlanKind, PlanRequest, Planner},
    target::{TargetKind, TargetRef},
};
use hyperwatch_proto::v1;

use super::*;
use crate::{
    config::{self},
    events::ClusterEvents,
    metrics::Metrics,
    registry::Connection,
};

/// A registry, a command router and the service, loops off.
pub(crate) struct Lab {
    pub registry: Arc<Registry>,
    pub service: PlacementService,
    _journals: tempfile::TempDir,
}

impl Lab {
    /// The service with `extra` configuration (TOML); must run inside a
    /// tokio runtime.
    pub fn new(extra: &str) -> Self {
        let journals = tempfile::tempdir().unwrap();
        let mut config = config::parse(extra, "lab.toml").unwrap();
        config.planner.interval_seconds = 0.0;
        config.storage.interval_seconds = 0.0;
        config.storage.state_dir = journals.path().to_owned();
        let registry = Arc::new(Registry::new(
            "lab",
            &config.detector,
            ClusterEvents::default(),
            Arc::new(Metrics::default()),
        ));
        let commands = Arc::new(CommandRouter::new(
            registry.clone(),
            std::time::Duration::from_secs(1),
        ));
        let service = PlacementService::start(&config, &registry, &commands);
        Self {
            registry,
            service,
            _journals: journals,
        }
    }

    /// A connected host with `inventory` and `samples` telemetry summaries.
    fn host(&self, id: &str, inventory: v1::Inventory, samples: &[v1::Telemetry]) {
        let hello = v1::Hello {
            protocol_version: hyperwatch_proto::PROTOCOL_VERSION,
            host_id: id.into(),
            boot_id: "boot".into(),
            agent_instance: 1,
            heartbeat_interval_ms: 1000,
            inventory: Some(inventory),
            ..Default::default()
        };
        let connection = Connection {
            id: 1,
            peer: "127.0.0.1:1".parse().unwrap(),
            since: SystemTime::now(),
            outbound: tokio::sync::mpsc::channel(4).0,
            replaced: Arc::new(tokio::sync::Notify::new()),
        };
        let (entry, _) = self.registry.attach(hello, connection);
        for (seq, t) in samples.iter().enumerate() {
            let t = v1::Telemetry {
                seq: seq as u64 + 1,
                ..t.clone()
            };
            self.registry.telemetry(&entry, t);
        }
    }

    /// hv-a: 8 cores, four VMs at 1.8 cores each (90 % busy); hv-b idle.
    pub fn overloaded_pair(&self) {
        let vms: Vec<v1::VirtualMachine> = (1..=4)
            .map(|i| v1::VirtualMachine {
                name: format!("web-{i}"),
                vcpus: 2,
                memory_bytes: 2 << 30,
                state: "running".into(),
                ..Default::default()
            })
            .collect();
        let usage: Vec<(String, f64)> = (1..=4).map(|i| (format!("web-{i}"), 1.8)).collect();
        let busy = v1::Telemetry {
            cpu_utilisation: Some(0.9),
            memory_used_bytes: Some(9 << 30),
            vm_usage: usage
                .iter()
                .map(|(n, c)| v1::VmUsage {
                    name: n.clone(),
                    cpu_cores: Some(*c),
                    memory_resident_bytes: 1 << 30,
                })
                .collect(),
            ..Default::default()
        };
        self.host("hv-a", hypervisor(vms), &[busy.clone(), busy.clone(), busy]);
        let idle = v1::Telemetry {
            cpu_utilisation: Some(0.02),
            memory_used_bytes: Some(1 << 30),
            ..Default::default()
        };
        self.host(
            "hv-b",
            hypervisor(Vec::new()),
            &[idle.clone(), idle.clone(), idle],
        );
    }

    /// st-a/d1 90 % full with two 20 GiB LUNs; st-b/d1 10 % full.
    pub fn full_device(&self) {
        let lun = |id: &str| v1::Lun {
            id: id.into(),
            size_bytes: 20 << 30,
            used_bytes: 20 << 30,
            state: "active".into(),
            ..Default::default()
        };
        let device = |luns: Vec<v1::Lun>| v1::StorageDevice {
            name: "d1".into(),
            kind: "simulated".into(),
            capacity_bytes: 100 << 30,
            used_bytes: 0,
            luns,
            group: "fast".into(),
            shared_group: true,
        };
        let fill = |used: u64| v1::Telemetry {
            device_usage: vec![v1::DeviceUsage {
                device: "d1".into(),
                used_bytes: used,
                iops: Some(10.0),
                throughput_bytes_per_second: None,
                io_latency_seconds: Some(0.001),
            }],
            ..Default::default()
        };
        let storage = |devices| v1::Inventory {
            cpu_cores: 4,
            memory_bytes: 8 << 30,
            roles: vec!["storage".into()],
            storage: devices,
            revision: 1,
            ..Default::default()
        };
        self.host(
            "st-a",
            storage(vec![device(vec![lun("vol-1"), lun("vol-2")])]),
            &[fill(90 << 30)],
        );
        self.host("st-b", storage(vec![device(Vec::new())]), &[fill(10 << 30)]);
    }
}

fn hypervisor(vms: Vec<v1::VirtualMachine>) -> v1::Inventory {
    v1::Inventory {
        cpu_cores: 8,
        memory_bytes: 32 << 30,
        roles: vec!["hypervisor".into()],
        vms,
        revision: 1,
        ..Default::default()
    }
}

fn request(kind: PlanKind, target: TargetKind, id: &str) -> PlanRequest {
    PlanRequest {
        kind,
        target: TargetRef::new(target, id),
    }
}

const SIMULATED: &str = "[migration]\nactuator = \"simulated\"\n[migration.simulated]\ntransfer_seconds = 0.0\n[storage]\nmover = \"simulated\"\n[storage.simulated]\nbytes_per_second = 1099511627776\n";

#[tokio::test]
async fn check_says_what_it_can_take_and_why_not() {
    let lab = Lab::new("");
    lab.overloaded_pair();
    lab.full_device();
    let s = &lab.service;
    let ok = |k, t, id| s.check(&request(k, t, id));
    assert_eq!(ok(PlanKind::Rebalance, TargetKind::Host, "hv-a"), Ok(()));
    assert_eq!(ok(PlanKind::Failover, TargetKind::Host, "hv-b"), Ok(()));
    assert_eq!(
        ok(PlanKind::MoveLuns, TargetKind::StorageDevice, "st-a/d1"),
        Ok(())
    );
    let why = |k, t, id| ok(k, t, id).unwrap_err().0;
    assert_eq!(
        why(PlanKind::Rebalance, TargetKind::Host, "hv-z"),
        "no host \"hv-z\" is known to the watchdog"
    );
    assert_eq!(
        why(PlanKind::Rebalance, TargetKind::Host, "st-a"),
        "st-a is not a hypervisor"
    );
    assert_eq!(
        why(PlanKind::MoveLuns, TargetKind::StorageDevice, "st-a/d7"),
        "st-a reports no storage device \"d7\""
    );
    assert_eq!(
        why(PlanKind::MoveLuns, TargetKind::Host, "st-a"),
        "move-luns works on storage-device targets, not on a host"
    );

    let none = Lab::new("[migration]\nactuator = \"none\"\n");
    none.overloaded_pair();
    let r = none
        .service
        .check(&request(PlanKind::Failover, TargetKind::Host, "hv-a"));
    assert!(r.unwrap_err().0.contains("actuator = \"none\""));
    let report = none
        .service
        .run_step(&request(PlanKind::Rebalance, TargetKind::Host, "hv-a"))
        .await;
    assert_eq!(report.outcome, StepOutcome::NotAvailable);
    assert!(none.service.history().list().is_empty());
}

#[tokio::test]
async fn a_rebalance_step_is_a_dry_run_by_default_and_executes_when_asked() {
    let lab = Lab::new(SIMULATED);
    lab.overloaded_pair();
    let step = request(PlanKind::Rebalance, TargetKind::Host, "hv-a");
    let dry = lab.service.run_step(&step).await;
    assert_eq!(dry.outcome, StepOutcome::Failed, "{dry:?}");
    assert!(
        dry.dry_run && dry.message.contains("would run"),
        "{}",
        dry.message
    );
    assert_eq!(dry.done, 0);

    let done = lab.service.run_step_with(&step, Some(true)).await;
    assert_eq!(done.outcome, StepOutcome::Succeeded, "{}", done.message);
    assert_eq!(done.result(), StepResult::Succeeded);
    assert!(done.done >= 1 && done.failed == 0);
    let record = lab
        .service
        .history()
        .get(done.plan.as_deref().unwrap())
        .unwrap();
    assert_eq!(record.state, PlanState::Done);
    assert_eq!(record.trigger, Trigger::Policy);
    assert!(
        record
            .moves
            .iter()
            .all(|m| m.state == MoveState::Done && m.from == "hv-a")
    );
    assert!(record.spread_after < record.spread_before);
    let load = record.target_load.unwrap();
    assert!(load.before > load.threshold && load.after <= load.threshold);
    assert!(record.bytes_moved > 0 && record.bytes_moved == record.bytes_to_move);
    assert!(record.finished.is_some() && record.detail.is_some());
    let listed = lab.service.history().list();
    assert_eq!(listed.len(), 2);
    assert!(listed[0].detail.is_none(), "lists leave the plan out");
}

#[tokio::test]
async fn a_failover_of_a_host_that_has_not_failed_is_refused_with_the_reason() {
    let lab = Lab::new(SIMULATED);
    lab.overloaded_pair();
    let report = lab
        .service
        .run_step(&request(PlanKind::Failover, TargetKind::Host, "hv-a"))
        .await;
    assert_eq!(report.outcome, StepOutcome::Failed);
    assert!(
        report.message.starts_with("hv-a is healthy, not failed"),
        "{}",
        report.message
    );
    assert!(report.plan.is_none());
}

#[tokio::test]
async fn luns_move_off_a_full_device_through_the_executor_and_its_journals() {
    let lab = Lab::new(SIMULATED);
    lab.full_device();
    let step = request(PlanKind::MoveLuns, TargetKind::StorageDevice, "st-a/d1");
    let report = lab.service.run_step_with(&step, Some(true)).await;
    assert_eq!(report.outcome, StepOutcome::Succeeded, "{}", report.message);
    let record = lab
        .service
        .history()
        .get(report.plan.as_deref().unwrap())
        .unwrap();
    assert!(!record.moves.is_empty());
    assert!(
        record
            .moves
            .iter()
            .all(|m| m.how == "lun" && m.to == "st-b/d1")
    );
    assert!(record.target_load.unwrap().after <= 0.8);
    assert!(
        report.message.starts_with("LUN moves off st-a/d1: "),
        "{}",
        report.message
    );

    // The operator's dry run of the same: recorded, nothing moved.
    let order = PlanOrder {
        kind: Kind::MoveLuns,
        target: Some("st-a/d1".into()),
        trigger: Trigger::Operator,
        execute: None,
    };
    let dry = lab.service.dry_run(order).unwrap();
    assert_eq!(dry.state, PlanState::DryRun);
    assert!(dry.moves.iter().all(|m| m.state == MoveState::WouldRun));
}

#[tokio::test]
async fn an_operator_execution_is_refused_while_another_plan_runs() {
    let lab = Lab::new(SIMULATED);
    lab.overloaded_pair();
    let order = PlanOrder {
        kind: Kind::Rebalance,
        target: Some("hv-a".into()),
        trigger: Trigger::Operator,
        execute: None,
    };
    let held = lab.service.lane(Kind::Rebalance).clone().lock_owned().await;
    let busy = lab.service.execute(order.clone()).await.unwrap_err();
    assert!(matches!(busy, Refusal::Conflict(_)), "{busy:?}");
    drop(held);
    let started = lab.service.execute(order).await.unwrap();
    assert_eq!(started.state, PlanState::Running);
    let id = started.id.clone();
    for _ in 0..200 {
        if lab.service.history().get(&id).unwrap().state.is_final() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(
        lab.service.history().get(&id).unwrap().state,
        PlanState::Done
    );
}
