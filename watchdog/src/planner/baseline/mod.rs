//! Comparison points for [`rebalance`](super::rebalance), run by the
//! benchmark on the same snapshots: two greedy one-VM-at-a-time balancers.
//!
//! * [`watcher`]: OpenStack Watcher's `workload_stabilization` strategy as
//!   its code does it: candidates ranked once per audit, executed in that
//!   order while each lowers the spread, audits repeated until balanced.
//! * [`global`]: a global greedy, stronger than Watcher: the best single
//!   move of any VM to any host, re-ranked after every move.
//!
//! Both honour the planner's constraints through the same feasibility
//! check and report through the same [`MigrationPlan`], so they are
//! compared with the planner on equal terms; both move a VM at most once.

pub mod global;
pub mod watcher;

use super::plan::MigrationPlan;

pub use global::greedy_rebalance;
pub use watcher::watcher_rebalance;

/// Outcome of a baseline run.
#[derive(Debug, Clone)]
pub struct BaselineRun {
    pub plan: MigrationPlan,
    /// Rounds run: iterations (one migration each, except the last) for
    /// [`global`], audits for [`watcher`].
    pub rounds: usize,
    /// Whether it stopped at its round limit rather than converging.
    pub capped: bool,
}
