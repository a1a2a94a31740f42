//! What the engine decides: incident changes, steps to run, notifications to
//! send, and the audit lines that say why something did or did not happen.
//! Each renders as one timeline line, the form policy tests compare.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::input::{IncidentId, RunId};
use crate::policy::{Severity, StepAction};
use crate::target::TargetRef;
use crate::time::{Duration, Timestamp};

/// One decision at one virtual instant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// When the engine made it (an input's time or a timer's).
    pub at: Timestamp,
    /// What it decided.
    pub kind: DecisionKind,
}

/// An incident's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Failing, but not yet for the policy's `for`.
    Pending,
    /// Failing; no recovery step is running.
    Firing,
    /// Failing; a recovery step is running or being verified.
    Recovering,
    /// Cleared.
    Resolved,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Pending => "pending",
            Status::Firing => "firing",
            Status::Recovering => "recovering",
            Status::Resolved => "resolved",
        })
    }
}

/// The kinds of decision. The runtime carries out `RunStep`, `CancelStep`
/// and `Notify`; the rest are state changes and audit lines to record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DecisionKind {
    /// An incident opened.
    Opened {
        /// Its id.
        incident: IncidentId,
        /// The policy.
        policy: String,
        /// Policy plus target (or group labels): one open incident each.
        fingerprint: String,
        /// Pending or firing.
        status: Status,
        /// The first target.
        target: TargetRef,
        /// From the policy.
        severity: Severity,
        /// The policy's summary, filled in.
        summary: String,
    },
    /// Another target joined a grouped incident.
    Joined {
        incident: IncidentId,
        target: TargetRef,
    },
    /// A target left a grouped incident that stays open.
    Left {
        incident: IncidentId,
        target: TargetRef,
        why: String,
    },
    /// The incident's status changed.
    Status {
        incident: IncidentId,
        status: Status,
        why: Option<String>,
    },
    /// Carry out a recovery step (a `Wait` needs nothing carried out).
    RunStep(StepRun),
    /// What became of a step.
    StepFinished {
        incident: IncidentId,
        run: RunId,
        action: String,
        outcome: StepOutcome,
    },
    /// Stop a step that is no longer wanted (the incident cleared).
    CancelStep {
        run: RunId,
        action: String,
        why: String,
    },
    /// Recovery of a target waits.
    RecoveryHeld {
        incident: IncidentId,
        target: TargetRef,
        why: HoldReason,
    },
    /// Recovery did not start: the budget is used up.
    RecoverySkipped {
        incident: IncidentId,
        target: TargetRef,
        used: u32,
        window: Duration,
    },
    /// Every step failed.
    RecoveryFailed {
        incident: IncidentId,
        target: TargetRef,
    },
    /// Send a notification.
    Notify(Notification),
    /// A due ladder level is held back.
    LevelHeld {
        incident: IncidentId,
        level: usize,
        why: HoldReason,
    },
    /// The incident's fingerprint is flapping.
    Flapping {
        incident: IncidentId,
        firings: u32,
        window: Duration,
    },
    /// It has stopped flapping.
    FlappingEnded { fingerprint: String },
    /// Someone acknowledged the incident.
    Acked {
        incident: IncidentId,
        by: String,
        until: Option<Timestamp>,
    },
    /// The acknowledgement was withdrawn.
    Unacked { incident: IncidentId },
    /// The acknowledgement expired.
    AckExpired { incident: IncidentId },
    /// A new silence matches no incident and no known target.
    SilenceMatchesNothing { silence: String },
    /// A silence expired.
    SilenceExpired { silence: String },
    /// A host's maintenance ended (expired or ended by hand).
    MaintenanceEnded { host: String },
    /// A step result that arrived for a step no longer running.
    StaleResult { run: RunId },
}

/// A step to carry out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepRun {
    /// Unique id of this attempt; send it with the request and the result.
    pub run: RunId,
    /// The target the step works on.
    pub target: TargetRef,
    /// The host whose agent runs agent actions.
    pub host: Option<String>,
    /// 1-based step number.
    pub step: usize,
    /// 1-based attempt.
    pub attempt: u32,
    /// Attempts allowed.
    pub attempts: u32,
    /// How long the engine waits for the result before counting a failure.
    pub timeout: Duration,
    /// What to do.
    pub action: StepAction,
}

/// What became of a step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepOutcome {
    /// The step reported success.
    Succeeded,
    /// The condition cleared after the step.
    Verified,
    /// The step reported failure.
    Failed(String),
    /// No result within the timeout.
    TimedOut(Duration),
    /// Nothing can carry the step out.
    NotAvailable(String),
    /// It succeeded but the condition did not clear in time.
    NotVerified(Duration),
    /// A wait ended with the condition still true.
    WaitOver,
}

/// Why something that was due did not happen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HoldReason {
    /// Acknowledged.
    Acked {
        by: String,
        until: Option<Timestamp>,
    },
    /// A silence matches.
    Silenced { silence: String, until: Timestamp },
    /// The host the targets are on is failed; its own incident speaks.
    Inhibited { host: String },
    /// The host is in maintenance.
    Maintenance {
        host: String,
        until: Option<Timestamp>,
    },
    /// Flapping: paged once.
    Flapping,
}

/// The kinds of notification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NotifyKind {
    /// A ladder level was reached.
    Problem,
    /// A level repeats (numbered from 1).
    Repeat(u32),
    /// The incident resolved.
    Resolved,
    /// The incident is flapping.
    Flapping,
    /// Someone acknowledged the incident: the `n`th acknowledgement of it
    /// (numbered from 1; a changed ack counts anew).
    Acked(u32),
}

/// One message to one channel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// The incident.
    pub incident: IncidentId,
    /// Deduplication key: incident and level (and repeat number), the same
    /// after a restart, so receivers that deduplicate can.
    pub key: String,
    /// Channel name from the policy.
    pub channel: String,
    /// 1-based ladder level (for `Resolved` and `Flapping`, the level whose
    /// channel it is).
    pub level: usize,
    /// What it says.
    pub kind: NotifyKind,
    /// The policy.
    pub policy: String,
    /// Its severity.
    pub severity: Severity,
    /// The filled-in summary.
    pub summary: String,
    /// The incident's status.
    pub status: Status,
    /// Every target of the incident.
    pub targets: Vec<TargetRef>,
    /// For [`NotifyKind::Acked`]: who acknowledged, until when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack: Option<crate::engine::Ack>,
}

/// "55m left", or "until resolved" when there is no end.
fn remaining(now: Timestamp, until: Option<Timestamp>) -> String {
    match until {
        Some(u) => format!("{} left", u.since(now)),
        None => "until resolved".to_owned(),
    }
}

impl HoldReason {
    fn render(&self, now: Timestamp) -> String {
        match self {
            HoldReason::Acked { by, until } => format!("acked by {by}, {}", remaining(now, *until)),
            HoldReason::Silenced { silence, until } => {
                format!("silenced by {silence}, {}", remaining(now, Some(*until)))
            }
            HoldReason::Inhibited { host } => format!("inhibited: host {host} failed"),
            HoldReason::Maintenance { host, until } => match until {
                Some(_) => format!("host {host} in maintenance, {}", remaining(now, *until)),
                None => format!("host {host} in maintenance"),
            },
            HoldReason::Flapping => "flapping, paged once".to_owned(),
        }
    }
}

impl Decision {
    /// The timeline line without its time: what policy tests compare.
    pub fn line(&self) -> String {
        use DecisionKind as D;
        let now = self.at;
        match &self.kind {
            D::Opened {
                incident,
                policy,
                status,
                target,
                ..
            } => {
                format!("{incident} {status}: {policy} on {target}")
            }
            D::Joined { incident, target } => format!("{incident} joined by {target}"),
            D::Left {
                incident,
                target,
                why,
            } => format!("{incident} left by {target}: {why}"),
            D::Status {
                incident,
                status,
                why: None,
            } => format!("{incident} {status}"),
            D::Status {
                incident,
                status,
                why: Some(why),
            } => format!("{incident} {status} ({why})"),
            D::RunStep(r) => match &r.action {
                StepAction::Wait { duration } => {
                    format!(
                        "{} wait {duration} on {} (step {})",
                        r.run.incident, r.target, r.step
                    )
                }
                StepAction::Batch { command, .. } => format!(
                    "{} run batch {command} for {} (step {}, attempt {} of {})",
                    r.run.incident, r.target, r.step, r.attempt, r.attempts
                ),
                a => format!(
                    "{} run {} on {} (step {}, attempt {} of {})",
                    r.run.incident,
                    a.label(),
                    r.target,
                    r.step,
                    r.attempt,
                    r.attempts
                ),
            },
            D::StepFinished {
                incident,
                run,
                action,
                outcome,
            } => {
                let what = match outcome {
                    StepOutcome::Succeeded => "succeeded".to_owned(),
                    StepOutcome::Verified => "verified: the condition cleared".to_owned(),
                    StepOutcome::Failed(why) => format!("failed: {why}"),
                    StepOutcome::TimedOut(d) => format!("timed out after {d}"),
                    StepOutcome::NotAvailable(why) => format!("not available: {why}"),
                    StepOutcome::NotVerified(d) => {
                        format!("not verified: the condition did not clear within {d}")
                    }
                    StepOutcome::WaitOver => "over: the condition is still true".to_owned(),
                };
                format!("{incident} {action} on {} {what}", run.target)
            }
            D::CancelStep { run, action, why } => {
                format!("{} cancel {action} on {}: {why}", run.incident, run.target)
            }
            D::RecoveryHeld {
                incident,
                target,
                why,
            } => {
                format!("{incident} recovery of {target} held: {}", why.render(now))
            }
            D::RecoverySkipped {
                incident,
                target,
                used,
                window,
            } => format!(
                "{incident} recovery of {target} skipped: its budget of {used} run(s) per {window} is used up"
            ),
            D::RecoveryFailed { incident, target } => {
                format!("{incident} recovery of {target} failed")
            }
            D::Notify(n) => match n.kind {
                NotifyKind::Problem => {
                    format!("{} notify {} level {}", n.incident, n.channel, n.level)
                }
                NotifyKind::Repeat(k) => {
                    format!(
                        "{} notify {} level {} (repeat {k})",
                        n.incident, n.channel, n.level
                    )
                }
                NotifyKind::Resolved => format!("{} notify {}: resolved", n.incident, n.channel),
                NotifyKind::Flapping => format!("{} notify {}: flapping", n.incident, n.channel),
                NotifyKind::Acked(1) => format!("{} notify {}: acked", n.incident, n.channel),
                NotifyKind::Acked(k) => {
                    format!("{} notify {}: acked (ack {k})", n.incident, n.channel)
                }
            },
            D::LevelHeld {
                incident,
                level,
                why,
            } => {
                format!("{incident} level {level} held: {}", why.render(now))
            }
            D::Flapping {
                incident,
                firings,
                window,
            } => {
                format!("{incident} flapping: fired {firings} times within {window}")
            }
            D::FlappingEnded { fingerprint } => format!("{fingerprint} no longer flapping"),
            D::Acked {
                incident,
                by,
                until,
            } => {
                format!("{incident} acked by {by}, {}", remaining(now, *until))
            }
            D::Unacked { incident } => format!("{incident} ack withdrawn"),
            D::AckExpired { incident } => format!("{incident} ack expired"),
            D::SilenceMatchesNothing { silence } => format!("silence {silence} matches nothing"),
            D::SilenceExpired { silence } => format!("silence {silence} expired"),
            D::MaintenanceEnded { host } => format!("host {host} maintenance ended"),
            D::StaleResult { run } => {
                format!("result for {run} ignored: the step is no longer running")
            }
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:>8}  {}", self.at.to_string(), self.line())
    }
}
