//! What the channels deliver: one [`Notification`] decided by the escalation
//! ladder, and the [`Message`] a channel sends for it (a single notification
//! or a digest of several).

use std::{collections::BTreeMap, fmt, time::SystemTime};

use serde::{Deserialize, Serialize};

/// Why a notification is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The incident fired (or a ladder level was reached while it still is).
    Problem,
    /// The incident resolved.
    Recovery,
    /// Someone acknowledged the incident.
    Acknowledgement,
    /// Recovery failed or nobody acknowledged: a higher ladder level pages.
    Escalation,
    /// The incident opens and closes repeatedly; it pages once as flapping.
    Flapping,
}

impl Status {
    /// Every status, in the order of the SNMP notifications of HYPERWATCH-MIB.
    pub const ALL: [Status; 5] = [
        Status::Problem,
        Status::Recovery,
        Status::Acknowledgement,
        Status::Escalation,
        Status::Flapping,
    ];

    /// The lowercase name used in keys, templates and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Problem => "problem",
            Status::Recovery => "recovery",
            Status::Acknowledgement => "acknowledgement",
            Status::Escalation => "escalation",
            Status::Flapping => "flapping",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How bad the incident is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Someone must act now (a host is down, VMs are unprotected).
    Critical,
    /// Someone must act soon (capacity, a degraded service).
    Warning,
    /// For the record.
    Info,
}

impl Severity {
    /// The lowercase name used in templates and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One notification the escalation ladder decided to send: the input of the
/// outbox. The policy runtime maps its decisions onto this type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// The incident's stable id (the engine's fingerprint-derived id).
    pub incident_id: String,
    /// The escalation ladder level that sends it (0 = the first level).
    pub level: u32,
    /// How many times this level has repeated before (0 = first sending).
    #[serde(default)]
    pub repeat: u32,
    /// Why it is sent.
    pub status: Status,
    /// How bad the incident is.
    pub severity: Severity,
    /// What failed, in the operator's words ("host hv-12", "service nginx on hv-3").
    pub target: String,
    /// One line saying what happened.
    pub summary: String,
    /// The policy that opened the incident.
    #[serde(default)]
    pub policy: String,
    /// The target's and the incident's labels (cluster, rack, tenant, ...).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// When the incident fired.
    #[serde(with = "rfc3339")]
    pub fired_at: SystemTime,
    /// When the ladder decided to send this notification: delivery latency
    /// is measured from here.
    #[serde(with = "rfc3339")]
    pub decided_at: SystemTime,
}

impl Notification {
    /// The idempotency key every message carries so that receivers which
    /// deduplicate can: the incident id and ladder level, plus the status and
    /// the repeat count, because a recovery or a repeat at the same level is
    /// a different message that must not be deduplicated away.
    pub fn idempotency_key(&self) -> String {
        let mut key = format!("{}:L{}:{}", self.incident_id, self.level, self.status);
        if self.repeat > 0 {
            key.push_str(&format!(":r{}", self.repeat));
        }
        key
    }
}

/// What one channel sends in one attempt: a notification, or a digest of
/// several when a burst exceeded the channel's rate limit.
#[derive(Clone, Debug)]
pub struct Message {
    /// The idempotency key of this message (the first notification's key, or
    /// a digest key derived from all of them).
    pub key: String,
    /// The recipient this message goes to, for channels that fan out per
    /// recipient (SMS); empty otherwise.
    pub recipient: String,
    /// The (first) notification.
    pub notification: Notification,
    /// The further notifications folded into this digest (empty normally).
    pub others: Vec<Notification>,
    /// A delivery note, for example why this is a fallback delivery.
    pub note: Option<String>,
    /// A clearly marked test message (`hyperwatch notify test`).
    pub test: bool,
}

impl Message {
    /// A message for one notification.
    pub fn single(notification: Notification, recipient: &str) -> Self {
        Self {
            key: notification.idempotency_key(),
            recipient: recipient.to_owned(),
            notification,
            others: Vec::new(),
            note: None,
            test: false,
        }
    }

    /// The documented JSON body of the webhook and the batch script's stdin.
    pub fn to_json(&self) -> serde_json::Value {
        let n = &self.notification;
        serde_json::json!({
            "idempotency_key": self.key,
            "incident_id": n.incident_id,
            "level": n.level,
            "repeat": n.repeat,
            "status": n.status,
            "severity": n.severity,
            "target": n.target,
            "summary": n.summary,
            "policy": n.policy,
            "labels": n.labels,
            "fired_at": humantime::format_rfc3339_seconds(n.fired_at).to_string(),
            "decided_at": humantime::format_rfc3339_millis(n.decided_at).to_string(),
            "test": self.test,
            "note": self.note,
            "more_incidents": self.others.len(),
            "others": self.others.iter().map(|o| serde_json::json!({
                "idempotency_key": o.idempotency_key(),
                "incident_id": o.incident_id,
                "status": o.status,
                "severity": o.severity,
                "target": o.target,
                "summary": o.summary,
            })).collect::<Vec<_>>(),
        })
    }
}

/// Serde for [`SystemTime`] as RFC 3339 text (what operators read in JSON).
pub mod rfc3339 {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_rfc3339_nanos(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_rfc3339_weak(&text)
            .map_err(|e| D::Error::custom(format!("bad RFC 3339 time {text:?}: {e}")))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    /// A notification for unit tests.
    pub fn sample(incident: &str) -> Notification {
        Notification {
            incident_id: incident.to_owned(),
            level: 1,
            repeat: 0,
            status: Status::Problem,
            severity: Severity::Critical,
            target: "host hv-12".to_owned(),
            summary: "heartbeats stopped 45 s ago".to_owned(),
            policy: "hypervisor-heartbeat".to_owned(),
            labels: [("rack".to_owned(), "r7".to_owned())].into(),
            fired_at: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            decided_at: UNIX_EPOCH + Duration::from_secs(1_700_000_030),
        }
    }

    #[test]
    fn key_names_incident_level_status_and_repeat() {
        let mut n = sample("inc-7");
        assert_eq!(n.idempotency_key(), "inc-7:L1:problem");
        n.repeat = 2;
        assert_eq!(n.idempotency_key(), "inc-7:L1:problem:r2");
        n.repeat = 0;
        n.status = Status::Recovery;
        assert_eq!(n.idempotency_key(), "inc-7:L1:recovery");
    }

    #[test]
    fn round_trips_through_json_with_readable_times() {
        let n = sample("inc-1");
        let text = serde_json::to_string(&n).unwrap();
        assert!(
            text.contains("\"fired_at\":\"2023-11-14T22:13:20"),
            "{text}"
        );
        let back: Notification = serde_json::from_str(&text).unwrap();
        assert_eq!(back, n);
    }
}
