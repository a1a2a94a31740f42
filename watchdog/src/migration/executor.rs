//! Runs a plan's migrations through an actuator: each starts once the
//! migrations it depends on are done and the concurrency limits (per source,
//! per destination, overall) allow it, in plan order. Each step is bounded
//! by a timeout. A migration is done only when the destination reports the
//! VM running, and the source copy is released only then. A failure leaves
//! the VM at its source, skips every migration that depends on it, and is
//! reported. Rebalance plans are a dry run unless execution is switched on.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};
// tokio's clock, so that tests with paused time measure virtual time.
use tokio::{task::JoinSet, time::Instant};

use super::{Actuator, ActuatorError, MigrationRequest};
use crate::planner::{MigrationPlan, PlanMode};

/// Limits and timeouts of the executor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExecutorConfig {
    /// Most migrations in flight in the cluster at once.
    pub max_concurrent: usize,
    /// Most migrations in flight out of one host: each saturates the
    /// source's migration network.
    pub max_per_source: usize,
    /// Most migrations in flight into one host.
    pub max_per_destination: usize,
    /// Bound on copying one VM, seconds.
    pub migration_timeout_secs: u64,
    /// Bound on the destination reporting the VM running after the copy,
    /// seconds.
    pub confirm_timeout_secs: u64,
    /// Bound on releasing the source copy and on undoing a migration,
    /// seconds.
    pub cleanup_timeout_secs: u64,
    /// Pause between two asks whether the destination runs the VM,
    /// milliseconds.
    pub confirm_poll_ms: u64,
    /// Carry rebalance plans out. Off by default: a rebalance is optional,
    /// so it only reports what it would do until an operator or a policy
    /// step turns this on. Failover plans always run.
    pub execute_rebalance: bool,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        ExecutorConfig {
            // Nova's max_concurrent_live_migrations default is 1 per
            // compute host; vSphere allows 8 per host on 10 GbE. 2 per host
            // and 8 overall keep a rebalance from flooding the network.
            max_concurrent: 8,
            max_per_source: 2,
            max_per_destination: 2,
            // Ten minutes copies 600 GB at 1 GB/s: beyond that, a VM
            // dirtying memory faster than the link is not converging.
            migration_timeout_secs: 600,
            // A migrated qemu resumes in well under a second.
            confirm_timeout_secs: 60,
            cleanup_timeout_secs: 60,
            confirm_poll_ms: 200,
            execute_rebalance: false,
        }
    }
}

impl ExecutorConfig {
    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }
}

/// Which step of a migration failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Transfer,
    Confirm,
    Release,
}

/// What happened to one migration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum MoveStatus {
    /// Dry run: it would have run.
    WouldRun,
    /// The destination runs the VM and the source copy is released.
    Done,
    /// It failed at `stage`. Before release, the VM was put back to run at
    /// its source (`restored` says whether that worked); a failed release
    /// leaves the VM running at the destination with a source copy left.
    Failed {
        stage: Stage,
        error: String,
        restored: bool,
    },
    /// Not started: migration `after` (which it waits for, directly or not)
    /// did not complete.
    Skipped { after: usize },
}

/// One migration's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MoveOutcome {
    pub request: MigrationRequest,
    pub status: MoveStatus,
    /// Time from start to done or failed, milliseconds.
    pub elapsed_ms: u64,
}

/// The outcome of a whole plan, in plan order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionReport {
    pub dry_run: bool,
    pub actuator: String,
    pub outcomes: Vec<MoveOutcome>,
    pub elapsed_ms: u64,
}

impl ExecutionReport {
    pub fn done(&self) -> usize {
        self.outcomes
            .iter()
            .filter(|o| o.status == MoveStatus::Done)
            .count()
    }

    pub fn failed(&self) -> usize {
        self.outcomes
            .iter()
            .filter(|o| matches!(o.status, MoveStatus::Failed { .. }))
            .count()
    }

    pub fn skipped(&self) -> usize {
        self.outcomes
            .iter()
            .filter(|o| matches!(o.status, MoveStatus::Skipped { .. }))
            .count()
    }
}

/// Carries out plans through one actuator.
pub struct Executor {
    config: ExecutorConfig,
    actuator: Arc<dyn Actuator>,
}

impl Executor {
    pub fn new(config: ExecutorConfig, actuator: Arc<dyn Actuator>) -> Self {
        Executor { config, actuator }
    }

    /// Runs `plan` to the end; every migration gets an outcome.
    pub async fn run(&self, plan: &MigrationPlan) -> ExecutionReport {
        let started = Instant::now();
        let requests: Vec<MigrationRequest> = plan
            .migrations
            .iter()
            .enumerate()
            .map(|(i, m)| MigrationRequest::from_plan(i, m))
            .collect();
        let dry_run = plan.mode == PlanMode::Rebalance && !self.config.execute_rebalance;
        let mut status: Vec<Option<MoveStatus>> = vec![None; requests.len()];
        let mut elapsed = vec![0u64; requests.len()];
        if dry_run {
            status.fill(Some(MoveStatus::WouldRun));
        } else {
            self.schedule(plan, &requests, &mut status, &mut elapsed)
                .await;
        }
        let outcomes = requests
            .into_iter()
            .zip(status)
            .zip(elapsed)
            .map(|((request, status), elapsed_ms)| MoveOutcome {
                request,
                status: status.expect("every migration ends with a status"),
                elapsed_ms,
            })
            .collect();
        ExecutionReport {
            dry_run,
            actuator: self.actuator.name().to_owned(),
            outcomes,
            elapsed_ms: started.elapsed().as_millis() as u64,
        }
    }

    async fn schedule(
        &self,
        plan: &MigrationPlan,
        requests: &[MigrationRequest],
        status: &mut [Option<MoveStatus>],
        elapsed: &mut [u64],
    ) {
        let mut running: JoinSet<(usize, MoveStatus, u64)> = JoinSet::new();
        let mut from: BTreeMap<&str, usize> = BTreeMap::new();
        let mut to: BTreeMap<&str, usize> = BTreeMap::new();
        let mut started = vec![false; requests.len()];
        let mut task_of: BTreeMap<tokio::task::Id, (usize, Instant)> = BTreeMap::new();
        loop {
            for (i, r) in requests.iter().enumerate() {
                if started[i] {
                    continue;
                }
                let deps = &plan.migrations[i].depends_on;
                // A migration waiting on one that did not complete never runs.
                if let Some(after) = deps.iter().copied().find(|&d| {
                    matches!(
                        status.get(d),
                        Some(Some(MoveStatus::Failed { .. } | MoveStatus::Skipped { .. }))
                    )
                }) {
                    started[i] = true;
                    status[i] = Some(MoveStatus::Skipped {
                        after: root_cause(status, after),
                    });
                    tracing::warn!(vm = %r.vm, after, "migration skipped: a migration it waits for did not complete");
                    continue;
                }
                let ready = deps
                    .iter()
                    .all(|&d| status.get(d) == Some(&Some(MoveStatus::Done)));
                // A limit of 0 counts as 1: nothing would ever run.
                let c = &self.config;
                let room = running.len() < c.max_concurrent.max(1)
                    && from.get(r.source.as_str()).copied().unwrap_or(0) < c.max_per_source.max(1)
                    && to.get(r.destination.as_str()).copied().unwrap_or(0)
                        < c.max_per_destination.max(1);
                if ready && room {
                    started[i] = true;
                    *from.entry(&r.source).or_default() += 1;
                    *to.entry(&r.destination).or_default() += 1;
                    tracing::info!(vm = %r.vm, source = %r.source, destination = %r.destination, "migration starting");
                    let (actuator, config, request) =
                        (self.actuator.clone(), self.config.clone(), r.clone());
                    let task = running.spawn(async move {
                        let t = Instant::now();
                        let outcome = migrate(actuator.as_ref(), &config, &request).await;
                        (i, outcome, t.elapsed().as_millis() as u64)
                    });
                    task_of.insert(task.id(), (i, Instant::now()));
                }
            }
            let Some(joined) = running.join_next_with_id().await else {
                break;
            };
            // An actuator that panics fails its migration, not the executor;
            // what state it left the VM in is unknown.
            let (i, outcome, ms) = match joined {
                Ok((_, finished)) => finished,
                Err(e) => {
                    let (i, t) = task_of[&e.id()];
                    let error = format!("the {} actuator panicked: {e}", self.actuator.name());
                    let failed = MoveStatus::Failed {
                        stage: Stage::Transfer,
                        error,
                        restored: false,
                    };
                    (i, failed, t.elapsed().as_millis() as u64)
                }
            };
            let r = &requests[i];
            *from.entry(&r.source).or_default() -= 1;
            *to.entry(&r.destination).or_default() -= 1;
            match &outcome {
                MoveStatus::Done => {
                    tracing::info!(vm = %r.vm, destination = %r.destination, ms, "migration done")
                }
                other => tracing::warn!(vm = %r.vm, outcome = ?other, "migration failed"),
            }
            status[i] = Some(outcome);
            elapsed[i] = ms;
        }
        // The planner's dependencies point at earlier migrations, so nothing
        // waits once nothing runs; a hand-made plan with a cycle would.
        for (i, s) in status.iter_mut().enumerate() {
            if s.is_none() {
                *s = Some(MoveStatus::Failed {
                    stage: Stage::Transfer,
                    error: "never started: its dependencies or the limits never allowed it"
                        .to_owned(),
                    restored: true,
                });
                tracing::error!(vm = %requests[i].vm, "migration never started");
            }
        }
    }
}

/// The failed migration at the root of a chain of skips.
fn root_cause(status: &[Option<MoveStatus>], mut index: usize) -> usize {
    while let Some(Some(MoveStatus::Skipped { after })) = status.get(index) {
        index = *after;
    }
    index
}

/// One migration, each step bounded: transfer, confirm the destination
/// runs the VM, release the source. Anything failing before the release is
/// undone.
async fn migrate(
    actuator: &dyn Actuator,
    config: &ExecutorConfig,
    request: &MigrationRequest,
) -> MoveStatus {
    let cleanup = ExecutorConfig::secs(config.cleanup_timeout_secs);
    let failed = |stage: Stage, error: String| async move {
        let restored = match tokio::time::timeout(cleanup, actuator.abort(request)).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                tracing::error!(vm = %request.vm, error = %e, "undoing the migration failed");
                false
            }
            Err(_) => {
                tracing::error!(vm = %request.vm, ?cleanup, "undoing the migration timed out");
                false
            }
        };
        MoveStatus::Failed {
            stage,
            error,
            restored,
        }
    };
    let transfer = ExecutorConfig::secs(config.migration_timeout_secs);
    match tokio::time::timeout(transfer, actuator.transfer(request)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return failed(Stage::Transfer, e.to_string()).await,
        Err(_) => return failed(Stage::Transfer, format!("not complete after {transfer:?}")).await,
    }
    if let Err(error) = confirm(actuator, config, request).await {
        return failed(Stage::Confirm, error).await;
    }
    match tokio::time::timeout(cleanup, actuator.release_source(request)).await {
        Ok(Ok(())) => MoveStatus::Done,
        // The VM runs at its destination; only the source copy is left.
        Ok(Err(e)) => MoveStatus::Failed {
            stage: Stage::Release,
            error: e.to_string(),
            restored: false,
        },
        Err(_) => MoveStatus::Failed {
            stage: Stage::Release,
            error: format!("no answer within {cleanup:?}"),
            restored: false,
        },
    }
}

/// Polls until the destination reports the VM running, within the confirm
/// timeout.
async fn confirm(
    actuator: &dyn Actuator,
    config: &ExecutorConfig,
    request: &MigrationRequest,
) -> Result<(), String> {
    let limit = ExecutorConfig::secs(config.confirm_timeout_secs);
    let poll = Duration::from_millis(config.confirm_poll_ms);
    let polling = async {
        loop {
            match actuator.confirm_running(request).await {
                Ok(true) => return Ok(()),
                Ok(false) => tokio::time::sleep(poll).await,
                Err(e @ ActuatorError::Unsupported { .. }) => return Err(e.to_string()),
                Err(e) => {
                    tracing::debug!(vm = %request.vm, error = %e, "destination not answering yet");
                    tokio::time::sleep(poll).await;
                }
            }
        }
    };
    tokio::time::timeout(limit, polling)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "{} does not report it running after {limit:?}",
                request.destination
            ))
        })
}
