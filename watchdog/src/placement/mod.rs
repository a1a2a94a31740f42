//! The placement service: the VM planner and the LUN rebalancer wired into
//! the running watchdog. It answers the policy engine whether it can take a
//! failover, rebalance or move-luns step ([`Planner`]), carries such steps
//! out ([`PlacementService::run_step`]), runs the capacity and storage
//! loops, keeps the plan history (API, status page), and counts and audits
//! every plan and move.
//!
//! Every plan goes the same way: the registry's hosts become the planner's
//! or rebalancer's snapshot; the plan (narrowed to the target host or
//! device) is recorded; when it is to be carried out, it is checked against
//! a fresh snapshot, then run by the executor through the configured
//! actuator or mover; each move's outcome goes into the record, the
//! metrics and the audit log. VM plans run one at a time, and so do LUN
//! plans: a second plan waits (policy steps), is refused (operators) or is
//! skipped (loops) while one runs.
//!
//! Layout:
//! * [`config`]: the `[planner]`, `[migration]` and `[storage]` sections.
//! * [`machinery`]: the actuator and mover they configure.
//! * [`vm_plans`], [`lun_plans`]: plans from the registry, their records,
//!   the fresh-snapshot check, outcomes written back.
//! * [`step`]: orders, refusals, and the report a step gets.
//! * [`history`]: the bounded ring of plans.
//! * [`progress`]: moves shown running and done while a plan runs.
//! * `loops`: the capacity and storage loops.
//! * [`api`]: `GET/POST /api/v1/plans`, `GET /api/v1/plans/{id}`.
//! * [`metrics`], [`audit`]: `hyperwatch_placement_*` and the audit lines.

pub mod api;
pub mod audit;
pub mod config;
pub mod history;
mod loops;
pub mod lun_plans;
pub mod machinery;
pub mod metrics;
pub mod progress;
pub mod step;
pub mod vm_plans;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use hyperwatch_policies::{
    planner::{NotAvailable, PlanRequest, Planner},
    target::TargetKind,
};
use tokio::sync::{Mutex, OwnedMutexGuard, watch};

use self::{
    config::{MigrationConfig, PlannerConfig, StorageConfig},
    history::{Kind, MoveState, PlanHistory, PlanRecord, PlanState, Trigger},
    lun_plans::LunPlan,
    machinery::Movers,
    metrics::{PlacementMetrics, PlanOutcome},
    progress::{Progress, TrackedActuator, TrackedMover},
    step::{PlanOrder, Refusal, StepOutcome, StepReport, conclude},
    vm_plans::VmPlan,
};
use crate::{
    cluster_view,
    commands::CommandRouter,
    config::Config,
    lun_mover,
    migration::{self, Actuator},
    registry::Registry,
    service::Watchdog,
    status::{LunSummary, StorageSummary},
};

/// How long an operator's execution waits for its lane: a loop's dry run
/// holds it for milliseconds, an execution for minutes.
const LANE_WAIT: Duration = Duration::from_secs(2);

/// The placement service; clones share it.
#[derive(Clone)]
pub struct PlacementService(Arc<Inner>);

struct Inner {
    planner: PlannerConfig,
    migration: MigrationConfig,
    storage: StorageConfig,
    registry: Arc<Registry>,
    history: Arc<PlanHistory>,
    metrics: PlacementMetrics,
    actuator: Option<Arc<dyn Actuator>>,
    movers: Movers,
    /// Held while a VM plan is made and carried out.
    vm_lane: Arc<Mutex<()>>,
    /// Held while a LUN plan is made and carried out (and while interrupted
    /// moves are settled at start).
    lun_lane: Arc<Mutex<()>>,
    stop: watch::Sender<bool>,
}

/// A plan made, not yet carried out.
struct Prepared {
    record: PlanRecord,
    planned: Planned,
    execute: bool,
}

enum Planned {
    Vms(VmPlan),
    Luns(LunPlan),
}

/// Starts the service on a bound watchdog: its loops, its routes, the
/// status page's plans and storage, its metrics. The hook `hyperwatch
/// serve` calls between `Watchdog::bind` and `run`; must be called inside
/// the tokio runtime.
pub fn attach(config: &Config, watchdog: &mut Watchdog) -> PlacementService {
    let service = PlacementService::start(config, &watchdog.registry, &watchdog.commands);
    watchdog.add_routes(api::routes(service.clone()));
    let history = service.0.history.clone();
    watchdog.status.provide_plans(move || history.summaries());
    let registry = watchdog.registry.clone();
    watchdog
        .status
        .provide_storage(move || storage_summaries(&registry));
    let metrics = service.0.metrics.clone();
    watchdog
        .registry
        .metrics
        .register_part(|r| metrics.register(r));
    service
}

/// Every device with its latest fill and its LUNs, for the status page.
fn storage_summaries(registry: &Registry) -> Vec<StorageSummary> {
    cluster_view::storage_map(&registry.capacity())
        .hosts
        .into_iter()
        .flat_map(|h| {
            h.devices.into_iter().map(move |d| StorageSummary {
                host: h.host.clone(),
                device: d.id,
                capacity: d.capacity_bytes,
                used: d.used_bytes,
                luns: d
                    .luns
                    .into_iter()
                    .map(|l| LunSummary {
                        id: l.id,
                        size: l.size_bytes,
                        consumer: l.consumer,
                    })
                    .collect(),
            })
        })
        .collect()
}

impl PlacementService {
    /// The service over `registry`, with its loops running and interrupted
    /// LUN moves being settled. Must be called inside the tokio runtime.
    pub fn start(config: &Config, registry: &Arc<Registry>, commands: &Arc<CommandRouter>) -> Self {
        let runtime = tokio::runtime::Handle::current();
        let (stop, _) = watch::channel(false);
        let inner = Inner {
            planner: config.planner.clone(),
            migration: config.migration.clone(),
            storage: config.storage.clone(),
            registry: registry.clone(),
            history: Arc::new(PlanHistory::new(config.planner.history)),
            metrics: PlacementMetrics::default(),
            actuator: machinery::actuator(&config.migration, registry, commands),
            movers: Movers::new(&config.storage, registry, commands, runtime),
            vm_lane: Arc::default(),
            lun_lane: Arc::default(),
            stop,
        };
        let service = Self(Arc::new(inner));
        let settling = service
            .0
            .lun_lane
            .clone()
            .try_lock_owned()
            .expect("a new lane is free");
        tokio::spawn(service.clone().settle_interrupted(settling));
        loops::spawn(&service);
        tracing::info!(
            actuator = service.0.migration.actuator.as_str(),
            execute_rebalance = service.0.migration.execute_rebalance,
            mover = service.0.storage.mover.as_str(),
            lun_dry_run = service.0.storage.dry_run,
            capacity_loop_seconds = service.0.planner.interval_seconds,
            storage_loop_seconds = service.0.storage.interval_seconds,
            "placement service started"
        );
        service
    }

    /// Stops the loops (plans under way run to their end).
    pub fn stop(&self) {
        let _ = self.0.stop.send(true);
    }

    /// The plan history.
    pub fn history(&self) -> &Arc<PlanHistory> {
        &self.0.history
    }

    /// Carries out a policy step (failover, rebalance, move-luns) on its
    /// target; rebalance and LUN moves follow their dry-run settings.
    pub async fn run_step(&self, request: &PlanRequest) -> StepReport {
        self.run_step_with(request, None).await
    }

    /// [`run_step`](Self::run_step) where the step asks to carry the plan
    /// out (`Some(true)`) or only record it (`Some(false)`).
    pub async fn run_step_with(&self, request: &PlanRequest, execute: Option<bool>) -> StepReport {
        let kind = Kind::from(request.kind);
        if let Err(NotAvailable(why)) = target_kind_fits(kind, request.target.kind) {
            return StepReport::refused(&Refusal::NotAvailable(why));
        }
        let order = PlanOrder {
            kind,
            target: Some(request.target.id.clone()),
            trigger: Trigger::Policy,
            execute,
        };
        // A step waits for the plan under way; the engine's timeout bounds
        // the wait.
        let lane = self.lane(kind).clone().lock_owned().await;
        match self.prepare(&order) {
            Ok(mut prepared) => {
                self.admit(&mut prepared, false);
                self.carry_out(prepared, lane).await
            }
            Err(refusal) => {
                tracing::warn!(kind = kind.as_str(), target = %request.target, %refusal, "placement step refused");
                StepReport::refused(&refusal)
            }
        }
    }

    /// Makes and records a plan without carrying it out.
    pub fn dry_run(&self, mut order: PlanOrder) -> Result<PlanRecord, Refusal> {
        order.execute = Some(false);
        let mut prepared = self.prepare(&order)?;
        self.admit(&mut prepared, false);
        self.finish(&mut prepared.record, None);
        Ok(prepared.record)
    }

    /// Makes, records and starts carrying out a plan; returns its record as
    /// it starts. Refused while a plan of the same lane is carried out.
    pub async fn execute(&self, mut order: PlanOrder) -> Result<PlanRecord, Refusal> {
        order.execute = Some(true);
        let lane = self.lane(order.kind).clone().lock_owned();
        let lane = tokio::time::timeout(LANE_WAIT, lane).await.map_err(|_| {
            Refusal::Conflict(format!(
                "another {} plan is being carried out; try again when it has ended (GET /api/v1/plans)",
                if order.kind == Kind::MoveLuns { "LUN" } else { "VM" }
            ))
        })?;
        let mut prepared = self.prepare(&order)?;
        self.admit(&mut prepared, false);
        if prepared.record.moves.is_empty() {
            self.finish(&mut prepared.record, None);
            return Ok(prepared.record);
        }
        let record = prepared.record.clone();
        let service = self.clone();
        tokio::spawn(async move { service.carry_out(prepared, lane).await });
        Ok(record)
    }

    fn lane(&self, kind: Kind) -> &Arc<Mutex<()>> {
        match kind {
            Kind::MoveLuns => &self.0.lun_lane,
            Kind::Rebalance | Kind::Failover => &self.0.vm_lane,
        }
    }

    /// Makes the plan for `order` from the registry as it is now.
    fn prepare(&self, order: &PlanOrder) -> Result<Prepared, Refusal> {
        let s = &self.0;
        if let Some(why) = machinery::unavailable(order.kind, &s.migration, &s.storage) {
            return Err(Refusal::NotAvailable(why));
        }
        let hosts = s.registry.capacity();
        let started = Instant::now();
        let target = order.target.as_deref();
        let planned = match order.kind {
            Kind::MoveLuns => Planned::Luns(lun_plans::make(&hosts, &s.storage, target)?),
            kind => Planned::Vms(vm_plans::make(&hosts, &s.planner, kind, target)?),
        };
        let seconds = started.elapsed().as_secs_f64();
        s.metrics.planned(order.kind, seconds);
        let execute = order.execute.unwrap_or(match order.kind {
            Kind::Failover => true,
            Kind::Rebalance => s.migration.execute_rebalance,
            Kind::MoveLuns => !s.storage.dry_run,
        });
        let id = s.history.next_id();
        let record = match &planned {
            Planned::Vms(p) => vm_plans::record(id, order, p, seconds, !execute),
            Planned::Luns(p) => lun_plans::record(id, order, p, seconds, !execute),
        };
        Ok(Prepared {
            record,
            planned,
            execute,
        })
    }

    /// Records a prepared plan, or with `fold` folds a repeated dry run
    /// into the record it repeats (returning that record's id).
    fn admit(&self, p: &mut Prepared, fold: bool) -> Option<String> {
        if fold && let Some(id) = self.0.history.fold_repeat(&p.record) {
            return Some(id);
        }
        self.0.history.insert(p.record.clone());
        audit::plan_made(&p.record);
        None
    }

    /// Carries a recorded plan out (or concludes a dry run), holding its
    /// lane until done.
    async fn carry_out(&self, mut p: Prepared, _lane: OwnedMutexGuard<()>) -> StepReport {
        if !p.execute || p.record.moves.is_empty() {
            let outcome = self.finish(&mut p.record, None);
            return StepReport::of(&p.record, outcome);
        }
        let started = Instant::now();
        let hosts = self.0.registry.capacity();
        let holds = match &p.planned {
            Planned::Vms(v) => vm_plans::still_holds(&hosts, &self.0.planner, &v.plan),
            Planned::Luns(l) => lun_plans::still_holds(&hosts, &self.0.storage, &l.plan),
        };
        if let Err(why) = holds {
            tracing::warn!(plan = %p.record.id, %why, "plan not carried out");
            for m in &mut p.record.moves {
                m.state = MoveState::Skipped;
                m.error = Some(format!("not started: {why}"));
            }
            let outcome = self.finish(&mut p.record, None);
            return StepReport::of(&p.record, outcome);
        }
        self.0
            .history
            .update(&p.record.id, |r| r.state = PlanState::Running);
        let progress = Progress {
            history: self.0.history.clone(),
            plan: p.record.id.clone(),
        };
        match &p.planned {
            Planned::Vms(v) => {
                let actuator = self.0.actuator.clone().expect("checked in prepare");
                let tracked = Arc::new(TrackedActuator {
                    inner: actuator,
                    progress,
                });
                let executor = migration::Executor::new(self.0.migration.executor(true), tracked);
                let report = executor.run(&v.plan).await;
                vm_plans::apply(&mut p.record, &report);
            }
            Planned::Luns(l) => {
                let mover = self
                    .0
                    .movers
                    .for_plan(&l.locations)
                    .expect("checked in prepare");
                let tracked = Arc::new(TrackedMover {
                    inner: mover,
                    progress,
                });
                let executor = lun_mover::Executor::new(self.0.storage.executor(true), tracked);
                match executor.execute(&l.plan).await {
                    Ok(outcomes) => lun_plans::apply(&mut p.record, &outcomes),
                    Err(e) => lun_plans::fail_all(&mut p.record, &e.to_string()),
                }
            }
        }
        let outcome = self.finish(&mut p.record, Some(started.elapsed().as_secs_f64()));
        StepReport::of(&p.record, outcome)
    }

    /// Concludes `r` (after `executed` seconds of execution, if it ran):
    /// final state and sentence into the history, metrics, audit lines.
    fn finish(&self, r: &mut PlanRecord, executed: Option<f64>) -> StepOutcome {
        let outcome = conclude(r);
        let m = &self.0.metrics;
        if let Some(seconds) = executed {
            m.executed(r.kind, seconds);
            for mv in &r.moves {
                m.moved(r.kind, mv.state, mv.bytes);
                audit::move_ended(&r.id, mv);
            }
        }
        m.plan(
            r.kind,
            match r.state {
                PlanState::DryRun => PlanOutcome::DryRun,
                PlanState::NothingToDo => PlanOutcome::NothingToDo,
                PlanState::Done => PlanOutcome::Done,
                PlanState::Failed | PlanState::Running => PlanOutcome::Failed,
            },
        );
        let done = r.clone();
        self.0.history.update(&r.id, |kept| *kept = done);
        audit::plan_ended(r);
        outcome
    }

    /// Settles the LUN moves a crash interrupted, holding the LUN lane.
    async fn settle_interrupted(self, _lane: OwnedMutexGuard<()>) {
        let s = &self.0;
        let Some(mover) = s.movers.for_plan(&[]) else {
            return;
        };
        let executor = lun_mover::Executor::new(s.storage.executor(false), mover);
        match executor.recover().await {
            Ok(settled) if settled.is_empty() => {}
            Ok(settled) => {
                let unsettled = settled.iter().filter(|m| m.result.is_err()).count();
                tracing::info!(
                    settled = settled.len() - unsettled,
                    unsettled,
                    dir = %s.storage.state_dir.display(),
                    "interrupted LUN moves found at start"
                );
            }
            Err(e) => tracing::error!(error = %e, "cannot look for interrupted LUN moves"),
        }
    }
}

/// The target kind each plan kind works on.
fn target_kind_fits(kind: Kind, target: TargetKind) -> Result<(), NotAvailable> {
    let wanted = match kind {
        Kind::MoveLuns => TargetKind::StorageDevice,
        Kind::Rebalance | Kind::Failover => TargetKind::Host,
    };
    if target == wanted {
        Ok(())
    } else {
        Err(NotAvailable(format!(
            "{} works on {wanted} targets, not on a {target}",
            kind.as_str()
        )))
    }
}

impl Planner for PlacementService {
    /// Ok when the request's kind has an actuator (or mover) configured
    /// that can do it and the target is a hypervisor (or storage device)
    /// the registry knows. Reads only the configuration and the registry.
    fn check(&self, request: &PlanRequest) -> Result<(), NotAvailable> {
        let kind = Kind::from(request.kind);
        target_kind_fits(kind, request.target.kind)?;
        let s = &self.0;
        if let Some(why) = machinery::unavailable(kind, &s.migration, &s.storage) {
            return Err(NotAvailable(why));
        }
        let id = &request.target.id;
        let (host, device) = match kind {
            Kind::MoveLuns => cluster_view::split(id).ok_or_else(|| {
                NotAvailable(format!(
                    "storage device {id:?} does not name its host (HOST/DEVICE)"
                ))
            })?,
            _ => (id.as_str(), ""),
        };
        let entry = s
            .registry
            .entry(host)
            .ok_or_else(|| NotAvailable(format!("no host {host:?} is known to the watchdog")))?;
        let record = entry.lock().expect("host lock");
        let inventory = &record.inventory;
        match kind {
            Kind::MoveLuns if !inventory.storage.iter().any(|d| d.name == device) => Err(
                NotAvailable(format!("{host} reports no storage device {device:?}")),
            ),
            Kind::Rebalance | Kind::Failover
                if !(inventory.roles.is_empty()
                    || inventory
                        .roles
                        .iter()
                        .any(|r| r == cluster_view::ROLE_HYPERVISOR)) =>
            {
                Err(NotAvailable(format!("{host} is not a hypervisor")))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;
