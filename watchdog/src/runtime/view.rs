//! What the HTTP API shows of incidents, silences and the policies in
//! force: plain serialisable views made from the engine's state and the
//! store's rows. Times are RFC 3339 (UTC, milliseconds).

use std::collections::BTreeMap;

use hyperwatch_policies::{
    Engine,
    engine::{Incident, Phase, Recovery},
    input::Silence,
    time::Timestamp,
};
use serde::Serialize;

use super::notify::system_time;
use crate::{
    status::IncidentSummary,
    store::{AuditEntry, IncidentRow},
};

/// RFC 3339 text of an engine timestamp.
pub fn rfc3339(t: Timestamp) -> String {
    humantime::format_rfc3339_millis(system_time(t)).to_string()
}

fn rfc3339_ms(ms: i64) -> String {
    rfc3339(Timestamp(ms.max(0) as u64))
}

/// One incident.
#[derive(Clone, Debug, Serialize)]
pub struct IncidentView {
    /// `inc-N`.
    pub id: String,
    /// The policy that opened it.
    pub policy: String,
    /// Policy plus target or group labels: one open incident each.
    pub fingerprint: String,
    /// info, warning or critical.
    pub severity: String,
    /// The policy's summary, filled in.
    pub summary: String,
    /// pending, firing, recovering or resolved.
    pub status: String,
    /// When it opened.
    pub opened_at: String,
    /// When it first fired (ladder delays count from here).
    pub fired_at: Option<String>,
    /// When it resolved.
    pub resolved_at: Option<String>,
    /// Its targets; for an open incident with where their recovery stands.
    pub targets: Vec<MemberView>,
    /// The acknowledgement, if any.
    pub ack: Option<AckView>,
    /// The escalation ladder: what each level did or why it waits (open
    /// incidents only).
    pub levels: Vec<LevelView>,
    /// Recovery runs started in this incident.
    pub recovery_runs: Option<u32>,
}

/// A target of an incident.
#[derive(Clone, Debug, Serialize)]
pub struct MemberView {
    /// `kind:id`.
    pub target: String,
    /// When it began to fail.
    pub pending_since: Option<String>,
    /// When it fired.
    pub fired_at: Option<String>,
    /// Where its recovery stands.
    pub recovery: Option<RecoveryView>,
    /// Why its recovery waits (maintenance, inhibition, ...).
    pub held: Option<serde_json::Value>,
}

/// Where a target's recovery stands.
#[derive(Clone, Debug, Serialize)]
pub struct RecoveryView {
    /// idle, no-steps, running, mitigated, failed or skipped.
    pub state: &'static str,
    /// 1-based step number while running.
    pub step: Option<usize>,
    /// 1-based attempt while running.
    pub attempt: Option<u32>,
    /// The step's action (restart-service, failover, wait, ...).
    pub action: Option<String>,
    /// awaiting (the step's result), verifying (the condition to clear) or
    /// waiting (a wait step).
    pub phase: Option<&'static str>,
    /// Until when the phase lasts at most.
    pub until: Option<String>,
}

/// An acknowledgement.
#[derive(Clone, Debug, Serialize)]
pub struct AckView {
    /// Who.
    pub by: String,
    /// Until when; None: until it resolves.
    pub until: Option<String>,
}

/// One ladder level of an open incident.
#[derive(Clone, Debug, Serialize)]
pub struct LevelView {
    /// 1-based.
    pub level: usize,
    /// Delay after the incident fired.
    pub after: String,
    /// The channels it notifies.
    pub channels: Vec<String>,
    /// Only once recovery failed.
    pub if_recovery_failed: bool,
    /// Held while acknowledged.
    pub unless_acked: bool,
    /// When it notified.
    pub sent_at: Option<String>,
    /// Repeats sent.
    pub repeats: u32,
    /// When the next repeat is due.
    pub next_repeat: Option<String>,
    /// Why it is held back, if it is.
    pub held: Option<serde_json::Value>,
}

/// A silence.
#[derive(Clone, Debug, Serialize)]
pub struct SilenceView {
    /// Its id.
    pub id: String,
    /// `label=glob` / `label!=glob`, all of which must match.
    pub matchers: Vec<String>,
    /// When it expires.
    pub until: String,
    /// Who created it.
    pub by: String,
    /// Why.
    pub comment: String,
}

/// An incident's timeline: the audit lines and the notifications' fates.
#[derive(Clone, Debug, Serialize)]
pub struct TimelineEntry {
    /// When.
    pub at: String,
    /// The decision's kind (`opened`, `notify`, `level-held`, ...) or
    /// `runtime` for what the watchdog did about one.
    pub kind: String,
    /// The line, as policy tests write it.
    pub line: String,
    /// More (an agent's output, the decision as JSON).
    pub detail: Option<String>,
}

/// One delivery of an incident's notification.
#[derive(Clone, Debug, Serialize)]
pub struct DeliveryView {
    /// The idempotency key.
    pub key: String,
    /// The channel.
    pub channel: String,
    /// The recipient, for channels that fan out.
    pub recipient: String,
    /// pending, delivered or failed.
    pub state: &'static str,
    /// Attempts so far.
    pub attempts: u32,
    /// The receiver's answer or the last error.
    pub outcome: Option<String>,
    /// A delivery note (fallback, failure notice).
    pub note: Option<String>,
}

impl TimelineEntry {
    /// The view of an audit row.
    pub fn of(a: &AuditEntry) -> Self {
        Self {
            at: rfc3339_ms(a.at_ms),
            kind: a.kind.clone(),
            line: a.line.clone(),
            detail: a.detail.clone(),
        }
    }
}

impl SilenceView {
    /// The view of a silence.
    pub fn of(s: &Silence) -> Self {
        Self {
            id: s.id.clone(),
            matchers: s.matchers.iter().map(ToString::to_string).collect(),
            until: rfc3339(s.until),
            by: s.by.clone(),
            comment: s.comment.clone(),
        }
    }
}

impl IncidentView {
    /// An open incident as the engine holds it.
    pub fn open(engine: &Engine, i: &Incident) -> Self {
        let policy = engine.policies().get(&i.policy);
        let levels = i
            .levels
            .iter()
            .enumerate()
            .map(|(n, l)| {
                let def = policy.and_then(|p| p.ladder.get(n));
                LevelView {
                    level: n + 1,
                    after: def.map_or_else(String::new, |d| d.after.to_string()),
                    channels: def.map_or_else(Vec::new, |d| d.channels.clone()),
                    if_recovery_failed: def.is_some_and(|d| d.if_recovery_failed),
                    unless_acked: def.is_some_and(|d| d.unless_acked),
                    sent_at: l.sent_at.map(rfc3339),
                    repeats: l.repeats,
                    next_repeat: l.next_repeat.map(rfc3339),
                    held: l.held.as_ref().and_then(|h| serde_json::to_value(h).ok()),
                }
            })
            .collect();
        Self {
            id: i.id.to_string(),
            policy: i.policy.clone(),
            fingerprint: i.fingerprint.clone(),
            severity: i.severity.to_string(),
            summary: i.summary.clone(),
            status: i.status.to_string(),
            opened_at: rfc3339(i.opened_at),
            fired_at: i.fired_at.map(rfc3339),
            resolved_at: None,
            targets: i
                .members
                .iter()
                .map(|(t, m)| MemberView {
                    target: t.to_string(),
                    pending_since: Some(rfc3339(m.pending_since)),
                    fired_at: m.fired_at.map(rfc3339),
                    recovery: Some(recovery(&m.recovery)),
                    held: m.held.as_ref().and_then(|h| serde_json::to_value(h).ok()),
                })
                .collect(),
            ack: i.ack.as_ref().map(|a| AckView {
                by: a.by.clone(),
                until: a.until.map(rfc3339),
            }),
            levels,
            recovery_runs: Some(i.runs_started),
        }
    }

    /// An incident as the store holds it (resolved ones).
    pub fn stored(row: &IncidentRow) -> Self {
        Self {
            id: row.id.clone(),
            policy: row.policy.clone(),
            fingerprint: row.fingerprint.clone(),
            severity: row.severity.clone(),
            summary: row.summary.clone(),
            status: row.status.clone(),
            opened_at: rfc3339_ms(row.opened_ms),
            fired_at: row.fired_ms.map(rfc3339_ms),
            resolved_at: row.resolved_ms.map(rfc3339_ms),
            targets: row
                .targets
                .iter()
                .map(|t| MemberView {
                    target: t.clone(),
                    pending_since: None,
                    fired_at: None,
                    recovery: None,
                    held: None,
                })
                .collect(),
            ack: None,
            levels: Vec::new(),
            recovery_runs: None,
        }
    }
}

fn recovery(r: &Recovery) -> RecoveryView {
    let simple = |state| RecoveryView {
        state,
        step: None,
        attempt: None,
        action: None,
        phase: None,
        until: None,
    };
    match r {
        Recovery::Idle => simple("idle"),
        Recovery::NoSteps => simple("no-steps"),
        Recovery::Mitigated => simple("mitigated"),
        Recovery::Failed => simple("failed"),
        Recovery::Skipped => simple("skipped"),
        Recovery::Running {
            step,
            attempt,
            action,
            phase,
            ..
        } => {
            let (phase, until) = match phase {
                Phase::Awaiting { deadline } => ("awaiting", *deadline),
                Phase::Verifying { deadline } => ("verifying", *deadline),
                Phase::Waiting { until } => ("waiting", *until),
            };
            RecoveryView {
                state: "running",
                step: Some(step + 1),
                attempt: Some(*attempt),
                action: Some(action.clone()),
                phase: Some(phase),
                until: Some(rfc3339(until)),
            }
        }
    }
}

/// Open incidents counted by status, for the metrics.
pub fn count_by_status(engine: &Engine) -> Vec<(&'static str, i64)> {
    let mut counts: BTreeMap<&'static str, i64> = BTreeMap::new();
    for i in engine.incidents() {
        let s = match i.status {
            hyperwatch_policies::decision::Status::Pending => "pending",
            hyperwatch_policies::decision::Status::Firing => "firing",
            hyperwatch_policies::decision::Status::Recovering => "recovering",
            hyperwatch_policies::decision::Status::Resolved => "resolved",
        };
        *counts.entry(s).or_default() += 1;
    }
    counts.into_iter().collect()
}

/// The open incidents as the status page lists them: the step under way
/// (`2/3 restart-service on service:hv1/nginx`) and the highest ladder
/// level that has notified.
pub fn summaries(engine: &Engine) -> Vec<IncidentSummary> {
    engine
        .incidents()
        .map(|i| {
            let steps = engine
                .policies()
                .get(&i.policy)
                .map_or(0, |p| p.steps.len());
            let step = i.members.iter().find_map(|(t, m)| match &m.recovery {
                Recovery::Running { step, action, .. } => {
                    Some(format!("{}/{steps} {action} on {t}", step + 1))
                }
                _ => None,
            });
            let target = match i.members.len() {
                1 => i
                    .members
                    .keys()
                    .next()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                n => format!("{n} targets ({})", i.fingerprint),
            };
            IncidentSummary {
                id: i.id.to_string(),
                policy: i.policy.clone(),
                target,
                state: i.status.to_string(),
                step,
                level: i
                    .levels
                    .iter()
                    .rposition(|l| l.sent_at.is_some())
                    .map_or(0, |n| n as u32 + 1),
                since: i.opened_at.0 as f64 / 1000.0,
            }
        })
        .collect()
}
