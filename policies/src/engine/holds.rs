//! What holds recovery and notifications back: acknowledgements (with
//! expiry), silences by label matchers (with expiry), host maintenance, and
//! inhibition (a failed host inhibits incidents of everything on it).

use std::collections::BTreeMap;

use super::Engine;
use super::state::{Ack, Incident, Subject};
use crate::decision::{DecisionKind, HoldReason};
use crate::input::{IncidentId, Silence};
use crate::target::{HOST_STATE, HostState, TargetKind, TargetRef};
use crate::time::Timestamp;

impl Engine {
    /// Why a target's recovery and notifications wait: its host is in
    /// maintenance, or (for anything but the host itself) its host failed.
    pub(super) fn recovery_hold(&self, t: &TargetRef) -> Option<HoldReason> {
        let host = self.host_of(t)?;
        if let Some(until) = self.s.maintenance.get(&host) {
            return Some(HoldReason::Maintenance {
                host,
                until: *until,
            });
        }
        let failed = self
            .s
            .targets
            .get(&TargetRef::host(&host))
            .and_then(|h| h.states.get(HOST_STATE))
            .is_some_and(|s| s.value == HostState::Failed.as_str());
        (t.kind != TargetKind::Host && failed).then_some(HoldReason::Inhibited { host })
    }

    /// Why an incident's notifications wait, whatever the level: every
    /// member held (maintenance, inhibition), or a silence matching it.
    pub(super) fn incident_hold(&self, policy: &str, inc: &Incident) -> Option<HoldReason> {
        let holds: Vec<Option<HoldReason>> =
            inc.members.keys().map(|t| self.recovery_hold(t)).collect();
        if !holds.is_empty() && holds.iter().all(Option::is_some) {
            return holds.into_iter().flatten().next();
        }
        self.s
            .silences
            .values()
            .find(|s| self.silences_incident(s, policy, inc))
            .map(|s| HoldReason::Silenced {
                silence: s.id.clone(),
                until: s.until,
            })
    }

    /// An acknowledgement in force.
    pub(super) fn ack_hold(inc: &Incident) -> Option<HoldReason> {
        inc.ack.as_ref().map(|a| HoldReason::Acked {
            by: a.by.clone(),
            until: a.until,
        })
    }

    /// A member's labels as silences see them: the target's, plus `policy`
    /// and `severity`.
    fn member_labels(&self, policy: &str, t: &TargetRef) -> BTreeMap<String, String> {
        let mut labels = self.labels(t);
        labels.insert("policy".into(), policy.to_owned());
        if let Some(p) = self.policies.get(policy) {
            labels.insert("severity".into(), p.severity.to_string());
        }
        labels
    }

    /// A silence holds an incident when every matcher matches every member.
    fn silences_incident(&self, s: &Silence, policy: &str, inc: &Incident) -> bool {
        !inc.members.is_empty()
            && inc.members.keys().all(|t| {
                let labels = self.member_labels(policy, t);
                s.matchers.iter().all(|m| m.matches(&labels))
            })
    }

    /// Whether a silence could apply to anything: an open incident, or a
    /// known target under a policy watching it, or the target alone.
    fn silence_matches_anything(&self, s: &Silence) -> bool {
        let all = |labels: &BTreeMap<String, String>| s.matchers.iter().all(|m| m.matches(labels));
        self.s
            .incidents
            .values()
            .any(|i| self.silences_incident(s, &i.policy, i))
            || self.s.targets.keys().any(|t| {
                all(&self.labels(t))
                    || self
                        .watching(t)
                        .iter()
                        .any(|p| all(&self.member_labels(&p.name, t)))
            })
    }

    /// An acknowledgement: the channels already notified hear of it (a
    /// repeat of the same ack tells nobody again), then levels it holds
    /// say so.
    pub(super) fn ack(&mut self, id: IncidentId, until: Option<Timestamp>, by: String) {
        let Some(inc) = self.s.incidents.get_mut(&id) else {
            // Resolved by a timer that ran just before the ack.
            return;
        };
        let ack = Ack {
            by: by.clone(),
            until,
        };
        let changed = inc.ack.as_ref() != Some(&ack);
        inc.ack = Some(ack);
        if changed {
            inc.acks += 1;
        }
        self.emit(DecisionKind::Acked {
            incident: id,
            by,
            until,
        });
        if changed {
            self.notify_ack(id);
        }
        self.eval_incident(id);
    }

    pub(super) fn unack(&mut self, id: IncidentId) {
        let Some(inc) = self.s.incidents.get_mut(&id) else {
            return;
        };
        if inc.ack.take().is_some() {
            self.emit(DecisionKind::Unacked { incident: id });
            self.eval_incident(id);
        }
    }

    pub(super) fn add_silence(&mut self, s: Silence) {
        let (id, until) = (s.id.clone(), s.until);
        if !self.silence_matches_anything(&s) {
            self.emit(DecisionKind::SilenceMatchesNothing {
                silence: id.clone(),
            });
        }
        self.s.silences.insert(id.clone(), s);
        self.wake(until, Subject::Silence(id));
        self.eval_all_incidents();
    }

    /// Removes a silence (by hand, or `expired`).
    pub(super) fn remove_silence(&mut self, id: &str, expired: bool) {
        if self.s.silences.remove(id).is_some() {
            if expired {
                self.emit(DecisionKind::SilenceExpired {
                    silence: id.to_owned(),
                });
            }
            self.eval_all_incidents();
        }
    }

    pub(super) fn expire_silence(&mut self, id: &str) {
        if self
            .s
            .silences
            .get(id)
            .is_some_and(|s| s.until <= self.s.now)
        {
            self.remove_silence(id, true);
        }
    }

    pub(super) fn start_maintenance(&mut self, host: String, until: Option<Timestamp>) {
        if let Some(u) = until {
            self.wake(u, Subject::Maintenance(host.clone()));
        }
        self.s.maintenance.insert(host.clone(), until);
        self.eval_incidents_on(&host);
    }

    pub(super) fn end_maintenance(&mut self, host: &str) {
        if self.s.maintenance.remove(host).is_some() {
            self.emit(DecisionKind::MaintenanceEnded {
                host: host.to_owned(),
            });
            self.eval_incidents_on(host);
        }
    }

    pub(super) fn expire_maintenance(&mut self, host: &str) {
        if self
            .s
            .maintenance
            .get(host)
            .is_some_and(|u| u.is_some_and(|u| u <= self.s.now))
        {
            self.end_maintenance(host);
        }
    }
}
