//! Incidents as a whole: status from their members, resolution (with its
//! notifications), and flapping detection per fingerprint.

use std::sync::Arc;

use super::Engine;
use super::ladder::told;
use super::state::{Incident, Phase, Recovery, Subject};
use crate::decision::{DecisionKind, NotifyKind, Status};
use crate::input::IncidentId;
use crate::policy::Policy;

/// The status an incident's members add up to.
fn derive_status(inc: &Incident) -> Status {
    let fired = inc.members.values().filter(|m| m.fired_at.is_some());
    let mut any = false;
    for m in fired {
        any = true;
        if matches!(m.recovery, Recovery::Running { .. }) {
            return Status::Recovering;
        }
    }
    if any { Status::Firing } else { Status::Pending }
}

/// Whether recovery failed for some member: every step failed, or the
/// budget was used up (what `if = "recovery-failed"` waits for).
pub(super) fn recovery_failed(inc: &Incident) -> bool {
    inc.members
        .values()
        .any(|m| matches!(m.recovery, Recovery::Failed | Recovery::Skipped))
}

impl Engine {
    /// Re-evaluates an incident: ack expiry, recovery, status, ladder.
    pub(super) fn eval_incident(&mut self, id: IncidentId) {
        let now = self.s.now;
        let Some(inc) = self.s.incidents.get(&id) else {
            return;
        };
        let Some(p) = self.policies.get(&inc.policy).cloned() else {
            return self.resolve(id, Some("policy removed".to_owned()), false);
        };
        let targets: Vec<_> = inc.members.keys().cloned().collect();
        match inc.ack.as_ref().and_then(|a| a.until) {
            Some(until) if until <= now => {
                if let Some(inc) = self.s.incidents.get_mut(&id) {
                    inc.ack = None;
                }
                self.emit(DecisionKind::AckExpired { incident: id });
            }
            Some(until) => self.wake(until, Subject::Incident(id)),
            None => {}
        }
        for t in targets {
            self.advance_recovery(&p, id, &t);
        }
        let Some(inc) = self.s.incidents.get_mut(&id) else {
            return;
        };
        let status = derive_status(inc);
        if status != inc.status {
            inc.status = status;
            self.emit(DecisionKind::Status {
                incident: id,
                status,
                why: None,
            });
        }
        self.eval_ladder(&p, id);
    }

    pub(super) fn eval_all_incidents(&mut self) {
        let ids: Vec<IncidentId> = self.s.incidents.keys().copied().collect();
        for id in ids {
            self.eval_incident(id);
        }
    }

    /// Closes an incident: steps in flight are verified or cancelled, and
    /// every channel a level with `on_resolve` notified hears of it.
    pub(super) fn resolve(&mut self, id: IncidentId, why: Option<String>, cleared: bool) {
        let Some(inc) = self.s.incidents.remove(&id) else {
            return;
        };
        if self.s.open.get(&inc.fingerprint) == Some(&id) {
            self.s.open.remove(&inc.fingerprint);
        }
        // Put it back while members finish, so they find their policy.
        self.s.incidents.insert(id, inc.clone());
        for (t, m) in &inc.members {
            self.finish_member(id, t, m, cleared);
        }
        self.s.incidents.remove(&id);
        let never_fired = inc.fired_at.is_none();
        let why = why.or_else(|| never_fired.then(|| "cleared while pending".to_owned()));
        self.emit(DecisionKind::Status {
            incident: id,
            status: Status::Resolved,
            why,
        });
        let Some(p) = self.policies.get(&inc.policy).cloned() else {
            return;
        };
        for (level, channel) in told(&p, &inc, |l| l.on_resolve) {
            let n = self.notification(
                &p,
                &inc,
                level,
                channel,
                NotifyKind::Resolved,
                Status::Resolved,
            );
            self.emit(DecisionKind::Notify(n));
        }
    }

    /// Counts a firing of the incident's fingerprint; enough within the
    /// window make it flapping.
    pub(super) fn record_firing(&mut self, p: &Arc<Policy>, id: IncidentId) {
        let now = self.s.now;
        let Some(fp) = self.s.incidents.get(&id).map(|i| i.fingerprint.clone()) else {
            return;
        };
        let flap = self.s.flaps.entry(fp.clone()).or_default();
        flap.firings.push_back(now);
        while flap
            .firings
            .front()
            .is_some_and(|t| t.plus(p.flapping.window) <= now)
        {
            flap.firings.pop_front();
        }
        while flap.firings.len() > p.flapping.threshold as usize {
            flap.firings.pop_front();
        }
        let firings = flap.firings.len() as u32;
        let starts = !flap.flapping && firings >= p.flapping.threshold;
        if starts {
            flap.flapping = true;
            flap.paged = false;
            self.emit(DecisionKind::Flapping {
                incident: id,
                firings,
                window: p.flapping.window,
            });
        }
        self.wake(now.plus(p.flapping.window), Subject::Flap(fp));
    }

    /// A flapping window passed: a fingerprint quiet for a whole window is
    /// no longer flapping, and its open incident escalates normally again.
    pub(super) fn flap_timer(&mut self, fp: &str) {
        let now = self.s.now;
        // A fingerprint starts with its policy's name, which contains
        // neither `/` nor `{`.
        let policy = fp.split(['/', '{']).next().unwrap_or(fp);
        let window = self.policies.get(policy).map(|p| p.flapping.window);
        let Some(flap) = self.s.flaps.get_mut(fp) else {
            return;
        };
        let Some(window) = window else {
            self.s.flaps.remove(fp);
            return;
        };
        let quiet = flap.firings.back().is_none_or(|t| t.plus(window) <= now);
        if !quiet {
            return;
        }
        let was_flapping = flap.flapping;
        self.s.flaps.remove(fp);
        if was_flapping {
            self.emit(DecisionKind::FlappingEnded {
                fingerprint: fp.to_owned(),
            });
            if let Some(id) = self.s.open.get(fp).copied() {
                self.eval_incident(id);
            }
        }
    }

    /// When the member's current phase ends.
    pub(super) fn phase_deadline(phase: &Phase) -> crate::time::Timestamp {
        match phase {
            Phase::Awaiting { deadline } | Phase::Verifying { deadline } => *deadline,
            Phase::Waiting { until } => *until,
        }
    }
}
