//! What the engine is fed: timestamped inventory, host states, samples,
//! states, events, step results, acks, silences and maintenance windows; and
//! the ids that tie decisions and later inputs together.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::glob;
use crate::target::{HostState, TargetInfo, TargetRef};
use crate::time::Timestamp;

/// One input at one virtual instant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Input {
    /// When it happened. An instant before the engine's clock is taken as
    /// the engine's clock: time never runs backwards.
    pub at: Timestamp,
    /// What happened.
    pub kind: InputKind,
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InputKind {
    /// A target appeared or its labels changed (inventory).
    Target(TargetInfo),
    /// A target is gone from the inventory; its incidents resolve.
    TargetRemoved(TargetRef),
    /// The failure detector changed a host's state.
    HostState {
        /// Host id.
        host: String,
        /// Its new state.
        state: HostState,
    },
    /// Metric samples, in any order (the engine sorts them).
    Samples(Vec<Sample>),
    /// A named state of a target (`service` = `exited`, `check` = `failing`,
    /// `ebpf` = `unavailable`).
    State {
        /// Whose state.
        target: TargetRef,
        /// State name.
        name: String,
        /// New value.
        value: String,
    },
    /// A point event (a process exit, an OOM kill), counted by event
    /// conditions.
    Event {
        /// Where.
        target: TargetRef,
        /// Event name.
        name: String,
    },
    /// What became of a step the engine asked for.
    StepResult {
        /// The run, from [`crate::decision::StepRun::run`].
        run: RunId,
        /// Its result.
        result: StepResult,
    },
    /// Someone acknowledged an incident.
    Ack {
        /// Which incident.
        incident: IncidentId,
        /// Until when; `None`: until it resolves.
        until: Option<Timestamp>,
        /// Who.
        by: String,
    },
    /// An acknowledgement was withdrawn.
    Unack {
        /// Which incident.
        incident: IncidentId,
    },
    /// A silence was created (or replaced, by id).
    Silence(Silence),
    /// A silence was removed before its expiry.
    Unsilence {
        /// Which silence.
        id: String,
    },
    /// A host went into maintenance: no recovery, no notifications for it
    /// and everything on it.
    Maintenance {
        /// Host id.
        host: String,
        /// Until when; `None`: until ended.
        until: Option<Timestamp>,
    },
    /// Maintenance ended early.
    MaintenanceEnd {
        /// Host id.
        host: String,
    },
}

/// One metric sample.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Whose.
    pub target: TargetRef,
    /// Metric name.
    pub metric: String,
    /// Value (finite).
    pub value: f64,
}

/// What became of a step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepResult {
    /// It did what it should.
    Succeeded,
    /// It failed, and why.
    Failed(String),
    /// Nothing can carry it out (no planner, agent lacks the action).
    NotAvailable(String),
}

/// A silence: incidents whose labels match every matcher send nothing
/// until it expires.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    /// Id, chosen by whoever creates it.
    pub id: String,
    /// Every matcher must match.
    pub matchers: Vec<Matcher>,
    /// When it expires (silences always expire).
    pub until: Timestamp,
    /// Who created it.
    pub by: String,
    /// Why.
    pub comment: String,
}

/// `label=pattern` or `label!=pattern` (patterns are globs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Matcher {
    /// Label name (`policy`, `severity`, `kind`, `name`, `host`, `id`,
    /// `target`, or any target label).
    pub label: String,
    /// True for `!=`.
    pub negate: bool,
    /// Glob the value must (not) match.
    pub pattern: String,
}

impl Matcher {
    /// Whether the labels satisfy the matcher; a missing label has the
    /// empty value.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let v = labels.get(&self.label).map_or("", String::as_str);
        glob::matches(&self.pattern, v) != self.negate
    }
}

/// A matcher that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid matcher `{0}`: write label=pattern or label!=pattern, for example rack=r1 or host!=hv*"
)]
pub struct MatcherError(pub String);

impl FromStr for Matcher {
    type Err = MatcherError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (label, negate, pattern) = if let Some((l, p)) = s.split_once("!=") {
            (l, true, p)
        } else if let Some((l, p)) = s.split_once('=') {
            (l, false, p)
        } else {
            return Err(MatcherError(s.to_owned()));
        };
        if label.is_empty() || label.contains(char::is_whitespace) {
            return Err(MatcherError(s.to_owned()));
        }
        Ok(Matcher {
            label: label.to_owned(),
            negate,
            pattern: pattern.to_owned(),
        })
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = if self.negate { "!=" } else { "=" };
        write!(f, "{}{op}{}", self.label, self.pattern)
    }
}

/// An incident's id, `inc-N`, numbered in the order incidents open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IncidentId(pub u64);

/// One attempt of one step of one recovery run on one target of one
/// incident: `inc-3/service:hv1/nginx/run1/step1/try2`. Unique for ever:
/// agents and planners deduplicate requests by it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RunId {
    /// The incident.
    pub incident: IncidentId,
    /// The target the step works on.
    pub target: TargetRef,
    /// 1-based recovery run within the incident (a target that clears and
    /// fails again within a grouped incident gets a new run).
    pub run: u32,
    /// 1-based step number.
    pub step: usize,
    /// 1-based attempt.
    pub attempt: u32,
}

/// An id that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} `{text}`: expected {expected}")]
pub struct IdError {
    what: &'static str,
    text: String,
    expected: &'static str,
}

impl fmt::Display for IncidentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "inc-{}", self.0)
    }
}

impl FromStr for IncidentId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.strip_prefix("inc-")
            .and_then(|n| n.parse().ok())
            .map(IncidentId)
            .ok_or_else(|| IdError {
                what: "incident id",
                text: s.to_owned(),
                expected: "inc-N, for example inc-12",
            })
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/run{}/step{}/try{}",
            self.incident, self.target, self.run, self.step, self.attempt
        )
    }
}

impl FromStr for RunId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parse = || -> Option<RunId> {
            let (incident, rest) = s.split_once('/')?;
            let (rest, attempt) = rest.rsplit_once("/try")?;
            let (rest, step) = rest.rsplit_once("/step")?;
            let (target, run) = rest.rsplit_once("/run")?;
            Some(RunId {
                incident: incident.parse().ok()?,
                target: target.parse().ok()?,
                run: run.parse().ok()?,
                step: step.parse().ok()?,
                attempt: attempt.parse().ok()?,
            })
        };
        parse().ok_or_else(|| IdError {
            what: "step run id",
            text: s.to_owned(),
            expected: "INCIDENT/TARGET/runR/stepN/tryM, for example inc-3/service:hv1/nginx/run1/step1/try1",
        })
    }
}

/// Serde through the display form, so ids are readable JSON strings and
/// usable as map keys.
macro_rules! serde_via_string {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                String::deserialize(d)?
                    .parse()
                    .map_err(serde::de::Error::custom)
            }
        }
    };
}
serde_via_string!(IncidentId);
serde_via_string!(RunId);
serde_via_string!(Matcher);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_round_trip_with_slashes_in_target_ids() {
        let text = "inc-3/service:hv1/nginx/run4/step1/try2";
        let r: RunId = text.parse().unwrap();
        assert_eq!(r.incident, IncidentId(3));
        assert_eq!(r.target.to_string(), "service:hv1/nginx");
        assert_eq!((r.run, r.step, r.attempt), (4, 1, 2));
        assert_eq!(r.to_string(), text);
        assert!("inc-3/step1".parse::<RunId>().is_err());
    }

    #[test]
    fn matchers_parse_and_match_globs() {
        let m: Matcher = "rack=r1*".parse().unwrap();
        let labels = BTreeMap::from([("rack".to_owned(), "r12".to_owned())]);
        assert!(m.matches(&labels));
        let n: Matcher = "rack!=r1*".parse().unwrap();
        assert!(!n.matches(&labels));
        assert!("rack".parse::<Matcher>().is_err());
        assert_eq!(n.to_string(), "rack!=r1*");
    }
}
