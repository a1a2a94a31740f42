//! The record of the engine's decisions: incident rows kept in step with
//! them, and the audit lines (a decision's timeline line and its JSON, or
//! what the runtime did about it) that answer "why did or didn't it page".

use std::collections::BTreeMap;

use hyperwatch_policies::{Decision, DecisionKind, IncidentId, decision::Status};

use crate::{
    outbox::delivery::now_ms,
    store::{AuditEntry, IncidentRow},
};

/// Keeps the incident rows in step with a decision; notes which rows it
/// touched.
pub fn book(
    book: &mut BTreeMap<IncidentId, IncidentRow>,
    d: &Decision,
    touched: &mut Vec<IncidentId>,
) {
    let at = d.at.0 as i64;
    let id = match &d.kind {
        DecisionKind::Opened {
            incident,
            policy,
            fingerprint,
            status,
            target,
            severity,
            summary,
        } => {
            book.insert(
                *incident,
                IncidentRow {
                    id: incident.to_string(),
                    num: incident.0,
                    policy: policy.clone(),
                    fingerprint: fingerprint.clone(),
                    severity: severity.to_string(),
                    summary: summary.clone(),
                    status: status.to_string(),
                    opened_ms: at,
                    fired_ms: (*status != Status::Pending).then_some(at),
                    resolved_ms: None,
                    targets: vec![target.to_string()],
                },
            );
            *incident
        }
        DecisionKind::Joined { incident, target } => {
            if let Some(b) = book.get_mut(incident) {
                let t = target.to_string();
                if !b.targets.contains(&t) {
                    b.targets.push(t);
                }
            }
            *incident
        }
        DecisionKind::Status {
            incident, status, ..
        } => {
            if let Some(b) = book.get_mut(incident) {
                b.status = status.to_string();
                match status {
                    Status::Resolved => b.resolved_ms = Some(at),
                    Status::Firing | Status::Recovering if b.fired_ms.is_none() => {
                        b.fired_ms = Some(at)
                    }
                    _ => {}
                }
            }
            *incident
        }
        _ => return,
    };
    if !touched.contains(&id) {
        touched.push(id);
    }
}

/// A runtime audit line.
pub fn note(incident: Option<IncidentId>, line: String, detail: Option<String>) -> AuditEntry {
    AuditEntry {
        at_ms: now_ms(),
        incident: incident.map(|i| i.to_string()),
        kind: "runtime".into(),
        line,
        detail,
    }
}

/// The audit line of a decision; its detail is the decision as JSON.
pub fn audit(d: &Decision) -> AuditEntry {
    let json = serde_json::to_value(&d.kind).unwrap_or_default();
    let kind = json
        .as_object()
        .and_then(|o| o.keys().next().cloned())
        .unwrap_or_else(|| "decision".to_owned());
    AuditEntry {
        at_ms: d.at.0 as i64,
        incident: incident_of(&d.kind).map(|i| i.to_string()),
        kind,
        line: d.line(),
        detail: Some(json.to_string()),
    }
}

/// The incident a decision is about, if any.
fn incident_of(k: &DecisionKind) -> Option<IncidentId> {
    use DecisionKind as D;
    match k {
        D::Opened { incident, .. }
        | D::Joined { incident, .. }
        | D::Left { incident, .. }
        | D::Status { incident, .. }
        | D::StepFinished { incident, .. }
        | D::RecoveryHeld { incident, .. }
        | D::RecoverySkipped { incident, .. }
        | D::RecoveryFailed { incident, .. }
        | D::LevelHeld { incident, .. }
        | D::Flapping { incident, .. }
        | D::Acked { incident, .. }
        | D::Unacked { incident }
        | D::AckExpired { incident } => Some(*incident),
        D::RunStep(r) => Some(r.run.incident),
        D::CancelStep { run, .. } | D::StaleResult { run } => Some(run.incident),
        D::Notify(n) => Some(n.incident),
        D::FlappingEnded { .. }
        | D::SilenceMatchesNothing { .. }
        | D::SilenceExpired { .. }
        | D::MaintenanceEnded { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use hyperwatch_policies::{policy::Severity, time::Timestamp};

    use super::*;

    fn at(ms: u64, kind: DecisionKind) -> Decision {
        Decision {
            at: Timestamp(ms),
            kind,
        }
    }

    #[test]
    fn incident_rows_follow_opening_firing_joining_and_resolving() {
        let mut rows = BTreeMap::new();
        let mut touched = Vec::new();
        let id = IncidentId(3);
        for d in [
            at(
                1000,
                DecisionKind::Opened {
                    incident: id,
                    policy: "p".into(),
                    fingerprint: "p{rack=r1}".into(),
                    status: Status::Pending,
                    target: "host:hv1".parse().unwrap(),
                    severity: Severity::Critical,
                    summary: "rack r1 down".into(),
                },
            ),
            at(
                2000,
                DecisionKind::Status {
                    incident: id,
                    status: Status::Firing,
                    why: None,
                },
            ),
            at(
                3000,
                DecisionKind::Joined {
                    incident: id,
                    target: "host:hv2".parse().unwrap(),
                },
            ),
            at(
                4000,
                DecisionKind::Status {
                    incident: id,
                    status: Status::Resolved,
                    why: None,
                },
            ),
        ] {
            book(&mut rows, &d, &mut touched);
        }
        let row = &rows[&id];
        assert_eq!(touched, [id]);
        assert_eq!(
            (row.opened_ms, row.fired_ms, row.resolved_ms),
            (1000, Some(2000), Some(4000))
        );
        assert_eq!(row.targets, ["host:hv1", "host:hv2"]);
        assert_eq!(
            (row.status.as_str(), row.severity.as_str()),
            ("resolved", "critical")
        );
        let line = audit(&at(
            4000,
            DecisionKind::Status {
                incident: id,
                status: Status::Resolved,
                why: None,
            },
        ));
        assert_eq!(
            (
                line.kind.as_str(),
                line.line.as_str(),
                line.incident.as_deref()
            ),
            ("status", "inc-3 resolved", Some("inc-3"))
        );
    }
}
