//! The engine's whole state: serde-serializable so the watchdog can persist
//! it after every input and resume from it after a crash. Ordered maps only,
//! so nothing depends on hash order.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::decision::{HoldReason, Status};
use crate::input::{IncidentId, RunId, Silence};
use crate::policy::{Condition, Grouping, Policy, Severity};
use crate::target::{Selector, TargetInfo, TargetRef};
use crate::time::Timestamp;

/// Version of the snapshot format; restore refuses other versions.
pub const SNAPSHOT_FORMAT: u32 = 1;

/// Everything the engine knows. Obtain it with
/// [`super::Engine::snapshot`]; give it back with [`super::Engine::restore`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EngineState {
    pub(crate) format: u32,
    pub(crate) now: Timestamp,
    pub(crate) next_incident: u64,
    /// What each policy's watches were built from, to notice changes on
    /// reload and restore.
    pub(crate) shapes: BTreeMap<String, PolicyShape>,
    pub(crate) targets: BTreeMap<TargetRef, TargetEntry>,
    /// Policy name, then target: condition tracking.
    pub(crate) watches: BTreeMap<String, BTreeMap<TargetRef, Watch>>,
    /// Open incidents.
    pub(crate) incidents: BTreeMap<IncidentId, Incident>,
    /// Fingerprint to its open incident.
    pub(crate) open: BTreeMap<String, IncidentId>,
    /// Policy name, then target: start times of recovery runs (the budget).
    pub(crate) runs: BTreeMap<String, BTreeMap<TargetRef, Vec<Timestamp>>>,
    /// Fingerprint: recent firings and flapping state.
    pub(crate) flaps: BTreeMap<String, Flap>,
    pub(crate) silences: BTreeMap<String, Silence>,
    /// Host to the end of its maintenance (`None`: until ended).
    pub(crate) maintenance: BTreeMap<String, Option<Timestamp>>,
    pub(crate) timers: BTreeSet<Timer>,
}

impl Default for EngineState {
    fn default() -> Self {
        EngineState {
            format: SNAPSHOT_FORMAT,
            now: Timestamp(0),
            next_incident: 1,
            shapes: BTreeMap::new(),
            targets: BTreeMap::new(),
            watches: BTreeMap::new(),
            incidents: BTreeMap::new(),
            open: BTreeMap::new(),
            runs: BTreeMap::new(),
            flaps: BTreeMap::new(),
            silences: BTreeMap::new(),
            maintenance: BTreeMap::new(),
            timers: BTreeSet::new(),
        }
    }
}

/// The parts of a policy that watches depend on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct PolicyShape {
    pub selector: Selector,
    pub when: Condition,
    pub clear: Option<Condition>,
    pub group: Option<Grouping>,
}

impl PolicyShape {
    pub fn of(p: &Policy) -> PolicyShape {
        PolicyShape {
            selector: p.selector.clone(),
            when: p.when.clone(),
            clear: p.clear.clone(),
            group: p.group.clone(),
        }
    }
}

/// A target and the latest of its inputs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct TargetEntry {
    pub info: TargetInfo,
    /// When the engine first heard of it (absent conditions count from here).
    pub first_seen: Timestamp,
    /// Metric name to (time of the latest sample, its value).
    pub metrics: BTreeMap<String, (Timestamp, f64)>,
    pub states: BTreeMap<String, StateReading>,
}

/// The latest value of a named state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct StateReading {
    pub value: String,
    /// When it took this value.
    pub since: Timestamp,
    /// When it was last reported.
    pub seen: Timestamp,
}

/// One policy watching one target.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Watch {
    // Most watches are idle: written as `{}` they keep snapshots small.
    #[serde(default, skip_serializing_if = "Track::is_empty")]
    pub when: Track,
    #[serde(default, skip_serializing_if = "Track::is_empty")]
    pub clear: Track,
    /// The open incident this target is a member of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<IncidentId>,
}

/// The history a condition needs beyond the latest value.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Track {
    /// Since when the predicate has been true (threshold, count, rate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Timestamp>,
    /// Breach flags of the last samples (X of the last Y).
    #[serde(default, skip_serializing_if = "VecDeque::is_empty")]
    pub ring: VecDeque<bool>,
    /// Samples inside the rate window.
    #[serde(default, skip_serializing_if = "VecDeque::is_empty")]
    pub points: VecDeque<(Timestamp, f64)>,
    /// The latest events (as many as the condition counts).
    #[serde(default, skip_serializing_if = "VecDeque::is_empty")]
    pub events: VecDeque<Timestamp>,
}

impl Track {
    fn is_empty(&self) -> bool {
        *self == Track::default()
    }
}

/// An open incident.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// Its id.
    pub id: IncidentId,
    /// The policy.
    pub policy: String,
    /// Policy plus target or group labels.
    pub fingerprint: String,
    /// From the policy when it opened.
    pub severity: Severity,
    /// The filled-in summary.
    pub summary: String,
    /// Its status.
    pub status: Status,
    /// When it opened (pending or firing).
    pub opened_at: Timestamp,
    /// When it first fired; ladder delays count from here.
    pub fired_at: Option<Timestamp>,
    /// Targets in it (one unless the policy groups).
    pub members: BTreeMap<TargetRef, Member>,
    /// The acknowledgement, if any.
    pub ack: Option<Ack>,
    /// Per ladder level: what was sent.
    pub levels: Vec<LevelState>,
    /// Recovery runs started in this incident, over all its targets.
    pub runs_started: u32,
    /// Acknowledgements so far (a new one, or one that changed who or
    /// until when); numbers the acknowledgement notifications. Absent from
    /// snapshots written before it existed: none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub acks: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// One target in an incident.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// When it began to fail.
    pub pending_since: Timestamp,
    /// When it fired (`None` while pending).
    pub fired_at: Option<Timestamp>,
    /// Where its recovery stands.
    pub recovery: Recovery,
    /// Why recovery waits, once said.
    pub held: Option<HoldReason>,
}

/// Where a target's recovery stands.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Recovery {
    /// Not started (pending, or held).
    Idle,
    /// The policy has no steps.
    NoSteps,
    /// Recovery run `run` (numbered within the incident), step `step`
    /// (0-based), attempt `attempt`, doing `action` (the step's label, kept
    /// so a step can be named after its policy is gone).
    Running {
        run: u32,
        step: usize,
        attempt: u32,
        action: String,
        phase: Phase,
    },
    /// A step succeeded with `verify = "step-result"`; the condition may
    /// stay true (a failed-over host stays dead).
    Mitigated,
    /// Every step failed.
    Failed,
    /// The budget was used up; no run started.
    Skipped,
}

impl Recovery {
    /// The id of the attempt in flight, if any.
    pub fn run_id(&self, incident: IncidentId, target: &TargetRef) -> Option<RunId> {
        match self {
            Recovery::Running {
                run, step, attempt, ..
            } => Some(RunId {
                incident,
                target: target.clone(),
                run: *run,
                step: step + 1,
                attempt: *attempt,
            }),
            _ => None,
        }
    }
}

/// What a running step waits for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// The step's result, until `deadline`.
    Awaiting { deadline: Timestamp },
    /// The condition to clear, until `deadline`.
    Verifying { deadline: Timestamp },
    /// A wait step's end.
    Waiting { until: Timestamp },
}

/// An acknowledgement.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    /// Who.
    pub by: String,
    /// Until when (`None`: until resolved).
    pub until: Option<Timestamp>,
}

/// What one ladder level has done for an incident.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LevelState {
    /// When it notified.
    pub sent_at: Option<Timestamp>,
    /// Repeats sent.
    pub repeats: u32,
    /// When the next repeat is due.
    pub next_repeat: Option<Timestamp>,
    /// Why it is held back, once said.
    pub held: Option<HoldReason>,
}

/// Recent firings of one fingerprint.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Flap {
    pub firings: VecDeque<Timestamp>,
    pub flapping: bool,
    /// Whether this flapping episode has paged.
    pub paged: bool,
}

/// Something to re-evaluate at a time.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct Timer {
    pub at: Timestamp,
    pub subject: Subject,
}

/// What a timer re-evaluates.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Subject {
    Watch { policy: String, target: TargetRef },
    Incident(IncidentId),
    Silence(String),
    Maintenance(String),
    Flap(String),
}
