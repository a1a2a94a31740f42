//! Runs a plan's moves with one mover: dry run unless told otherwise; moves
//! start in plan order once the moves they wait for are done, within a
//! limit per device and in all; each has a timeout after which it is
//! cancelled and settled; a failed move's dependents are skipped. At start,
//! [`Executor::recover`] settles whatever a crash left journaled.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use super::{Cancel, Journal, LunMover, MoveError, MoveOrder, Recovered};
use crate::rebalancer::Plan;

/// A cancelled move has this long to stop and settle (a file copy stops
/// within one chunk, a killed pvmove within seconds) before the executor
/// gives up on it and leaves its journal for the next start.
pub const CANCEL_GRACE: Duration = Duration::from_secs(120);

/// How the executor runs moves.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExecutorConfig {
    /// Directory of the journals of moves in flight; it must survive
    /// restarts (not a tmpfs).
    pub state_dir: PathBuf,
    /// Only describe what would be done. On by default: an operator turns
    /// moving real data on.
    pub dry_run: bool,
    /// Moves at once that touch one device, as source or destination.
    pub per_device: usize,
    /// Moves at once in all.
    pub parallel: usize,
    /// Longest a move may run before it is cancelled and rolled back.
    pub move_timeout_seconds: u64,
}

/// Default for `move_timeout_seconds`: a 1 TiB LUN copied at 100 MB/s
/// takes about three hours; four leave room without waiting forever.
pub const DEFAULT_MOVE_TIMEOUT_SECONDS: u64 = 4 * 3600;

impl Default for ExecutorConfig {
    fn default() -> Self {
        Self {
            state_dir: PathBuf::from("/var/lib/hyperwatch/lun-moves"),
            dry_run: true,
            per_device: 1,
            parallel: 4,
            move_timeout_seconds: DEFAULT_MOVE_TIMEOUT_SECONDS,
        }
    }
}

/// What became of one move of a plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum MoveOutcome {
    /// Dry run: what would be done.
    WouldRun { description: String },
    /// The LUN is at its destination and its source released.
    Done,
    /// The move failed; `rolled_back` says the LUN is whole at its source
    /// again (otherwise its journal is left for the next start).
    Failed { error: String, rolled_back: bool },
    /// The move ran out of time and was cancelled.
    TimedOut { rolled_back: bool },
    /// Not started: move `waiting_for` (an index into the plan) did not
    /// finish.
    Skipped { waiting_for: usize },
}

/// Runs plans with one mover.
pub struct Executor {
    config: ExecutorConfig,
    mover: Arc<dyn LunMover>,
}

/// A move settled at start.
#[derive(Debug)]
pub struct Settled {
    /// The move the crash interrupted.
    pub order: MoveOrder,
    /// How it was settled, or why it could not be (its journal stays).
    pub result: Result<Recovered, MoveError>,
}

impl Executor {
    pub fn new(config: ExecutorConfig, mover: Arc<dyn LunMover>) -> Self {
        Self { config, mover }
    }

    /// Settles every move journaled in the state directory: a crash
    /// interrupted them. Call it before [`Executor::execute`].
    pub async fn recover(&self) -> Result<Vec<Settled>, MoveError> {
        let dir = self.config.state_dir.clone();
        let mover = self.mover.clone();
        blocking(move || recover_all(&dir, mover.as_ref())).await
    }

    /// Carries out `plan` (or describes it, in a dry run) and returns an
    /// outcome per move, in plan order. Refuses while moves are unsettled.
    pub async fn execute(&self, plan: &Plan) -> Result<Vec<MoveOutcome>, MoveError> {
        let orders: Vec<MoveOrder> = plan
            .moves
            .iter()
            .map(|m| MoveOrder {
                lun: m.lun.clone(),
                from: m.from.clone(),
                to: m.to.clone(),
                bytes: m.bytes,
            })
            .collect();
        if self.config.dry_run {
            return Ok(orders
                .iter()
                .zip(&plan.moves)
                .map(|(o, m)| MoveOutcome::WouldRun {
                    description: format!("{m}\n  {}", self.mover.describe(o)),
                })
                .collect());
        }
        let dir = self.config.state_dir.clone();
        if let Some(j) = blocking(move || Journal::pending(&dir)).await?.first() {
            return Err(MoveError::Journal {
                path: j.path().to_owned(),
                message: "a move is unsettled; run recovery before a new plan".into(),
            });
        }

        let n = orders.len();
        let mut outcome: Vec<Option<MoveOutcome>> = vec![None; n];
        let mut started = vec![false; n];
        let mut busy: BTreeMap<String, usize> = BTreeMap::new();
        let mut running = JoinSet::new();
        let limit = self.config.per_device.max(1);
        loop {
            for k in 0..n {
                if started[k] {
                    continue;
                }
                let failed = plan.moves[k]
                    .after
                    .iter()
                    .find(|&&d| matches!(&outcome[d], Some(o) if *o != MoveOutcome::Done));
                if let Some(&d) = failed {
                    started[k] = true;
                    outcome[k] = Some(MoveOutcome::Skipped { waiting_for: d });
                    continue;
                }
                let ready = plan.moves[k]
                    .after
                    .iter()
                    .all(|&d| outcome[d] == Some(MoveOutcome::Done));
                let o = &orders[k];
                let free = |dev: &str| busy.get(dev).copied().unwrap_or(0) < limit;
                if ready
                    && running.len() < self.config.parallel.max(1)
                    && free(&o.from)
                    && free(&o.to)
                {
                    started[k] = true;
                    *busy.entry(o.from.clone()).or_default() += 1;
                    *busy.entry(o.to.clone()).or_default() += 1;
                    tracing::info!(lun = %o.lun, from = %o.from, to = %o.to, "starting LUN move: {}", plan.moves[k]);
                    running.spawn(self.one(k, o.clone()));
                }
            }
            let Some(done) = running.join_next().await else {
                break;
            };
            let (k, out) = done.expect("a move task does not panic");
            for dev in [&orders[k].from, &orders[k].to] {
                *busy.get_mut(dev.as_str()).expect("counted at start") -= 1;
            }
            tracing::info!(lun = %orders[k].lun, outcome = ?out, "LUN move ended");
            outcome[k] = Some(out);
        }
        Ok(outcome
            .into_iter()
            .map(|o| o.expect("every move ends or is skipped"))
            .collect())
    }

    /// Runs move `k` with its timeout and settles it when it fails.
    fn one(
        &self,
        k: usize,
        order: MoveOrder,
    ) -> impl Future<Output = (usize, MoveOutcome)> + Send + 'static {
        let mover = self.mover.clone();
        let dir = self.config.state_dir.clone();
        let timeout = Duration::from_secs(self.config.move_timeout_seconds);
        async move {
            let cancel = Cancel::default();
            let task = {
                let (mover, cancel) = (mover.clone(), cancel.clone());
                tokio::task::spawn_blocking(move || {
                    let mut journal = Journal::create(&dir, mover.name(), &order)?;
                    let result = mover.run(&order, &mut journal, &cancel);
                    Ok::<_, MoveError>((journal, result))
                })
            };
            tokio::pin!(task);
            let mut timed_out = false;
            let joined = tokio::select! {
                r = &mut task => r,
                () = tokio::time::sleep(timeout) => {
                    timed_out = true;
                    cancel.cancel();
                    match tokio::time::timeout(CANCEL_GRACE, &mut task).await {
                        Ok(r) => r,
                        Err(_) => return (k, MoveOutcome::TimedOut { rolled_back: false }),
                    }
                }
            };
            let (mut journal, result) = match joined.expect("a mover does not panic") {
                Ok(pair) => pair,
                // No journal was made: nothing happened to the LUN.
                Err(e) => {
                    return (
                        k,
                        MoveOutcome::Failed {
                            error: e.to_string(),
                            rolled_back: true,
                        },
                    );
                }
            };
            let error = match result {
                Ok(()) => {
                    let settled = blocking(move || journal.settle()).await;
                    return (
                        k,
                        match settled {
                            Ok(()) => MoveOutcome::Done,
                            Err(e) => MoveOutcome::Failed {
                                error: e.to_string(),
                                rolled_back: false,
                            },
                        },
                    );
                }
                Err(e) => e.to_string(),
            };
            let recovered = blocking(move || {
                let r = mover.recover(&mut journal)?;
                journal.settle()?;
                Ok::<_, MoveError>(r)
            })
            .await;
            let out = match (recovered, timed_out) {
                (Ok(Recovered::Finished), _) => MoveOutcome::Done,
                (Ok(Recovered::RolledBack), true) => MoveOutcome::TimedOut { rolled_back: true },
                (Ok(Recovered::RolledBack), false) => MoveOutcome::Failed {
                    error,
                    rolled_back: true,
                },
                (Err(e), true) => {
                    tracing::error!(error = %e, "a timed-out LUN move could not be settled");
                    MoveOutcome::TimedOut { rolled_back: false }
                }
                (Err(e), false) => MoveOutcome::Failed {
                    error: format!("{error}; settling it failed too: {e}"),
                    rolled_back: false,
                },
            };
            (k, out)
        }
    }
}

fn recover_all(dir: &Path, mover: &dyn LunMover) -> Result<Vec<Settled>, MoveError> {
    let mut settled = Vec::new();
    for mut journal in Journal::pending(dir)? {
        let order = journal.record().order.clone();
        let result = if journal.record().mover != mover.name() {
            Err(MoveError::Journal {
                path: journal.path().to_owned(),
                message: format!(
                    "belongs to the {} mover, not {}",
                    journal.record().mover,
                    mover.name()
                ),
            })
        } else {
            mover
                .recover(&mut journal)
                .and_then(|r| journal.settle().map(|()| r))
        };
        match &result {
            Ok(r) => {
                tracing::info!(lun = %order.lun, recovered = ?r, "settled an interrupted LUN move")
            }
            Err(e) => {
                tracing::error!(lun = %order.lun, error = %e, "cannot settle an interrupted LUN move")
            }
        }
        settled.push(Settled { order, result });
    }
    Ok(settled)
}

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("blocking work does not panic")
}

#[cfg(test)]
#[path = "executor_tests.rs"]
mod tests;
