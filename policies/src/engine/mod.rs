//! The policy engine: a deterministic state machine. Fed timestamped inputs,
//! it returns decisions (open, update and resolve incidents; run recovery
//! steps; notify channels) and never reads a clock or does I/O. Its whole
//! state is serde-serializable, so the watchdog persists it after every input
//! and resumes exactly where it was after a crash.
//!
//! Layout:
//! * [`state`]: the serializable state (incidents, watches, timers, ...).
//! * `condition`: condition evaluation on one target.
//! * `targets`: inventory, samples, states and events in; policies matched.
//! * `watch`: a policy watching a target: pending, firing, cleared.
//! * `incident`: incident status, resolution, flapping.
//! * `recovery`: recovery steps, attempts, verification, the budget.
//! * `ladder`: the escalation ladder and notifications.
//! * `holds`: acks, silences, maintenance and inhibition.
//! * `index`: the targets on each host (derived, not persisted).

mod condition;
mod holds;
mod incident;
mod index;
mod ladder;
mod recovery;
pub mod state;
mod targets;
mod watch;

use std::fmt;
use std::sync::Arc;

pub use state::{Ack, EngineState, Incident, LevelState, Member, Phase, Recovery, SNAPSHOT_FORMAT};

use crate::decision::{Decision, DecisionKind};
use crate::input::{IncidentId, Input, InputKind, RunId, Silence};
use crate::planner::{NoPlanner, Planner};
use crate::policy::{Policy, PolicySet};
use crate::target::TargetRef;
use crate::time::Timestamp;
use state::{PolicyShape, Subject, Timer};

/// An input the engine refuses; nothing changed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    /// Ack or unack of an incident that is not open.
    #[error("{0} is not open: it resolved, or never existed")]
    UnknownIncident(IncidentId),
    /// Unsilence of a silence that does not exist.
    #[error("there is no silence `{0}`")]
    UnknownSilence(String),
    /// A sample that is NaN or infinite.
    #[error("sample `{metric}` of {target} is not a finite number: {value}")]
    NotFinite {
        /// Whose sample.
        target: TargetRef,
        /// Which metric.
        metric: String,
        /// The value.
        value: f64,
    },
    /// A silence that would never apply or would apply to everything.
    #[error("silence `{id}` {problem}")]
    BadSilence {
        /// The silence.
        id: String,
        /// What is wrong.
        problem: &'static str,
    },
    /// A snapshot written by another version of the engine.
    #[error("snapshot format {found} is not supported: this build reads format {SNAPSHOT_FORMAT}")]
    SnapshotFormat {
        /// The snapshot's format.
        found: u32,
    },
}

/// The engine. See the module docs; the watchdog's loop is:
/// `advance(now)` at `next_wakeup()`, `handle(input)` for each input,
/// persist `snapshot()` with the returned decisions in one transaction, then
/// carry the decisions out.
pub struct Engine {
    policies: PolicySet,
    planner: Box<dyn Planner + Send + Sync>,
    s: EngineState,
    /// Derived from `s.targets`; rebuilt on restore.
    hosts: index::HostIndex,
    out: Vec<Decision>,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("now", &self.s.now)
            .field("policies", &self.policies.len())
            .field("incidents", &self.s.incidents.len())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine with no history, running `policies`, with no planner.
    pub fn new(policies: PolicySet) -> Engine {
        let mut e = Engine {
            policies: PolicySet::default(),
            planner: Box::new(NoPlanner),
            s: EngineState::default(),
            hosts: index::HostIndex::default(),
            out: Vec::new(),
        };
        e.set_policies(policies);
        e
    }

    /// Uses `planner` for failover, rebalance and LUN-move steps.
    pub fn with_planner(mut self, planner: impl Planner + Send + Sync + 'static) -> Engine {
        self.planner = Box::new(planner);
        self
    }

    /// An engine resuming from a snapshot. If the policies changed since the
    /// snapshot, the changes apply as a reload would, and what that decides
    /// is returned.
    pub fn restore(
        policies: PolicySet,
        state: EngineState,
    ) -> Result<(Engine, Vec<Decision>), EngineError> {
        Engine::restore_with_planner(policies, state, NoPlanner)
    }

    /// [`Engine::restore`] with a planner, so that steps the policy changes
    /// start at once reach it (the watchdog restores with its planner).
    pub fn restore_with_planner(
        policies: PolicySet,
        state: EngineState,
        planner: impl Planner + Send + Sync + 'static,
    ) -> Result<(Engine, Vec<Decision>), EngineError> {
        if state.format != SNAPSHOT_FORMAT {
            return Err(EngineError::SnapshotFormat {
                found: state.format,
            });
        }
        let mut e = Engine {
            policies: PolicySet::default(),
            planner: Box::new(planner),
            hosts: index::HostIndex::build(&state.targets),
            s: state,
            out: Vec::new(),
        };
        let decisions = e.set_policies(policies);
        Ok((e, decisions))
    }

    /// The whole state, to persist.
    pub fn snapshot(&self) -> EngineState {
        self.s.clone()
    }

    /// The engine's clock: the latest instant it has seen.
    pub fn now(&self) -> Timestamp {
        self.s.now
    }

    /// When the engine next needs [`Engine::advance`] if no input arrives.
    pub fn next_wakeup(&self) -> Option<Timestamp> {
        self.s.timers.first().map(|t| t.at)
    }

    /// Lets virtual time pass up to `now`: delays end, steps time out,
    /// ladder levels come due.
    pub fn advance(&mut self, now: Timestamp) -> Vec<Decision> {
        self.run_timers(now);
        self.s.now = self.s.now.max(now);
        std::mem::take(&mut self.out)
    }

    /// Takes one input. Timers due by `input.at` run first. `Err` means the
    /// input was refused and nothing changed.
    pub fn handle(&mut self, input: Input) -> Result<Vec<Decision>, EngineError> {
        self.validate(&input)?;
        let at = input.at.max(self.s.now);
        self.run_timers(at);
        self.s.now = at;
        self.apply(input.kind);
        Ok(std::mem::take(&mut self.out))
    }

    /// Replaces the policies (hot reload). Incidents of removed policies
    /// resolve; watches of changed conditions start over; new policies
    /// start watching.
    pub fn set_policies(&mut self, policies: PolicySet) -> Vec<Decision> {
        let old = std::mem::replace(&mut self.policies, policies);
        self.reconcile(&old);
        std::mem::take(&mut self.out)
    }

    /// The policies in force.
    pub fn policies(&self) -> &PolicySet {
        &self.policies
    }

    /// Open incidents, oldest first.
    pub fn incidents(&self) -> impl Iterator<Item = &Incident> {
        self.s.incidents.values()
    }

    /// One open incident.
    pub fn incident(&self, id: IncidentId) -> Option<&Incident> {
        self.s.incidents.get(&id)
    }

    /// Active silences, by id.
    pub fn silences(&self) -> impl Iterator<Item = &Silence> {
        self.s.silences.values()
    }

    /// Steps waiting for their result: after a restart, the runtime sends
    /// again those its outbox does not show as delivered (agents and planners
    /// deduplicate by run id).
    pub fn awaited_steps(&self) -> Vec<RunId> {
        let mut out = Vec::new();
        for inc in self.s.incidents.values() {
            for (t, m) in &inc.members {
                if let Recovery::Running {
                    phase: Phase::Awaiting { .. },
                    ..
                } = &m.recovery
                {
                    out.extend(m.recovery.run_id(inc.id, t));
                }
            }
        }
        out
    }

    /// Refuses malformed inputs and references to what does not exist, before
    /// anything changes.
    fn validate(&self, input: &Input) -> Result<(), EngineError> {
        match &input.kind {
            InputKind::Samples(samples) => {
                if let Some(s) = samples.iter().find(|s| !s.value.is_finite()) {
                    return Err(EngineError::NotFinite {
                        target: s.target.clone(),
                        metric: s.metric.clone(),
                        value: s.value,
                    });
                }
            }
            InputKind::Ack { incident, .. } | InputKind::Unack { incident }
                if !self.s.incidents.contains_key(incident) =>
            {
                return Err(EngineError::UnknownIncident(*incident));
            }
            InputKind::Silence(s) => {
                let problem = if s.matchers.is_empty() {
                    Some("has no matchers: it would silence everything")
                } else if s.until <= input.at.max(self.s.now) {
                    Some("expires before it starts")
                } else {
                    None
                };
                if let Some(problem) = problem {
                    return Err(EngineError::BadSilence {
                        id: s.id.clone(),
                        problem,
                    });
                }
            }
            InputKind::Unsilence { id } if !self.s.silences.contains_key(id) => {
                return Err(EngineError::UnknownSilence(id.clone()));
            }
            _ => {}
        }
        Ok(())
    }

    fn apply(&mut self, kind: InputKind) {
        match kind {
            InputKind::Target(info) => self.upsert_target(info),
            InputKind::TargetRemoved(t) => self.remove_target(&t),
            InputKind::HostState { host, state } => self.set_state(
                TargetRef::host(&host),
                crate::target::HOST_STATE,
                state.as_str(),
            ),
            InputKind::Samples(samples) => self.samples(samples),
            InputKind::State {
                target,
                name,
                value,
            } => self.set_state(target, &name, &value),
            InputKind::Event { target, name } => self.event(target, &name),
            InputKind::StepResult { run, result } => self.step_result(run, result),
            InputKind::Ack {
                incident,
                until,
                by,
            } => self.ack(incident, until, by),
            InputKind::Unack { incident } => self.unack(incident),
            InputKind::Silence(s) => self.add_silence(s),
            InputKind::Unsilence { id } => self.remove_silence(&id, false),
            InputKind::Maintenance { host, until } => self.start_maintenance(host, until),
            InputKind::MaintenanceEnd { host } => self.end_maintenance(&host),
        }
    }

    /// Records a decision at the engine's clock.
    fn emit(&mut self, kind: DecisionKind) {
        self.out.push(Decision {
            at: self.s.now,
            kind,
        });
    }

    /// Asks to re-evaluate `subject` at `at` (only future times: what is due
    /// now is evaluated by the caller).
    fn wake(&mut self, at: Timestamp, subject: Subject) {
        if at > self.s.now {
            self.s.timers.insert(Timer { at, subject });
        }
    }

    /// Runs every timer due by `until`, each at its own instant, in order.
    fn run_timers(&mut self, until: Timestamp) {
        while let Some(timer) = self.s.timers.first().cloned() {
            if timer.at > until {
                break;
            }
            self.s.timers.remove(&timer);
            self.s.now = self.s.now.max(timer.at);
            match timer.subject {
                Subject::Watch { policy, target } => {
                    if let Some(p) = self.policies.get(&policy).cloned() {
                        self.eval_watch(&p, &target);
                    }
                }
                Subject::Incident(id) => self.eval_incident(id),
                Subject::Silence(id) => self.expire_silence(&id),
                Subject::Maintenance(host) => self.expire_maintenance(&host),
                Subject::Flap(fp) => self.flap_timer(&fp),
            }
        }
    }

    /// Brings watches and incidents in line with the policies in force.
    fn reconcile(&mut self, old: &PolicySet) {
        let gone: Vec<String> = self
            .s
            .shapes
            .keys()
            .filter(|n| self.policies.get(n).is_none())
            .cloned()
            .collect();
        for name in gone {
            let ids: Vec<IncidentId> = self
                .s
                .incidents
                .values()
                .filter(|i| i.policy == name)
                .map(|i| i.id)
                .collect();
            for id in ids {
                self.resolve(id, Some("policy removed".to_owned()), false);
            }
            self.s.shapes.remove(&name);
            self.s.watches.remove(&name);
            self.s.runs.remove(&name);
        }
        let policies: Vec<Arc<Policy>> = self.policies.iter().cloned().collect();
        for p in policies {
            let shape = PolicyShape::of(&p);
            if self.s.shapes.get(&p.name) == Some(&shape) {
                // Same watches; steps or ladder may differ.
                if old.get(&p.name).is_some_and(|o| **o != *p) {
                    let ids: Vec<IncidentId> = self
                        .s
                        .incidents
                        .values()
                        .filter(|i| i.policy == p.name)
                        .map(|i| i.id)
                        .collect();
                    for id in ids {
                        self.eval_incident(id);
                    }
                }
                continue;
            }
            // Changed conditions: tracking starts over, memberships stay.
            for w in self
                .s
                .watches
                .entry(p.name.clone())
                .or_default()
                .values_mut()
            {
                w.when = Default::default();
                w.clear = Default::default();
            }
            self.s.shapes.insert(p.name.clone(), shape);
            let targets: Vec<TargetRef> = self.s.targets.keys().cloned().collect();
            for t in targets {
                self.rematch_one(&p, &t);
                self.eval_watch(&p, &t);
            }
            let ids: Vec<IncidentId> = self
                .s
                .incidents
                .values()
                .filter(|i| i.policy == p.name)
                .map(|i| i.id)
                .collect();
            for id in ids {
                self.eval_incident(id);
            }
        }
    }
}
