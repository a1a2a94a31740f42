//! A policy watching one target: when its condition starts to hold the
//! target joins (or opens) the incident of its fingerprint, first pending,
//! then firing; when the clear condition holds it leaves.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::Engine;
use super::condition::verdict;
use super::state::{Incident, Member, Phase, Recovery, Subject};
use crate::decision::{DecisionKind, Status, StepOutcome};
use crate::input::IncidentId;
use crate::policy::{Policy, render_summary};
use crate::target::TargetRef;

impl Engine {
    /// Re-evaluates policy `p` on target `t`.
    pub(super) fn eval_watch(&mut self, p: &Arc<Policy>, t: &TargetRef) {
        let now = self.s.now;
        let (Some(entry), Some(w)) = (
            self.s.targets.get(t),
            self.s.watches.get(&p.name).and_then(|w| w.get(t)),
        ) else {
            return;
        };
        let when = verdict(&p.when, &w.when, entry, now);
        let clear = p.clear.as_ref().map(|c| verdict(c, &w.clear, entry, now));
        // Without a clear condition, the incident clears as soon as the
        // failing condition is no longer true (no `for` on the way out).
        let cleared = clear.map_or(!when.raw, |c| c.holds);
        let membership = w.incident.and_then(|id| {
            let fired = self
                .s
                .incidents
                .get(&id)?
                .members
                .get(t)?
                .fired_at
                .is_some();
            Some((id, fired))
        });
        match membership {
            None if when.holds => self.join(p, t, true),
            None if when.raw => self.join(p, t, false),
            None => {}
            Some((_, false)) if when.holds => self.join(p, t, true),
            Some((id, false)) if !when.raw => self.leave(id, t, "cleared while pending", true),
            Some((id, true)) if cleared => self.leave(id, t, "cleared", true),
            Some(_) => {}
        }
        // Only the verdict that can change this target's standing needs a
        // timer: `[when]` until it fires, then whatever clears it.
        let firing = matches!(membership, Some((_, true))) && !cleared;
        let next = match (firing, clear) {
            (true, Some(c)) => c.next,
            _ => when.next,
        };
        if let Some(next) = next {
            let subject = Subject::Watch {
                policy: p.name.clone(),
                target: t.clone(),
            };
            self.wake(next, subject);
        }
    }

    /// The incident fingerprint of `t` under `p`: the policy and the target,
    /// or the values of the grouping labels.
    fn fingerprint(&self, p: &Policy, t: &TargetRef) -> String {
        match &p.group {
            None => format!("{}/{t}", p.name),
            Some(g) => {
                let labels = self.labels(t);
                let parts: Vec<String> =
                    g.by.iter()
                        .map(|l| format!("{l}={}", labels.get(l).map_or("", String::as_str)))
                        .collect();
                format!("{}{{{}}}", p.name, parts.join(","))
            }
        }
    }

    /// Makes `t` a pending or firing member of its fingerprint's incident,
    /// opening the incident if none is open.
    fn join(&mut self, p: &Arc<Policy>, t: &TargetRef, firing: bool) {
        let now = self.s.now;
        let fp = self.fingerprint(p, t);
        let id = match self.s.open.get(&fp) {
            Some(id) => *id,
            None => self.open_incident(
                p,
                t,
                fp,
                if firing {
                    Status::Firing
                } else {
                    Status::Pending
                },
            ),
        };
        if let Some(w) = self.s.watches.get_mut(&p.name).and_then(|w| w.get_mut(t)) {
            w.incident = Some(id);
        }
        let Some(inc) = self.s.incidents.get_mut(&id) else {
            return;
        };
        let joined = !inc.members.contains_key(t) && !inc.members.is_empty();
        let member = inc.members.entry(t.clone()).or_insert_with(|| Member {
            pending_since: now,
            fired_at: None,
            recovery: Recovery::Idle,
            held: None,
        });
        let mut first_firing = false;
        if firing && member.fired_at.is_none() {
            member.fired_at = Some(now);
            member.recovery = if p.steps.is_empty() {
                Recovery::NoSteps
            } else {
                Recovery::Idle
            };
            first_firing = inc.fired_at.is_none();
            inc.fired_at = inc.fired_at.or(Some(now));
        }
        // Said as it happens, before recovery makes it "recovering".
        let now_firing = firing && inc.status == Status::Pending;
        if now_firing {
            inc.status = Status::Firing;
        }
        if joined {
            self.emit(DecisionKind::Joined {
                incident: id,
                target: t.clone(),
            });
        }
        if now_firing {
            self.emit(DecisionKind::Status {
                incident: id,
                status: Status::Firing,
                why: None,
            });
        }
        if first_firing {
            self.record_firing(p, id);
        }
        self.eval_incident(id);
    }

    fn open_incident(
        &mut self,
        p: &Policy,
        t: &TargetRef,
        fingerprint: String,
        status: Status,
    ) -> IncidentId {
        let id = IncidentId(self.s.next_incident);
        self.s.next_incident += 1;
        let summary = render_summary(&p.summary, &p.name, &self.labels(t));
        self.emit(DecisionKind::Opened {
            incident: id,
            policy: p.name.clone(),
            fingerprint: fingerprint.clone(),
            status,
            target: t.clone(),
            severity: p.severity,
            summary: summary.clone(),
        });
        self.s.open.insert(fingerprint.clone(), id);
        self.s.incidents.insert(
            id,
            Incident {
                id,
                policy: p.name.clone(),
                fingerprint,
                severity: p.severity,
                summary,
                status,
                opened_at: self.s.now,
                fired_at: None,
                members: BTreeMap::new(),
                ack: None,
                levels: vec![Default::default(); p.ladder.len()],
                runs_started: 0,
                acks: 0,
            },
        );
        id
    }

    /// Takes `t` out of incident `id`; the last member out resolves it.
    /// `cleared`: it left because its condition cleared (which verifies a
    /// step being verified).
    pub(super) fn leave(&mut self, id: IncidentId, t: &TargetRef, why: &str, cleared: bool) {
        let Some(inc) = self.s.incidents.get(&id) else {
            return;
        };
        if inc.members.len() == 1 && inc.members.contains_key(t) {
            let why = (why != "cleared").then(|| why.to_owned());
            return self.resolve(id, why, cleared);
        }
        let Some(member) = self
            .s
            .incidents
            .get_mut(&id)
            .and_then(|i| i.members.remove(t))
        else {
            return;
        };
        self.finish_member(id, t, &member, cleared);
        self.emit(DecisionKind::Left {
            incident: id,
            target: t.clone(),
            why: why.to_owned(),
        });
        self.eval_incident(id);
    }

    /// A member leaves: its step in flight is verified (the condition
    /// cleared) or cancelled.
    pub(super) fn finish_member(
        &mut self,
        id: IncidentId,
        t: &TargetRef,
        m: &Member,
        cleared: bool,
    ) {
        let policy = self.s.incidents.get(&id).map(|i| i.policy.clone());
        if let Some(w) = policy
            .and_then(|p| self.s.watches.get_mut(&p))
            .and_then(|w| w.get_mut(t))
        {
            w.incident = None;
            w.clear = Default::default();
        }
        let (Recovery::Running { action, phase, .. }, Some(run)) =
            (&m.recovery, m.recovery.run_id(id, t))
        else {
            return;
        };
        let action = action.clone();
        match phase {
            Phase::Verifying { .. } if cleared => self.emit(DecisionKind::StepFinished {
                incident: id,
                run,
                action,
                outcome: StepOutcome::Verified,
            }),
            Phase::Awaiting { .. } => {
                let why = if cleared {
                    "the condition cleared"
                } else {
                    "the incident closed"
                };
                self.emit(DecisionKind::CancelStep {
                    run,
                    action,
                    why: why.to_owned(),
                })
            }
            _ => {}
        }
    }
}
