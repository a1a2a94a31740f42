//! Recovery of one target: the budget, steps in order, attempts, timeouts,
//! verification, and the results that come back.
//!
//! Counters: a recovery *run* counts against the budget when its first step
//! starts; runs older than the budget window stop counting. An *attempt*
//! counts when a step is asked for; attempts start over at 1 for each step
//! and each run.

use std::sync::Arc;

use super::Engine;
use super::state::{Phase, Recovery, Subject};
use crate::decision::{DecisionKind, StepOutcome, StepRun};
use crate::input::{IncidentId, RunId, StepResult};
use crate::planner::{PlanKind, PlanRequest};
use crate::policy::{Policy, StepAction, Verify};
use crate::target::TargetRef;

impl Engine {
    /// Moves a member's recovery on: starts it, or ends a phase whose time
    /// is up.
    pub(super) fn advance_recovery(&mut self, p: &Arc<Policy>, id: IncidentId, t: &TargetRef) {
        let now = self.s.now;
        let Some(m) = self.s.incidents.get(&id).and_then(|i| i.members.get(t)) else {
            return;
        };
        if m.fired_at.is_none() {
            return;
        }
        match m.recovery.clone() {
            Recovery::Idle => {
                let hold = self.recovery_hold(t);
                let m = self.member_mut(id, t);
                if m.held == hold && hold.is_some() {
                    return;
                }
                m.held = hold.clone();
                match hold {
                    Some(why) => self.emit(DecisionKind::RecoveryHeld {
                        incident: id,
                        target: t.clone(),
                        why,
                    }),
                    None => self.start_recovery(p, id, t),
                }
            }
            Recovery::Running {
                run: number,
                step,
                attempt,
                action,
                phase,
            } => {
                let deadline = Self::phase_deadline(&phase);
                if deadline > now {
                    return self.wake(deadline, Subject::Incident(id));
                }
                let run = RunId {
                    incident: id,
                    target: t.clone(),
                    run: number,
                    step: step + 1,
                    attempt,
                };
                let s = p.steps.get(step);
                let outcome = match phase {
                    Phase::Awaiting { .. } => {
                        StepOutcome::TimedOut(s.map_or_else(Default::default, |s| s.timeout))
                    }
                    Phase::Verifying { .. } => StepOutcome::NotVerified(
                        s.map_or_else(Default::default, |s| s.verify_within),
                    ),
                    Phase::Waiting { .. } => StepOutcome::WaitOver,
                };
                let wait_over = outcome == StepOutcome::WaitOver;
                self.emit(DecisionKind::StepFinished {
                    incident: id,
                    run,
                    action,
                    outcome,
                });
                if wait_over {
                    self.start_step(p, id, t, number, step + 1, 1);
                } else {
                    self.attempt_failed(p, id, t, number, step, attempt);
                }
            }
            _ => {}
        }
    }

    fn member_mut(&mut self, id: IncidentId, t: &TargetRef) -> &mut super::Member {
        self.s
            .incidents
            .get_mut(&id)
            .and_then(|i| i.members.get_mut(t))
            .expect("member looked up by the caller")
    }

    /// Starts a recovery run if the budget allows.
    fn start_recovery(&mut self, p: &Arc<Policy>, id: IncidentId, t: &TargetRef) {
        let now = self.s.now;
        let runs = self
            .s
            .runs
            .entry(p.name.clone())
            .or_default()
            .entry(t.clone())
            .or_default();
        runs.retain(|start| start.plus(p.budget.window) > now);
        if runs.len() >= p.budget.max_runs as usize {
            let used = runs.len() as u32;
            self.member_mut(id, t).recovery = Recovery::Skipped;
            return self.emit(DecisionKind::RecoverySkipped {
                incident: id,
                target: t.clone(),
                used,
                window: p.budget.window,
            });
        }
        runs.push(now);
        let inc = self
            .s
            .incidents
            .get_mut(&id)
            .expect("incident looked up by the caller");
        inc.runs_started += 1;
        let number = inc.runs_started;
        self.start_step(p, id, t, number, 0, 1);
    }

    /// Asks for attempt `attempt` of step `step` (0-based); past the last
    /// step, recovery has failed.
    fn start_step(
        &mut self,
        p: &Arc<Policy>,
        id: IncidentId,
        t: &TargetRef,
        number: u32,
        step: usize,
        attempt: u32,
    ) {
        let now = self.s.now;
        let Some(s) = p.steps.get(step) else {
            self.member_mut(id, t).recovery = Recovery::Failed;
            return self.emit(DecisionKind::RecoveryFailed {
                incident: id,
                target: t.clone(),
            });
        };
        let run = RunId {
            incident: id,
            target: t.clone(),
            run: number,
            step: step + 1,
            attempt,
        };
        let plan = match s.action {
            StepAction::Failover => Some(PlanKind::Failover),
            StepAction::Rebalance => Some(PlanKind::Rebalance),
            StepAction::MoveLuns => Some(PlanKind::MoveLuns),
            _ => None,
        };
        if let Some(kind) = plan
            && let Err(na) = self.planner.check(&PlanRequest {
                kind,
                target: t.clone(),
            })
        {
            let action = s.action.label().to_owned();
            self.emit(DecisionKind::StepFinished {
                incident: id,
                run,
                action,
                outcome: StepOutcome::NotAvailable(na.0),
            });
            // Trying again would get the same answer: next step.
            return self.start_step(p, id, t, number, step + 1, 1);
        }
        let phase = match s.action {
            StepAction::Wait { duration } => Phase::Waiting {
                until: now.plus(duration),
            },
            _ => Phase::Awaiting {
                deadline: now.plus(s.timeout),
            },
        };
        self.wake(Self::phase_deadline(&phase), Subject::Incident(id));
        let action = s.action.label().to_owned();
        self.member_mut(id, t).recovery = Recovery::Running {
            run: number,
            step,
            attempt,
            action,
            phase,
        };
        let host = self.host_of(t);
        self.emit(DecisionKind::RunStep(StepRun {
            run,
            target: t.clone(),
            host,
            step: step + 1,
            attempt,
            attempts: s.attempts,
            timeout: s.timeout,
            action: s.action.clone(),
        }));
    }

    /// An attempt failed: try again, or move to the next step.
    fn attempt_failed(
        &mut self,
        p: &Arc<Policy>,
        id: IncidentId,
        t: &TargetRef,
        number: u32,
        step: usize,
        attempt: u32,
    ) {
        match p.steps.get(step) {
            Some(s) if attempt < s.attempts => self.start_step(p, id, t, number, step, attempt + 1),
            _ => self.start_step(p, id, t, number, step + 1, 1),
        }
    }

    /// A step's result came back.
    pub(super) fn step_result(&mut self, run: RunId, result: StepResult) {
        let id = run.incident;
        let current = self.s.incidents.get(&id).and_then(|i| {
            let m = i.members.get(&run.target)?;
            let awaiting = matches!(
                m.recovery,
                Recovery::Running {
                    phase: Phase::Awaiting { .. },
                    ..
                }
            );
            (awaiting && m.recovery.run_id(id, &run.target).as_ref() == Some(&run))
                .then(|| self.policies.get(&i.policy).cloned())
                .flatten()
        });
        let Some(p) = current else {
            return self.emit(DecisionKind::StaleResult { run });
        };
        let (number, step, attempt) = (run.run, run.step - 1, run.attempt);
        let t = run.target.clone();
        let s = &p.steps[step];
        let action = s.action.label().to_owned();
        match result {
            StepResult::Succeeded => {
                self.emit(DecisionKind::StepFinished {
                    incident: id,
                    run,
                    action,
                    outcome: StepOutcome::Succeeded,
                });
                if s.verify == Verify::StepResult {
                    self.member_mut(id, &t).recovery = Recovery::Mitigated;
                } else {
                    let deadline = self.s.now.plus(s.verify_within);
                    self.member_mut(id, &t).recovery = Recovery::Running {
                        run: number,
                        step,
                        attempt,
                        action: s.action.label().to_owned(),
                        phase: Phase::Verifying { deadline },
                    };
                    self.wake(deadline, Subject::Incident(id));
                    // It may have cleared already.
                    self.eval_watch(&p, &t);
                }
            }
            StepResult::Failed(why) => {
                self.emit(DecisionKind::StepFinished {
                    incident: id,
                    run,
                    action,
                    outcome: StepOutcome::Failed(why),
                });
                self.attempt_failed(&p, id, &t, number, step, attempt);
            }
            StepResult::NotAvailable(why) => {
                self.emit(DecisionKind::StepFinished {
                    incident: id,
                    run,
                    action,
                    outcome: StepOutcome::NotAvailable(why),
                });
                self.start_step(&p, id, &t, number, step + 1, 1);
            }
        }
        self.eval_incident(id);
    }
}
