//! What is asked of the service ([`PlanOrder`]), why it may be refused
//! ([`Refusal`]), and what it answers ([`StepReport`]): the outcome the
//! policy runtime turns into the engine's step result, and the operator's
//! sentence (moves done, failed, skipped; VMs not placed and why; the
//! target's load and the spread before and after).

use std::fmt::Write;

use hyperwatch_policies::input::StepResult;
use serde::Serialize;

use super::history::{Kind, MoveState, PlanRecord, PlanState, Trigger};

/// A plan asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanOrder {
    pub kind: Kind,
    /// The host (failover, rebalance) or `HOST/DEVICE` (move-luns) to
    /// relieve; none: the whole cluster (not for failover of one host).
    pub target: Option<String>,
    pub trigger: Trigger,
    /// Carry it out (`Some(true)`), only record it (`Some(false)`), or
    /// follow the configuration (failover executes, rebalance and LUN moves
    /// follow their dry-run settings).
    pub execute: Option<bool>,
}

/// Why a plan was not made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The target is not in the cluster.
    #[error("{0}")]
    UnknownTarget(String),
    /// Nothing configured can carry it out, or it does not apply to such a
    /// target.
    #[error("{0}")]
    NotAvailable(String),
    /// It does not apply in the cluster's state now (the host is not
    /// failed, another plan is running).
    #[error("{0}")]
    Conflict(String),
    /// The planner could not work with the cluster's snapshot.
    #[error("{0}")]
    Failed(String),
}

/// How a step ended, in the engine's terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepOutcome {
    /// Every move done and the target relieved (or nothing was needed).
    Succeeded,
    /// A move failed, a VM found no host, the target is still over its
    /// threshold, the plan was only a dry run, or no longer held.
    Failed,
    /// Nothing can carry the step out (no actuator or mover, no such
    /// target).
    NotAvailable,
}

/// What [`run_step`](super::PlacementService::run_step) answers.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StepReport {
    pub outcome: StepOutcome,
    /// The operator's sentence: what was moved where, what failed or was
    /// skipped, what could not be placed and why.
    pub message: String,
    /// The plan in the history (`GET /api/v1/plans/{id}`); none when no
    /// plan was made.
    pub plan: Option<String>,
    /// The plan was recorded only.
    pub dry_run: bool,
    /// Moves done, failed (or timed out) and skipped.
    pub done: usize,
    pub failed: usize,
    pub skipped: usize,
    /// VMs not placed (or LUN problems left).
    pub unplaced: usize,
}

impl StepReport {
    /// The engine's step result.
    pub fn result(&self) -> StepResult {
        match self.outcome {
            StepOutcome::Succeeded => StepResult::Succeeded,
            StepOutcome::Failed => StepResult::Failed(self.message.clone()),
            StepOutcome::NotAvailable => StepResult::NotAvailable(self.message.clone()),
        }
    }

    /// The report of a refused order.
    pub fn refused(refusal: &Refusal) -> Self {
        Self {
            outcome: match refusal {
                Refusal::UnknownTarget(_) | Refusal::NotAvailable(_) => StepOutcome::NotAvailable,
                Refusal::Conflict(_) | Refusal::Failed(_) => StepOutcome::Failed,
            },
            message: refusal.to_string(),
            plan: None,
            dry_run: false,
            done: 0,
            failed: 0,
            skipped: 0,
            unplaced: 0,
        }
    }

    /// The report of a concluded record.
    pub fn of(r: &PlanRecord, outcome: StepOutcome) -> Self {
        Self {
            outcome,
            message: r.summary.clone(),
            plan: Some(r.id.clone()),
            dry_run: r.dry_run,
            done: r.count(MoveState::Done),
            failed: r.count(MoveState::Failed) + r.count(MoveState::TimedOut),
            skipped: r.count(MoveState::Skipped),
            unplaced: r.unplaced.len(),
        }
    }
}

/// Moves and problems named in a sentence before "and N more".
const LISTED: usize = 4;
/// Slack on threshold comparisons for figures summed in float.
const EPSILON: f64 = 1e-9;

/// Settles `r` once its moves have their outcomes (or, in a dry run, at
/// once): its final state, its sentence, its end time. Returns the step's
/// outcome.
pub fn conclude(r: &mut PlanRecord) -> StepOutcome {
    let n = r.moves.len();
    let all_done = r.count(MoveState::Done) == n;
    let relieved = r
        .target_load
        .is_none_or(|l| l.after <= l.threshold + EPSILON);
    let (state, outcome) = if n == 0 && r.unplaced.is_empty() {
        let outcome = if relieved {
            StepOutcome::Succeeded
        } else {
            StepOutcome::Failed
        };
        (PlanState::NothingToDo, outcome)
    } else if r.dry_run {
        (PlanState::DryRun, StepOutcome::Failed)
    } else if all_done && r.unplaced.is_empty() && relieved {
        (PlanState::Done, StepOutcome::Succeeded)
    } else {
        (PlanState::Failed, StepOutcome::Failed)
    };
    r.state = state;
    r.bytes_moved = r
        .moves
        .iter()
        .filter(|m| m.state == MoveState::Done)
        .map(|m| m.bytes)
        .sum();
    r.summary = sentence(r, relieved);
    r.finished = Some(super::history::unix_now());
    outcome
}

/// The operator's sentence of a concluded record.
fn sentence(r: &PlanRecord, relieved: bool) -> String {
    let mut s = match (r.kind, r.target.as_deref()) {
        (Kind::Failover, Some(t)) => format!("failover of {t}"),
        (Kind::Failover, None) => "failover of every failed host".to_owned(),
        (Kind::Rebalance, Some(t)) => format!("rebalance of {t}"),
        (Kind::Rebalance, None) => "rebalance of the cluster".to_owned(),
        (Kind::MoveLuns, Some(t)) => format!("LUN moves off {t}"),
        (Kind::MoveLuns, None) => "LUN moves across every device".to_owned(),
    };
    let n = r.moves.len();
    let verb = if r.kind == Kind::MoveLuns {
        "LUN move"
    } else {
        "migration"
    };
    if n == 0 {
        s.push_str(": nothing to move");
    } else if r.dry_run {
        let _ = write!(
            s,
            ": dry run, {n} {verb}(s) would run ({}); nothing moved ({})",
            listing(r, false),
            match r.kind {
                Kind::Rebalance => "set [migration] execute_rebalance = true or ask for execution",
                Kind::MoveLuns => "set [storage] dry_run = false or ask for execution",
                Kind::Failover => "a dry run was asked for",
            }
        );
    } else {
        let done = r.count(MoveState::Done);
        let _ = write!(s, ": {done} of {n} {verb}(s) done");
        for (state, word) in [
            (MoveState::Failed, "failed"),
            (MoveState::TimedOut, "timed out"),
            (MoveState::Skipped, "skipped"),
        ] {
            let k = r.count(state);
            if k > 0 {
                let _ = write!(s, ", {k} {word}");
            }
        }
        let _ = write!(s, " ({})", listing(r, true));
    }
    if !r.unplaced.is_empty() {
        let what = if r.kind == Kind::MoveLuns {
            "problem(s) no move fixes"
        } else {
            "VM(s) not placed"
        };
        let _ = write!(s, "; {} {what}: {}", r.unplaced.len(), first(&r.unplaced));
    }
    if let (Some(l), Some(t)) = (r.target_load, r.target.as_deref()) {
        let (word, noun) = match r.kind {
            Kind::MoveLuns => ("full", "device"),
            _ => ("busy", "host"),
        };
        let pct = |v: f64| v * 100.0;
        let _ = write!(
            s,
            "; {t} {:.0}% {word} before, {:.0}% after (threshold {:.0}%)",
            pct(l.before),
            pct(l.after),
            pct(l.threshold)
        );
        if !relieved && r.unplaced.is_empty() {
            let _ = write!(s, ": the {noun} stays over its threshold");
        }
    }
    if n > 0 {
        let _ = write!(
            s,
            "; spread {:.3} before, {:.3} after",
            r.spread_before, r.spread_after
        );
    }
    let _ = write!(s, " (plan {})", r.id);
    s
}

/// The first few moves, `item from -> to`, with their states when asked;
/// failed ones with their errors.
fn listing(r: &PlanRecord, states: bool) -> String {
    let mut parts: Vec<String> = r
        .moves
        .iter()
        .take(LISTED)
        .map(|m| {
            let mut p = format!("{} {} -> {}", m.item, m.from, m.to);
            if states {
                let _ = write!(p, " {}", m.state.as_str());
                if let Some(e) = &m.error {
                    let _ = write!(p, ": {e}");
                }
            }
            p
        })
        .collect();
    // Failures beyond the first few are what the operator needs most.
    if states {
        parts.extend(
            r.moves
                .iter()
                .skip(LISTED)
                .filter(|m| m.state.is_failure())
                .take(LISTED)
                .map(|m| {
                    format!(
                        "{} {} -> {} {}: {}",
                        m.item,
                        m.from,
                        m.to,
                        m.state.as_str(),
                        m.error.as_deref().unwrap_or("")
                    )
                }),
        );
    }
    let more = r.moves.len().saturating_sub(parts.len());
    if more > 0 {
        parts.push(format!("and {more} more"));
    }
    parts.join("; ")
}

/// The first few lines, then how many more.
fn first(lines: &[String]) -> String {
    let mut s = lines
        .iter()
        .take(LISTED)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if lines.len() > LISTED {
        let _ = write!(s, "; and {} more", lines.len() - LISTED);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::history::{TargetLoad, tests::record};

    #[test]
    fn a_clean_execution_succeeds_and_says_what_moved() {
        let mut r = record("p1-1", Kind::Rebalance, false, &[("web-1", "hv-a", "hv-b")]);
        r.target = Some("hv-a".into());
        r.target_load = Some(TargetLoad {
            before: 0.93,
            after: 0.7,
            threshold: 0.8,
        });
        r.moves[0].state = MoveState::Done;
        assert_eq!(conclude(&mut r), StepOutcome::Succeeded);
        assert_eq!(r.state, PlanState::Done);
        assert_eq!(r.bytes_moved, 1);
        assert_eq!(
            r.summary,
            "rebalance of hv-a: 1 of 1 migration(s) done (web-1 hv-a -> hv-b done); \
             hv-a 93% busy before, 70% after (threshold 80%); spread 0.300 before, 0.100 after (plan p1-1)"
        );
        let report = StepReport::of(&r, StepOutcome::Succeeded);
        assert_eq!(report.result(), StepResult::Succeeded);
        assert_eq!((report.done, report.failed), (1, 0));
    }

    #[test]
    fn failures_skips_and_unplaced_vms_fail_the_step_with_their_reasons() {
        let mut r = record(
            "p1-2",
            Kind::Failover,
            false,
            &[("app-1", "hv-c", "hv-b"), ("app-2", "hv-c", "hv-b")],
        );
        r.target = Some("hv-c".into());
        r.moves[0].state = MoveState::Done;
        r.moves[1].state = MoveState::Failed;
        r.moves[1].error = Some("transfer: vm-migrate-in on hv-b refused".into());
        r.unplaced = vec![
            "huge-1 (on hv-c, priority 0) not placed: no host can take it: 1 too little memory"
                .into(),
        ];
        assert_eq!(conclude(&mut r), StepOutcome::Failed);
        assert_eq!(r.state, PlanState::Failed);
        assert!(
            r.summary.starts_with(
                "failover of hv-c: 1 of 2 migration(s) done, 1 failed (app-1 hv-c -> hv-b done; \
                 app-2 hv-c -> hv-b failed: transfer: vm-migrate-in on hv-b refused); \
                 1 VM(s) not placed: huge-1"
            ),
            "{}",
            r.summary
        );
        let report = StepReport::of(&r, StepOutcome::Failed);
        assert_eq!(report.result(), StepResult::Failed(r.summary.clone()));
        assert_eq!((report.failed, report.unplaced), (1, 1));
    }

    #[test]
    fn a_dry_run_fails_a_step_and_says_how_to_execute() {
        let mut r = record(
            "p1-3",
            Kind::MoveLuns,
            true,
            &[("st-a/vol-1", "st-a/d1", "st-b/d1")],
        );
        assert_eq!(conclude(&mut r), StepOutcome::Failed);
        assert_eq!(r.state, PlanState::DryRun);
        assert!(
            r.summary
                .contains("dry run, 1 LUN move(s) would run (st-a/vol-1 st-a/d1 -> st-b/d1)")
                && r.summary.contains("[storage] dry_run = false"),
            "{}",
            r.summary
        );
    }

    #[test]
    fn nothing_to_do_succeeds_only_when_the_target_is_within_its_threshold() {
        let mut calm = record("p1-4", Kind::Rebalance, false, &[]);
        calm.target = Some("hv-a".into());
        calm.target_load = Some(TargetLoad {
            before: 0.5,
            after: 0.5,
            threshold: 0.8,
        });
        assert_eq!(conclude(&mut calm), StepOutcome::Succeeded);
        assert_eq!(calm.state, PlanState::NothingToDo);
        let mut stuck = calm.clone();
        stuck.target_load = Some(TargetLoad {
            before: 0.95,
            after: 0.95,
            threshold: 0.8,
        });
        assert_eq!(conclude(&mut stuck), StepOutcome::Failed);
        assert!(
            stuck.summary.contains("the host stays over its threshold"),
            "{}",
            stuck.summary
        );
        let refused = StepReport::refused(&Refusal::UnknownTarget("no host zz".into()));
        assert_eq!(
            refused.result(),
            StepResult::NotAvailable("no host zz".into())
        );
    }
}
