//! The checked policy model the engine runs: conditions, recovery steps, the
//! escalation ladder, grouping and flapping, with every default filled in.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use crate::ast::{Severity, Verify};
use crate::target::Selector;
use crate::time::Duration;

/// How long an agent action may take to report back. A service restart
/// answers within seconds; a minute also covers a slow systemd stop.
pub const DEFAULT_AGENT_ACTION_TIMEOUT: Duration = Duration::secs(60);
/// How long a batch file may run: operators' scripts talk to other systems;
/// five minutes bounds them without cutting off an honest slow one.
pub const DEFAULT_BATCH_TIMEOUT: Duration = Duration::mins(5);
/// How long a failover, rebalance or LUN move may take: live migration of a
/// host's VMs takes minutes; half an hour bounds it.
pub const DEFAULT_PLANNER_TIMEOUT: Duration = Duration::mins(30);
/// How long after a step the condition has to clear, from the issue's own
/// example ("within 60 s the condition has cleared").
pub const DEFAULT_VERIFY_WITHIN: Duration = Duration::secs(60);
/// Recovery runs allowed per target per window: three an hour heals the rare
/// repeat failure but stops a crash loop from being restarted forever.
pub const DEFAULT_MAX_RUNS: u32 = 3;
/// The window the recovery budget counts in.
pub const DEFAULT_RECOVERY_WINDOW: Duration = Duration::mins(60);
/// Firings within the flapping window that make an incident flapping: the
/// third opening in an hour is no longer a coincidence.
pub const DEFAULT_FLAP_THRESHOLD: u32 = 3;
/// The flapping window.
pub const DEFAULT_FLAP_WINDOW: Duration = Duration::mins(60);
/// How long a grouped incident collects members before its first
/// notification; Alertmanager's `group_wait` default, which operators know.
pub const DEFAULT_GROUP_WAIT: Duration = Duration::secs(30);

/// One checked policy.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// Unique name.
    pub name: String,
    /// The file it came from.
    pub file: PathBuf,
    /// What it is for.
    pub description: String,
    /// Notification text template (placeholders in braces).
    pub summary: String,
    /// How bad a firing incident is.
    pub severity: Severity,
    /// Which targets it watches.
    pub selector: Selector,
    /// When a target is failing.
    pub when: Condition,
    /// When a failing target is fixed; `None`: `when` is no longer true.
    pub clear: Option<Condition>,
    /// Recovery steps in order.
    pub steps: Vec<Step>,
    /// How often recovery may run per target.
    pub budget: RecoveryBudget,
    /// The escalation ladder, lowest level first.
    pub ladder: Vec<Level>,
    /// Grouping of targets into one incident.
    pub group: Option<Grouping>,
    /// Flapping detection.
    pub flapping: Flapping,
}

/// A comparison of a number against a threshold.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Comparison {
    /// Strictly above.
    Above(f64),
    /// Strictly below.
    Below(f64),
}

impl Comparison {
    /// Whether `value` breaches.
    pub fn breached_by(self, value: f64) -> bool {
        match self {
            Comparison::Above(t) => value > t,
            Comparison::Below(t) => value < t,
        }
    }
}

/// What a condition looks at.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Predicate {
    /// The latest sample of a metric breaches.
    Threshold {
        /// Metric name.
        metric: String,
        /// The breach.
        cmp: Comparison,
    },
    /// At least `at_least` of the last `of_last` samples breach.
    Count {
        /// Metric name.
        metric: String,
        /// The breach.
        cmp: Comparison,
        /// X.
        at_least: u32,
        /// Y.
        of_last: u32,
    },
    /// The metric's rate of change per second over `over` breaches.
    Rate {
        /// Metric name.
        metric: String,
        /// The breach, in units per second.
        cmp: Comparison,
        /// The window.
        over: Duration,
    },
    /// A named state has one of these values (or, negated, none of them).
    State {
        /// State name.
        name: String,
        /// The values listed.
        values: Vec<String>,
        /// True: breach when the state is none of `values` (`is_not`).
        negate: bool,
    },
    /// At least `at_least` events of this name within `within`.
    Events {
        /// Event name.
        name: String,
        /// How many.
        at_least: u32,
        /// Window.
        within: Duration,
    },
    /// No sample or state update of this name for `after`.
    Absent {
        /// Metric or state name.
        name: String,
        /// How long it has been missing.
        after: Duration,
    },
}

impl Predicate {
    /// The metric, state or event name the predicate reads.
    pub fn input_name(&self) -> &str {
        match self {
            Predicate::Threshold { metric, .. }
            | Predicate::Count { metric, .. }
            | Predicate::Rate { metric, .. } => metric,
            Predicate::State { name, .. }
            | Predicate::Events { name, .. }
            | Predicate::Absent { name, .. } => name,
        }
    }
}

/// A predicate that must hold for a while.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    /// What to look at.
    pub predicate: Predicate,
    /// How long it must hold (`for`); zero: at once.
    pub hold: Duration,
}

/// What a recovery step does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepAction {
    /// Ask the target's agent to run an allowlisted action.
    AgentAction {
        /// The action's name.
        action: String,
        /// Parameters passed along.
        params: BTreeMap<String, String>,
    },
    /// Fail the host's VMs over (planner).
    Failover,
    /// Rebalance the host's VMs (planner).
    Rebalance,
    /// Move LUNs off the storage device (planner).
    MoveLuns,
    /// Run a program on the watchdog host.
    Batch {
        /// Program path.
        command: String,
        /// Arguments.
        args: Vec<String>,
    },
    /// Wait and see.
    Wait {
        /// How long.
        duration: Duration,
    },
}

impl StepAction {
    /// The name test files and timelines use: the agent action's name, else
    /// the step kind.
    pub fn label(&self) -> &str {
        match self {
            StepAction::AgentAction { action, .. } => action,
            StepAction::Failover => "failover",
            StepAction::Rebalance => "rebalance",
            StepAction::MoveLuns => "move-luns",
            StepAction::Batch { .. } => "batch",
            StepAction::Wait { .. } => "wait",
        }
    }
}

/// One recovery step.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// What it does.
    pub action: StepAction,
    /// How long to wait for its result.
    pub timeout: Duration,
    /// How many tries before the next step.
    pub attempts: u32,
    /// What counts as success.
    pub verify: Verify,
    /// With `Verify::Cleared`: how long the condition has to clear.
    pub verify_within: Duration,
}

/// The recovery budget of one target.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RecoveryBudget {
    /// Recovery runs allowed per window.
    pub max_runs: u32,
    /// The sliding window.
    pub window: Duration,
}

/// One escalation level.
#[derive(Clone, Debug, PartialEq)]
pub struct Level {
    /// Delay after the incident fired.
    pub after: Duration,
    /// Only once recovery has failed.
    pub if_recovery_failed: bool,
    /// Held back while acknowledged.
    pub unless_acked: bool,
    /// Channels to notify.
    pub channels: Vec<String>,
    /// Repeat interval.
    pub repeat: Option<Duration>,
    /// Tell the channels when the incident resolves.
    pub on_resolve: bool,
    /// Tell the channels when someone acknowledges the incident (once
    /// this level has notified).
    pub on_ack: bool,
}

/// Grouping of targets into one incident.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Grouping {
    /// Labels whose values form the group.
    pub by: Vec<String>,
    /// Collection time before the first notification.
    pub wait: Duration,
}

/// Flapping detection settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Flapping {
    /// Firings within `window` that make it flapping.
    pub threshold: u32,
    /// Sliding window.
    pub window: Duration,
}

/// The policies in force, by name (names are unique).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PolicySet {
    policies: BTreeMap<String, Arc<Policy>>,
}

impl PolicySet {
    /// A set of policies; a later policy with an earlier one's name replaces
    /// it (the checker reports duplicates before it comes to this).
    pub fn new(policies: impl IntoIterator<Item = Policy>) -> PolicySet {
        PolicySet {
            policies: policies
                .into_iter()
                .map(|p| (p.name.clone(), Arc::new(p)))
                .collect(),
        }
    }

    /// The policy called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<Policy>> {
        self.policies.get(name)
    }

    /// Every policy, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Policy>> {
        self.policies.values()
    }

    /// How many policies.
    pub fn len(&self) -> usize {
        self.policies.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }
}

/// Placeholders every summary may use, besides target labels.
pub const SUMMARY_BUILTINS: [&str; 6] = ["policy", "target", "kind", "id", "name", "host"];

/// Fills a summary template from a target's labels (which include the
/// built-in `name`, `host`, `id`, `kind`, `target`); unknown labels read "?".
pub fn render_summary(template: &str, policy: &str, labels: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        let key = &rest[open + 1..open + close];
        match key {
            "policy" => out.push_str(policy),
            _ => out.push_str(labels.get(key).map_or("?", String::as_str)),
        }
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_fill_labels_and_mark_missing_ones() {
        let labels = BTreeMap::from([
            ("name".to_owned(), "nginx".to_owned()),
            ("host".to_owned(), "hv1".to_owned()),
        ]);
        assert_eq!(
            render_summary("{name} on {host} ({rack}) [{policy}]", "svc", &labels),
            "nginx on hv1 (?) [svc]"
        );
    }

    #[test]
    fn comparisons_are_strict() {
        assert!(Comparison::Above(0.9).breached_by(0.91));
        assert!(!Comparison::Above(0.9).breached_by(0.9));
        assert!(Comparison::Below(10.0).breached_by(9.0));
    }
}
