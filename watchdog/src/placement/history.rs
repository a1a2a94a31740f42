//! The plan history: a bounded ring of every plan the service made (VM and
//! LUN), with its explanation, figures before and after, and the outcome of
//! each move as execution goes. The API serves it, the status page and its
//! Prometheus families read it through [`PlanHistory::summaries`].

use std::{
    collections::VecDeque,
    sync::Mutex,
    time::{SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Serialize};

use super::step::PlanOrder;
use crate::{
    planner::MigrationPlan,
    rebalancer,
    status::{MigrationSummary, PlanSummary},
};

/// What a plan is for; the same words name the metrics' `mode` label and
/// the status page's plan mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Even out the load of hypervisors (all, or off one host).
    Rebalance,
    /// Restart a failed host's VMs elsewhere.
    Failover,
    /// Move LUNs off full or busy storage devices (all, or off one).
    MoveLuns,
}

impl Kind {
    /// The name in the API, the CLI, metrics and the status page.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Rebalance => "rebalance",
            Kind::Failover => "failover",
            Kind::MoveLuns => "move-luns",
        }
    }

    /// Every kind, for metrics made ahead.
    pub const ALL: [Kind; 3] = [Kind::Rebalance, Kind::Failover, Kind::MoveLuns];
}

impl From<hyperwatch_policies::planner::PlanKind> for Kind {
    fn from(k: hyperwatch_policies::planner::PlanKind) -> Self {
        use hyperwatch_policies::planner::PlanKind;
        match k {
            PlanKind::Rebalance => Kind::Rebalance,
            PlanKind::Failover => Kind::Failover,
            PlanKind::MoveLuns => Kind::MoveLuns,
        }
    }
}

/// Who asked for a plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Trigger {
    /// A recovery policy's step.
    Policy,
    /// An operator, through the API or `hyperwatch plan`.
    Operator,
    /// The periodic capacity loop.
    CapacityLoop,
    /// The periodic storage loop.
    StorageLoop,
}

/// Where a plan is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PlanState {
    /// Recorded only: nothing was to be carried out.
    DryRun,
    /// Its moves are being carried out.
    Running,
    /// Every move done and its target relieved.
    Done,
    /// A move failed, a VM found no host, the target is still over its
    /// threshold, or the cluster changed so that the plan no longer held.
    Failed,
    /// No move was needed or possible.
    NothingToDo,
}

impl PlanState {
    /// Whether the plan will not change any more.
    pub fn is_final(self) -> bool {
        self != PlanState::Running
    }
}

/// Where one move is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MoveState {
    /// Waiting for its turn (its dependencies, the limits).
    Pending,
    /// Dry run: it would have run.
    WouldRun,
    /// Under way.
    Running,
    /// At its destination, confirmed, and its source released.
    Done,
    /// Failed (the item stays, or is back, at its source unless `error` says).
    Failed,
    /// Cancelled at its timeout.
    TimedOut,
    /// Not started: a move it waits for did not complete.
    Skipped,
}

impl MoveState {
    /// The word in the status page and in operator sentences.
    pub fn as_str(self) -> &'static str {
        match self {
            MoveState::Pending => "pending",
            MoveState::WouldRun => "would-run",
            MoveState::Running => "running",
            MoveState::Done => "done",
            MoveState::Failed => "failed",
            MoveState::TimedOut => "timed-out",
            MoveState::Skipped => "skipped",
        }
    }

    /// Counts as not done for good (the status page's "failed").
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            MoveState::Failed | MoveState::TimedOut | MoveState::Skipped
        )
    }
}

/// One move of a plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MoveRecord {
    /// The VM or LUN.
    pub item: String,
    /// Source host or device.
    pub from: String,
    /// Destination host or device.
    pub to: String,
    /// `live` or `restart` (VMs), `lun`.
    pub how: String,
    /// Bytes copied when it runs (resident memory, LUN bytes; 0 for a
    /// restart).
    pub bytes: u64,
    /// Moves (indices) that must be done before this one starts.
    pub depends_on: Vec<usize>,
    /// Why it moves, in a line.
    pub why: String,
    pub state: MoveState,
    /// What went wrong, for failed, timed-out and skipped moves.
    pub error: Option<String>,
    /// Time from its start to its end, milliseconds.
    pub elapsed_ms: Option<u64>,
}

/// The target's load before and after the plan: a host's utilization or
/// a device's used fraction.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetLoad {
    pub before: f64,
    pub after: f64,
    /// The threshold it should be under.
    pub threshold: f64,
}

/// The plan itself, as the planner or rebalancer made it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PlanDetail {
    /// A VM placement plan.
    Vms(MigrationPlan),
    /// A LUN plan.
    Luns(rebalancer::Plan),
}

/// One plan, its explanation and what became of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanRecord {
    /// Unique within this watchdog's life; starts with the start time.
    pub id: String,
    pub kind: Kind,
    pub trigger: Trigger,
    /// The host or device it relieves; none: the whole cluster.
    pub target: Option<String>,
    pub state: PlanState,
    /// Recorded only, nothing carried out.
    pub dry_run: bool,
    /// Unix seconds when it was made.
    pub created: f64,
    /// Unix seconds of its last change.
    pub updated: f64,
    /// Unix seconds when it ended (final state).
    pub finished: Option<f64>,
    /// Time spent planning, seconds.
    pub plan_seconds: f64,
    /// Why it was made, in a few words.
    pub reason: String,
    /// What it did or would do, in a sentence: the step's report.
    pub summary: String,
    /// One line per move and per problem: what, where and why.
    pub explanation: Vec<String>,
    /// What the snapshot had to leave out (duplicates, constraints naming
    /// absent VMs).
    pub notes: Vec<String>,
    /// Spread before the plan: the standard deviation of host utilization
    /// (VM plans) or of device fill in the worst group (LUN plans).
    pub spread_before: f64,
    /// ...and once every move is done.
    pub spread_after: f64,
    /// The target's load, when the plan has a target.
    pub target_load: Option<TargetLoad>,
    pub moves: Vec<MoveRecord>,
    /// VMs that had to move and found no host, LUN problems no move fixes.
    pub unplaced: Vec<String>,
    /// Bytes the moves copy, and those copied by moves done.
    pub bytes_to_move: u64,
    pub bytes_moved: u64,
    /// Identical dry runs of the loops folded into this record.
    pub repeats: u32,
    /// The plan as made; left out of lists.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub detail: Option<PlanDetail>,
}

impl PlanRecord {
    /// The record of a plan just made for `order`, before its moves and
    /// figures are filled in.
    pub fn new(id: String, order: &PlanOrder, dry_run: bool, plan_seconds: f64) -> Self {
        let now = unix_now();
        Self {
            id,
            kind: order.kind,
            trigger: order.trigger,
            target: order.target.clone(),
            state: if dry_run {
                PlanState::DryRun
            } else {
                PlanState::Running
            },
            dry_run,
            created: now,
            updated: now,
            finished: None,
            plan_seconds,
            reason: String::new(),
            summary: String::new(),
            explanation: Vec::new(),
            notes: Vec::new(),
            spread_before: 0.0,
            spread_after: 0.0,
            target_load: None,
            moves: Vec::new(),
            unplaced: Vec::new(),
            bytes_to_move: 0,
            bytes_moved: 0,
            repeats: 0,
            detail: None,
        }
    }

    /// The state a new move of this record starts in.
    pub fn initial_move_state(&self) -> MoveState {
        if self.dry_run {
            MoveState::WouldRun
        } else {
            MoveState::Pending
        }
    }

    /// Counts of moves by state.
    pub fn count(&self, state: MoveState) -> usize {
        self.moves.iter().filter(|m| m.state == state).count()
    }

    /// The same moves (item, from, to) as `other`.
    fn same_moves(&self, other: &PlanRecord) -> bool {
        self.moves.len() == other.moves.len()
            && self
                .moves
                .iter()
                .zip(&other.moves)
                .all(|(a, b)| (&a.item, &a.from, &a.to) == (&b.item, &b.from, &b.to))
            && self.unplaced == other.unplaced
    }

    /// The status page's view.
    pub fn summary_for_status(&self) -> PlanSummary {
        let count = |f: fn(MoveState) -> bool| self.moves.iter().filter(|m| f(m.state)).count();
        PlanSummary {
            id: self.id.clone(),
            mode: self.kind.as_str().to_owned(),
            moves: self.moves.len() as u32,
            done: count(|s| s == MoveState::Done) as u32,
            failed: count(MoveState::is_failure) as u32,
            started: self.created,
            reason: if self.dry_run {
                format!("dry run: {}", self.reason)
            } else {
                self.reason.clone()
            },
            dry_run: self.dry_run,
            migrations: self
                .moves
                .iter()
                .map(|m| MigrationSummary {
                    item: m.item.clone(),
                    from: m.from.clone(),
                    to: m.to.clone(),
                    state: m.state.as_str().to_owned(),
                })
                .collect(),
        }
    }
}

/// Unix seconds now.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The ring of recent plans.
#[derive(Debug)]
pub struct PlanHistory {
    capacity: usize,
    /// Start of this watchdog, in plan ids: unique across restarts.
    epoch: u64,
    inner: Mutex<Ring>,
}

#[derive(Debug, Default)]
struct Ring {
    records: VecDeque<PlanRecord>,
    next: u64,
}

impl PlanHistory {
    /// A history keeping the `capacity` newest plans (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            epoch: unix_now() as u64,
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ring> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A fresh plan id.
    pub fn next_id(&self) -> String {
        let mut ring = self.lock();
        ring.next += 1;
        format!("p{}-{}", self.epoch, ring.next)
    }

    /// Adds `record` as the newest, dropping the oldest beyond capacity.
    pub fn insert(&self, record: PlanRecord) {
        let mut ring = self.lock();
        ring.records.push_back(record);
        while ring.records.len() > self.capacity {
            ring.records.pop_front();
        }
    }

    /// Folds a loop's dry run into the newest record when that is a dry run
    /// of the same kind, trigger and target with the same moves: the ring
    /// then keeps history instead of one plan repeated every interval.
    /// Returns the id it was folded into.
    pub fn fold_repeat(&self, candidate: &PlanRecord) -> Option<String> {
        let mut ring = self.lock();
        let last = ring.records.iter_mut().rev().find(|r| {
            (r.kind, r.trigger, &r.target) == (candidate.kind, candidate.trigger, &candidate.target)
        })?;
        if !(last.dry_run && candidate.dry_run && last.same_moves(candidate)) {
            return None;
        }
        last.repeats += 1;
        last.updated = candidate.created;
        last.explanation.clone_from(&candidate.explanation);
        last.spread_before = candidate.spread_before;
        last.spread_after = candidate.spread_after;
        last.target_load = candidate.target_load;
        last.detail.clone_from(&candidate.detail);
        Some(last.id.clone())
    }

    /// Changes the record `id`, if it is still kept.
    pub fn update(&self, id: &str, f: impl FnOnce(&mut PlanRecord)) -> bool {
        let mut ring = self.lock();
        match ring.records.iter_mut().find(|r| r.id == id) {
            Some(r) => {
                f(r);
                r.updated = unix_now();
                true
            }
            None => false,
        }
    }

    /// The record `id`, with its plan.
    pub fn get(&self, id: &str) -> Option<PlanRecord> {
        self.lock().records.iter().find(|r| r.id == id).cloned()
    }

    /// Every record, newest first, without the plans themselves.
    pub fn list(&self) -> Vec<PlanRecord> {
        self.lock()
            .records
            .iter()
            .rev()
            .map(|r| PlanRecord {
                detail: None,
                ..r.clone()
            })
            .collect()
    }

    /// The status page's plans, newest first.
    pub fn summaries(&self) -> Vec<PlanSummary> {
        self.lock()
            .records
            .iter()
            .rev()
            .map(PlanRecord::summary_for_status)
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A record with `moves` (item, from, to), for tests here and in the
    /// other files.
    pub fn record(id: &str, kind: Kind, dry_run: bool, moves: &[(&str, &str, &str)]) -> PlanRecord {
        PlanRecord {
            id: id.into(),
            kind,
            trigger: Trigger::CapacityLoop,
            target: None,
            state: if dry_run {
                PlanState::DryRun
            } else {
                PlanState::Running
            },
            dry_run,
            created: 1.0,
            updated: 1.0,
            finished: None,
            plan_seconds: 0.001,
            reason: "hv-a over its threshold".into(),
            summary: String::new(),
            explanation: Vec::new(),
            notes: Vec::new(),
            spread_before: 0.3,
            spread_after: 0.1,
            target_load: None,
            moves: moves
                .iter()
                .map(|(item, from, to)| MoveRecord {
                    item: (*item).into(),
                    from: (*from).into(),
                    to: (*to).into(),
                    how: "live".into(),
                    bytes: 1,
                    depends_on: Vec::new(),
                    why: String::new(),
                    state: if dry_run {
                        MoveState::WouldRun
                    } else {
                        MoveState::Pending
                    },
                    error: None,
                    elapsed_ms: None,
                })
                .collect(),
            unplaced: Vec::new(),
            bytes_to_move: moves.len() as u64,
            bytes_moved: 0,
            repeats: 0,
            detail: None,
        }
    }

    #[test]
    fn the_ring_keeps_the_newest_and_lists_them_first() {
        let h = PlanHistory::new(2);
        let ids: Vec<String> = (0..3).map(|_| h.next_id()).collect();
        assert_ne!(ids[0], ids[1]);
        for id in &ids {
            h.insert(record(id, Kind::Rebalance, false, &[("vm", "a", "b")]));
        }
        let listed: Vec<String> = h.list().into_iter().map(|r| r.id).collect();
        assert_eq!(listed, [ids[2].clone(), ids[1].clone()]);
        assert!(h.get(&ids[0]).is_none(), "the oldest went");
        assert!(h.update(&ids[1], |r| r.moves[0].state = MoveState::Done));
        assert!(!h.update(&ids[0], |_| {}));
        let s = &h.summaries()[1];
        assert_eq!((s.moves, s.done, s.failed), (1, 1, 0));
    }

    #[test]
    fn identical_loop_dry_runs_fold_into_one_record() {
        let h = PlanHistory::new(10);
        let first = record("p-1", Kind::Rebalance, true, &[("vm", "a", "b")]);
        assert_eq!(h.fold_repeat(&first), None, "nothing to fold into");
        h.insert(first);
        let same = record("p-2", Kind::Rebalance, true, &[("vm", "a", "b")]);
        assert_eq!(h.fold_repeat(&same).as_deref(), Some("p-1"));
        assert_eq!(h.get("p-1").unwrap().repeats, 1);
        let other = record("p-3", Kind::Rebalance, true, &[("vm", "a", "c")]);
        assert_eq!(h.fold_repeat(&other), None, "different moves");
        let luns = record("p-4", Kind::MoveLuns, true, &[("vm", "a", "b")]);
        assert_eq!(h.fold_repeat(&luns), None, "a different kind");
        let executed = record("p-5", Kind::Rebalance, false, &[("vm", "a", "b")]);
        assert_eq!(
            h.fold_repeat(&executed),
            None,
            "executions are never folded"
        );
    }

    #[test]
    fn the_status_view_counts_failures_and_marks_dry_runs() {
        let mut r = record("p-1", Kind::MoveLuns, false, &[("l1", "d1", "d2"); 3]);
        r.moves[0].state = MoveState::Done;
        r.moves[1].state = MoveState::TimedOut;
        r.moves[2].state = MoveState::Skipped;
        let s = r.summary_for_status();
        assert_eq!(s.mode, "move-luns");
        assert_eq!((s.moves, s.done, s.failed, s.dry_run), (3, 1, 2, false));
        assert_eq!(s.migrations[1].state, "timed-out");
        let d = record("p-2", Kind::Rebalance, true, &[("vm", "a", "b")]).summary_for_status();
        assert!(d.dry_run && d.reason.starts_with("dry run: "), "{d:?}");
        assert_eq!(d.migrations[0].state, "would-run");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["kind"], "move-luns");
        assert_eq!(json["trigger"], "capacity-loop");
        assert_eq!(json["moves"][1]["state"], "timed-out");
        assert!(json.get("detail").is_none(), "absent when not kept");
    }
}
