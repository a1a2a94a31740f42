//! The escalation ladder: each level notifies once, at the first moment it
//! is due (`after` the incident fired, and after the group wait), its `if`
//! holds and nothing holds it back; then repeats at its interval. A flapping
//! incident pages once, on the first level's channels.

use std::sync::Arc;

use super::Engine;
use super::incident::recovery_failed;
use super::state::{Incident, Subject};
use crate::decision::{DecisionKind, HoldReason, Notification, NotifyKind, Status};
use crate::input::IncidentId;
use crate::policy::{Level, Policy};
use crate::time::Duration;

/// The channels of the levels that have notified and whose `wants` flag
/// is set (`on_resolve`, `on_ack`), each once, with the first such level:
/// who hears of a resolution or an acknowledgement.
pub(super) fn told(
    p: &Policy,
    inc: &Incident,
    wants: impl Fn(&Level) -> bool,
) -> Vec<(usize, String)> {
    let mut told: Vec<(usize, String)> = Vec::new();
    for (i, (level, st)) in p.ladder.iter().zip(&inc.levels).enumerate() {
        if st.sent_at.is_some() && wants(level) {
            for ch in &level.channels {
                if !told.iter().any(|(_, c)| c == ch) {
                    told.push((i + 1, ch.clone()));
                }
            }
        }
    }
    told
}

impl Engine {
    pub(super) fn eval_ladder(&mut self, p: &Arc<Policy>, id: IncidentId) {
        let now = self.s.now;
        let Some(inc) = self.s.incidents.get_mut(&id) else {
            return;
        };
        let Some(fired) = inc.fired_at else {
            return;
        };
        inc.levels.resize(p.ladder.len(), Default::default());
        let inc = inc.clone();
        let failed = recovery_failed(&inc);
        let general = self.incident_hold(&p.name, &inc);
        let flap = self
            .s
            .flaps
            .get(&inc.fingerprint)
            .cloned()
            .unwrap_or_default();
        if flap.flapping && !flap.paged && !p.ladder.is_empty() && general.is_none() {
            for ch in &p.ladder[0].channels {
                let n = self.notification(p, &inc, 1, ch.clone(), NotifyKind::Flapping, inc.status);
                self.emit(DecisionKind::Notify(n));
            }
            if let Some(f) = self.s.flaps.get_mut(&inc.fingerprint) {
                f.paged = true;
            }
        }
        let group_wait = p.group.as_ref().map_or(Duration::ZERO, |g| g.wait);
        for (i, level) in p.ladder.iter().enumerate() {
            let st = &inc.levels[i];
            let due = match (st.sent_at, st.next_repeat) {
                (None, _) => fired.plus(level.after.max(group_wait)),
                (Some(_), Some(next)) => next,
                (Some(_), None) => continue,
            };
            if due > now {
                self.wake(due, Subject::Incident(id));
                continue;
            }
            if st.sent_at.is_none() && level.if_recovery_failed && !failed {
                continue;
            }
            let hold = general
                .clone()
                .or_else(|| flap.flapping.then_some(HoldReason::Flapping))
                .or_else(|| level.unless_acked.then(|| Self::ack_hold(&inc)).flatten());
            if let Some(why) = hold {
                if st.held.as_ref() != Some(&why) {
                    self.level_mut(id, i).held = Some(why.clone());
                    self.emit(DecisionKind::LevelHeld {
                        incident: id,
                        level: i + 1,
                        why,
                    });
                }
                continue;
            }
            let kind = match st.sent_at {
                None => NotifyKind::Problem,
                Some(_) => NotifyKind::Repeat(st.repeats + 1),
            };
            for ch in &level.channels {
                let n = self.notification(p, &inc, i + 1, ch.clone(), kind, inc.status);
                self.emit(DecisionKind::Notify(n));
            }
            let next_repeat = level.repeat.map(|r| now.plus(r));
            let st = self.level_mut(id, i);
            st.sent_at = st.sent_at.or(Some(now));
            if matches!(kind, NotifyKind::Repeat(_)) {
                st.repeats += 1;
            }
            st.next_repeat = next_repeat;
            st.held = None;
            if let Some(next) = next_repeat {
                self.wake(next, Subject::Incident(id));
            }
        }
    }

    /// Tells the channels already notified (levels with `on_ack`) that
    /// the incident was acknowledged, by whom and until when.
    pub(super) fn notify_ack(&mut self, id: IncidentId) {
        let Some(inc) = self.s.incidents.get(&id) else {
            return;
        };
        let Some(p) = self.policies.get(&inc.policy).cloned() else {
            return;
        };
        let inc = inc.clone();
        for (level, channel) in told(&p, &inc, |l| l.on_ack) {
            let kind = NotifyKind::Acked(inc.acks);
            let mut n = self.notification(&p, &inc, level, channel, kind, inc.status);
            n.ack = inc.ack.clone();
            self.emit(DecisionKind::Notify(n));
        }
    }

    fn level_mut(&mut self, id: IncidentId, i: usize) -> &mut super::LevelState {
        &mut self
            .s
            .incidents
            .get_mut(&id)
            .expect("incident looked up by the caller")
            .levels[i]
    }

    /// One message to one channel about an incident.
    pub(super) fn notification(
        &self,
        p: &Policy,
        inc: &Incident,
        level: usize,
        channel: String,
        kind: NotifyKind,
        status: Status,
    ) -> Notification {
        let key = match kind {
            NotifyKind::Problem => format!("{}/L{level}", inc.id),
            NotifyKind::Repeat(k) => format!("{}/L{level}/repeat{k}", inc.id),
            NotifyKind::Resolved => format!("{}/resolved", inc.id),
            NotifyKind::Flapping => format!("{}/flapping", inc.id),
            NotifyKind::Acked(1) => format!("{}/acked", inc.id),
            NotifyKind::Acked(k) => format!("{}/acked{k}", inc.id),
        };
        let targets: Vec<_> = inc.members.keys().cloned().collect();
        let summary = match targets.len() {
            0 | 1 => inc.summary.clone(),
            n => format!("{} (and {} more)", inc.summary, n - 1),
        };
        Notification {
            incident: inc.id,
            key,
            channel,
            level,
            kind,
            policy: p.name.clone(),
            severity: inc.severity,
            summary,
            status,
            targets,
            ack: None,
        }
    }
}
