//! The policy file as written: serde structs that mirror the TOML, with the
//! places (spans) the checker needs to point at. The checker turns them into
//! the [`crate::policy`] model.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer};
use toml::Spanned;

use crate::target::TargetKind;
use crate::time::Duration;

/// A whole policy file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// The policy language version the file is written in (1).
    pub version: Spanned<u32>,
    /// Unique name; default: the file name without `.toml`.
    pub name: Option<Spanned<String>>,
    /// What the policy is for, for people.
    pub description: Option<String>,
    /// One-line text for notifications, with `{name}`, `{host}`, `{target}`,
    /// `{kind}`, `{policy}` and label placeholders such as `{rack}`.
    pub summary: Option<Spanned<String>>,
    /// How bad a firing incident is.
    pub severity: Option<Severity>,
    /// Which targets the policy watches.
    pub target: Spanned<TargetSection>,
    /// When a target counts as failing.
    pub when: Spanned<ConditionSection>,
    /// When a failing target counts as fixed (default: `when` no longer true).
    pub clear: Option<Spanned<ConditionSection>>,
    /// Limits on how often recovery runs per target.
    pub recovery: Option<RecoverySection>,
    /// Recovery steps, tried in order.
    #[serde(default)]
    pub step: Vec<Spanned<StepSection>>,
    /// The escalation ladder, lowest level first.
    #[serde(default)]
    pub escalate: Vec<Spanned<LevelSection>>,
    /// One incident (one page) for many targets sharing labels.
    pub group: Option<Spanned<GroupSection>>,
    /// Flapping detection.
    pub flapping: Option<FlappingSection>,
}

/// How bad a firing incident is.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    /// Worth knowing.
    Info,
    /// Needs attention soon.
    #[default]
    Warning,
    /// Needs attention now.
    Critical,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        })
    }
}

/// `[target]`: which targets the policy watches.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSection {
    /// host, vm, service, storage-device or lun.
    pub kind: Spanned<TargetKind>,
    /// Name pattern(s).
    pub name: Option<Spanned<Names>>,
    /// Cluster pattern(s).
    pub cluster: Option<Spanned<Names>>,
    /// Rack pattern(s).
    pub rack: Option<Spanned<Names>>,
    /// Tenant pattern(s).
    pub tenant: Option<Spanned<Names>>,
    /// Pattern(s) for the host the target is on.
    pub host: Option<Spanned<Names>>,
    /// Any other label, to pattern(s).
    pub labels: Option<BTreeMap<String, Spanned<Names>>>,
}

/// `[when]` and `[clear]`: a condition over one target's telemetry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionSection {
    /// A metric: threshold, X of the last Y samples, or rate of change.
    pub metric: Option<Spanned<String>>,
    /// A named state (`host`, `service`, `check`, `ebpf`, ...).
    pub state: Option<Spanned<String>>,
    /// A named event, counted in a window.
    pub event: Option<Spanned<String>>,
    /// A metric or state that stopped arriving.
    pub absent: Option<Spanned<String>>,
    /// Breach when the metric is above this.
    pub above: Option<Spanned<f64>>,
    /// Breach when the metric is below this.
    pub below: Option<Spanned<f64>>,
    /// Breach when the metric rises faster than this per second.
    pub rate_above: Option<Spanned<f64>>,
    /// Breach when the metric rises slower (falls faster) than this per second.
    pub rate_below: Option<Spanned<f64>>,
    /// Window the rate is measured over.
    pub over: Option<Spanned<Duration>>,
    /// State value(s) that count as failing.
    pub is: Option<Spanned<Names>>,
    /// State value(s) that count as fine; every other value is failing.
    pub is_not: Option<Spanned<Names>>,
    /// How long the breach must hold.
    #[serde(rename = "for")]
    pub hold: Option<Spanned<Duration>>,
    /// X in "X of the last Y samples", or the number of events.
    pub at_least: Option<Spanned<u32>>,
    /// Y in "X of the last Y samples".
    pub of_last: Option<Spanned<u32>>,
    /// Window events are counted in.
    pub within: Option<Spanned<Duration>>,
}

/// `[recovery]`: the per-target recovery budget.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoverySection {
    /// How many recovery runs may start per target within `window`.
    pub max_runs: Option<Spanned<u32>>,
    /// The sliding window `max_runs` counts in.
    pub window: Option<Spanned<Duration>>,
}

/// The kinds of recovery step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepKindName {
    /// Ask the target's agent to run a named, allowlisted action.
    AgentAction,
    /// Fail a failed host's VMs over to hosts with room.
    Failover,
    /// Live-migrate VMs off an overloaded host.
    Rebalance,
    /// Move LUNs off an overloaded storage device.
    MoveLuns,
    /// Run a batch file on the watchdog host.
    Batch,
    /// Do nothing for a while and see whether the condition clears.
    Wait,
}

impl StepKindName {
    /// The name written in files.
    pub fn as_str(self) -> &'static str {
        match self {
            StepKindName::AgentAction => "agent-action",
            StepKindName::Failover => "failover",
            StepKindName::Rebalance => "rebalance",
            StepKindName::MoveLuns => "move-luns",
            StepKindName::Batch => "batch",
            StepKindName::Wait => "wait",
        }
    }
}

/// How a step's success is verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verify {
    /// The incident's clear condition must hold within `verify_within`.
    Cleared,
    /// The step's own success is enough (failover: the VMs run elsewhere
    /// though the host stays dead).
    StepResult,
}

/// `[[step]]`: one recovery step.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSection {
    /// What the step does.
    pub kind: Spanned<StepKindName>,
    /// agent-action: the action's name in the agent's allowlist.
    pub action: Option<Spanned<String>>,
    /// agent-action: parameters passed with the action.
    pub params: Option<Spanned<BTreeMap<String, String>>>,
    /// batch: the program to run on the watchdog host.
    pub command: Option<Spanned<String>>,
    /// batch: its arguments.
    pub args: Option<Spanned<Vec<String>>>,
    /// wait: how long.
    pub duration: Option<Spanned<Duration>>,
    /// How long to wait for the step's result.
    pub timeout: Option<Spanned<Duration>>,
    /// How many times to try the step before moving on.
    pub attempts: Option<Spanned<u32>>,
    /// What counts as success.
    pub verify: Option<Spanned<Verify>>,
    /// With verify = "cleared": how long the condition has to clear.
    pub verify_within: Option<Spanned<Duration>>,
}

/// `if` on a ladder level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LevelIf {
    /// Only once every recovery step has failed or the budget is used up.
    RecoveryFailed,
}

/// `unless` on a ladder level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LevelUnless {
    /// Held back while someone has acknowledged the incident.
    Acked,
}

/// `[[escalate]]`: one level of the escalation ladder.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LevelSection {
    /// Delay after the incident fired.
    pub after: Option<Spanned<Duration>>,
    /// Extra condition for the level.
    #[serde(rename = "if")]
    pub only_if: Option<Spanned<LevelIf>>,
    /// What holds the level back.
    pub unless: Option<Spanned<LevelUnless>>,
    /// Channels to notify, by name.
    pub notify: Spanned<Vec<Spanned<String>>>,
    /// Notify again at this interval while the incident fires.
    pub repeat: Option<Spanned<Duration>>,
    /// Tell these channels when the incident resolves (default true).
    pub on_resolve: Option<bool>,
    /// Tell these channels when someone acknowledges the incident, if this
    /// level has notified (default true).
    pub on_ack: Option<bool>,
}

/// `[group]`: one incident for all targets sharing these labels.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSection {
    /// Labels whose values form the group.
    pub by: Spanned<Vec<Spanned<String>>>,
    /// How long to collect members before the first notification.
    pub wait: Option<Spanned<Duration>>,
}

/// `[flapping]`: when an incident that keeps reopening is flapping.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlappingSection {
    /// Firings within `window` that make a flapping incident.
    pub threshold: Option<Spanned<u32>>,
    /// The sliding window firings are counted in.
    pub window: Option<Spanned<Duration>>,
}

/// A string or a list of strings (`name = "nginx"` or `name = ["a", "b*"]`).
#[derive(Clone, Debug, PartialEq)]
pub struct Names(pub Vec<String>);

impl<'de> Deserialize<'de> for Names {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Names;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Names, E> {
                Ok(Names(vec![v.to_owned()]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Names, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    out.push(s);
                }
                Ok(Names(out))
            }
        }
        d.deserialize_any(Visitor)
    }
}
