//! From the engine's notification decisions to the channels' input: the
//! [`Notification`] the outbox records and the channels render. The
//! idempotency key stays tied to the incident and ladder level
//! (`inc-7:L2:escalation`, `inc-7:L2:escalation:r3`, `inc-7:L1:recovery`,
//! `inc-7:L1:acknowledgement`, `inc-7:L1:acknowledgement:r1` for the
//! second ack), so a decision replayed after a restart records nothing new.

use std::{
    collections::BTreeMap,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use hyperwatch_policies::{
    decision::{Notification as Decided, NotifyKind},
    policy::Severity as PolicySeverity,
    time::Timestamp,
};

use crate::channels::{Notification, Severity, Status};

/// The wall-clock instant of an engine timestamp (Unix milliseconds).
pub fn system_time(t: Timestamp) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(t.0)
}

/// The channels' notification for one decided notification. `fired_at` is
/// when the incident first fired (the decision's time if unknown); `labels`
/// are the first target's labels.
pub fn notification(
    n: &Decided,
    decided_at: Timestamp,
    fired_at: Option<Timestamp>,
    mut labels: BTreeMap<String, String>,
) -> Notification {
    let (status, repeat) = match n.kind {
        NotifyKind::Problem if n.level <= 1 => (Status::Problem, 0),
        NotifyKind::Problem => (Status::Escalation, 0),
        NotifyKind::Repeat(k) if n.level <= 1 => (Status::Problem, k),
        NotifyKind::Repeat(k) => (Status::Escalation, k),
        NotifyKind::Resolved => (Status::Recovery, 0),
        NotifyKind::Flapping => (Status::Flapping, 0),
        // The first ack is the first sending; later acks count as repeats,
        // so each keeps its own idempotency key.
        NotifyKind::Acked(k) => (Status::Acknowledgement, k.saturating_sub(1)),
    };
    if let Some(ack) = &n.ack {
        labels.insert("acked_by".into(), ack.by.clone());
        let until = ack.until.map_or_else(
            || "until resolved".to_owned(),
            |u| humantime::format_rfc3339_seconds(system_time(u)).to_string(),
        );
        labels.insert("acked_until".into(), until);
    }
    labels.insert("policy".into(), n.policy.clone());
    labels.insert("engine_key".into(), n.key.clone());
    Notification {
        incident_id: n.incident.to_string(),
        level: n.level as u32,
        repeat,
        status,
        severity: match n.severity {
            PolicySeverity::Critical => Severity::Critical,
            PolicySeverity::Warning => Severity::Warning,
            PolicySeverity::Info => Severity::Info,
        },
        target: n
            .targets
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        summary: n.summary.clone(),
        policy: n.policy.clone(),
        labels,
        fired_at: system_time(fired_at.unwrap_or(decided_at)),
        decided_at: system_time(decided_at),
    }
}

#[cfg(test)]
mod tests {
    use hyperwatch_policies::{IncidentId, decision::Status as IncidentStatus};

    use super::*;

    fn decided(level: usize, kind: NotifyKind) -> Decided {
        Decided {
            incident: IncidentId(7),
            key: "inc-7/L2".into(),
            channel: "email".into(),
            level,
            kind,
            policy: "heartbeat-lost".into(),
            severity: PolicySeverity::Critical,
            summary: "host hv1 stopped sending heartbeats".into(),
            status: IncidentStatus::Firing,
            targets: vec!["host:hv1".parse().unwrap(), "host:hv2".parse().unwrap()],
            ack: None,
        }
    }

    #[test]
    fn keys_name_incident_level_status_and_repeat() {
        let at = Timestamp(1_700_000_000_000);
        let key = |level, kind| notification(&decided(level, kind), at, None, BTreeMap::new());
        assert_eq!(
            key(1, NotifyKind::Problem).idempotency_key(),
            "inc-7:L1:problem"
        );
        assert_eq!(
            key(2, NotifyKind::Problem).idempotency_key(),
            "inc-7:L2:escalation"
        );
        assert_eq!(
            key(2, NotifyKind::Repeat(3)).idempotency_key(),
            "inc-7:L2:escalation:r3"
        );
        assert_eq!(
            key(1, NotifyKind::Resolved).idempotency_key(),
            "inc-7:L1:recovery"
        );
        assert_eq!(
            key(1, NotifyKind::Acked(1)).idempotency_key(),
            "inc-7:L1:acknowledgement"
        );
        assert_eq!(
            key(2, NotifyKind::Acked(3)).idempotency_key(),
            "inc-7:L2:acknowledgement:r2"
        );
        let n = key(1, NotifyKind::Flapping);
        assert_eq!(n.status, Status::Flapping);
        assert_eq!(n.target, "host:hv1, host:hv2");
        assert_eq!(n.labels["policy"], "heartbeat-lost");
        assert_eq!(n.fired_at, system_time(at));
    }

    #[test]
    fn an_acknowledgement_says_who_and_until_when() {
        let mut d = decided(1, NotifyKind::Acked(1));
        d.ack = Some(hyperwatch_policies::engine::Ack {
            by: "alice".into(),
            until: Some(Timestamp(1_700_003_600_000)),
        });
        let n = notification(&d, Timestamp(1_700_000_000_000), None, BTreeMap::new());
        assert_eq!(n.status, Status::Acknowledgement);
        assert_eq!(n.labels["acked_by"], "alice");
        assert_eq!(n.labels["acked_until"], "2023-11-14T23:13:20Z");
        d.ack.as_mut().unwrap().until = None;
        let n = notification(&d, Timestamp(1_700_000_000_000), None, BTreeMap::new());
        assert_eq!(n.labels["acked_until"], "until resolved");
    }
}
