//! Alertmanager interop: its webhook body (version 4) mapped to engine
//! inputs, so alerts from existing Prometheus rules can open incidents that
//! policies act on. Each alert becomes the state `alert:ALERTNAME` =
//! `firing` or `resolved` of the target its labels name:
//! `hyperwatch_target` (`KIND:ID`, any kind), else `host`, else `instance`
//! with its port removed (a host). A policy watches it like any state:
//!
//! ```toml
//! [target]
//! kind = "host"
//! [when]
//! state = "alert:HighLoad"
//! is = "firing"
//! ```

use std::collections::BTreeMap;

use hyperwatch_policies::{InputKind, target::TargetRef};
use serde::{Deserialize, Serialize};

/// The webhook format version this reads (Alertmanager 0.x to today).
pub const WEBHOOK_VERSION: &str = "4";
/// The label naming any target directly.
pub const TARGET_LABEL: &str = "hyperwatch_target";
/// The prefix of the state an alert sets.
pub const STATE_PREFIX: &str = "alert:";

/// Alertmanager's webhook body (the fields hyperwatch reads; others are
/// ignored, as Alertmanager adds fields within a version).
#[derive(Debug, Deserialize)]
pub struct Webhook {
    /// "4".
    pub version: String,
    /// The alerts of the group.
    pub alerts: Vec<Alert>,
}

/// One alert.
#[derive(Debug, Deserialize)]
pub struct Alert {
    /// "firing" or "resolved".
    pub status: String,
    /// Its labels; `alertname` names it.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// An alert that was not used, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// Its `alertname` (empty if it had none).
    pub alert: String,
    /// Why it was not used.
    pub why: String,
}

/// The inputs the alerts mean, and the alerts that were not used.
pub fn inputs(hook: &Webhook) -> (Vec<InputKind>, Vec<Skipped>) {
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    for a in &hook.alerts {
        let name = a.labels.get("alertname").cloned().unwrap_or_default();
        let skip = |why: String| Skipped {
            alert: name.clone(),
            why,
        };
        if name.is_empty() {
            skipped.push(skip("it has no alertname label".into()));
            continue;
        }
        if a.status != "firing" && a.status != "resolved" {
            skipped.push(skip(format!(
                "status {:?} is neither firing nor resolved",
                a.status
            )));
            continue;
        }
        match target(&a.labels) {
            Ok(target) => out.push(InputKind::State {
                target,
                name: format!("{STATE_PREFIX}{name}"),
                value: a.status.clone(),
            }),
            Err(why) => skipped.push(skip(why)),
        }
    }
    (out, skipped)
}

/// The target an alert's labels name.
fn target(labels: &BTreeMap<String, String>) -> Result<TargetRef, String> {
    if let Some(t) = labels.get(TARGET_LABEL) {
        return t.parse().map_err(|e| format!("label {TARGET_LABEL}: {e}"));
    }
    let host = labels
        .get("host")
        .cloned()
        .or_else(|| labels.get("instance").map(|i| without_port(i)))
        .filter(|h| !h.is_empty() && !h.contains(char::is_whitespace))
        .ok_or_else(|| {
            format!("it names no target: give it a `{TARGET_LABEL}`, `host` or `instance` label")
        })?;
    Ok(TargetRef::host(&host))
}

/// `hv1:9100` -> `hv1`, `[::1]:9100` -> `::1`; a bare name stays.
fn without_port(instance: &str) -> String {
    if let Some(v6) = instance.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6).to_owned();
    }
    match instance.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.chars().all(|c| c.is_ascii_digit()) => h.to_owned(),
        _ => instance.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_become_states_of_the_targets_their_labels_name() {
        let hook: Webhook = serde_json::from_str(
            r#"{
              "version": "4", "status": "firing", "receiver": "hyperwatch",
              "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
              "externalURL": "http://am:9093", "groupKey": "{}:{}", "truncatedAlerts": 0,
              "alerts": [
                {"status": "firing", "labels": {"alertname": "HighLoad", "instance": "hv1:9100"},
                 "annotations": {}, "startsAt": "2024-01-01T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                 "generatorURL": "", "fingerprint": "a"},
                {"status": "resolved", "labels": {"alertname": "DiskSlow", "hyperwatch_target": "storage-device:st1/nvme0"}},
                {"status": "firing", "labels": {"alertname": "Orphan"}},
                {"status": "firing", "labels": {"instance": "hv2:9100"}}
              ]
            }"#,
        )
        .unwrap();
        let (inputs, skipped) = inputs(&hook);
        assert_eq!(
            inputs,
            [
                InputKind::State {
                    target: TargetRef::host("hv1"),
                    name: "alert:HighLoad".into(),
                    value: "firing".into()
                },
                InputKind::State {
                    target: "storage-device:st1/nvme0".parse().unwrap(),
                    name: "alert:DiskSlow".into(),
                    value: "resolved".into()
                },
            ]
        );
        assert_eq!(skipped.len(), 2);
        assert!(skipped[0].why.contains("names no target"), "{skipped:?}");
        assert!(skipped[1].why.contains("alertname"), "{skipped:?}");
    }

    #[test]
    fn ports_come_off_instances() {
        assert_eq!(without_port("hv1:9100"), "hv1");
        assert_eq!(without_port("[fe80::1]:9100"), "fe80::1");
        assert_eq!(without_port("hv1"), "hv1");
        assert_eq!(without_port("10.0.0.1:80"), "10.0.0.1");
    }
}
