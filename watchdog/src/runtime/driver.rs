//! The task that owns the policy engine: it feeds it the cluster's events,
//! the operators' requests, the steps' results, policy reloads and the
//! passing of real time; commits each batch of decisions (engine state,
//! incidents, steps, audit lines and outbox deliveries) in one transaction;
//! and only then carries the decisions out.

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use hyperwatch_policies::{
    Decision, DecisionKind, Engine, EngineError, IncidentId, Input, InputKind,
    decision::{NotifyKind, Status, StepOutcome},
    time::Timestamp,
};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::{
    inputs::InputMapper,
    metrics::RuntimeMetrics,
    notify::notification,
    record::{self, note},
    source::{PolicySource, Reload},
    steps::{StepReport, StepRunner},
    view::{self, IncidentView, SilenceView},
};
use crate::{
    channels::{CONSOLE, Notification},
    events::ClusterEvent,
    outbox::{Notifier, delivery::now_ms, store::NewDelivery},
    registry::Registry,
    status::IncidentSummary,
    store::{AuditEntry, Commit, IncidentRow, StepResultRow, StepRow, Store},
};

/// Events taken from the broadcast in one batch before the decisions are
/// committed: one commit (one fsync) covers a burst.
const DRAIN_BATCH: usize = 4096;
/// Longest sleep without looking at the clock, so that a stepped wall
/// clock is noticed.
const MAX_IDLE: Duration = Duration::from_secs(60);
/// The counter of generated silence ids in the store.
const NEXT_SILENCE: &str = "next_silence";

/// Per input: its decisions, or why the engine refused it; or, as a whole,
/// why the batch could not be committed.
pub type InputsReply = Result<Vec<Result<Vec<Decision>, EngineError>>, String>;

/// What the API asks of the engine.
pub enum Request {
    /// Apply operator inputs (ack, silence, maintenance, alerts) and answer
    /// once they are committed.
    Inputs {
        /// The inputs, applied in order.
        kinds: Vec<InputKind>,
        /// Per input: the decisions' lines, or why it was refused.
        reply: oneshot::Sender<InputsReply>,
    },
    /// A new silence id (`s1`, `s2`, ...).
    SilenceId {
        /// The id.
        reply: oneshot::Sender<String>,
    },
    /// Open incidents.
    Incidents {
        /// Oldest first.
        reply: oneshot::Sender<Vec<IncidentView>>,
    },
    /// One open incident.
    Incident {
        /// Which.
        id: IncidentId,
        /// None when it is not open.
        reply: oneshot::Sender<Option<IncidentView>>,
    },
    /// Active silences.
    Silences {
        /// By id.
        reply: oneshot::Sender<Vec<SilenceView>>,
    },
    /// The policies in force and the last reload.
    Policies {
        /// The answer.
        reply: oneshot::Sender<PoliciesView>,
    },
}

/// The policies in force.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PoliciesView {
    /// The directory, or "built-in".
    pub source: String,
    /// Policy names.
    pub policies: Vec<String>,
    /// The last reload, if any since the start.
    pub last_reload: Option<ReloadView>,
}

/// One reload's outcome.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ReloadView {
    /// When.
    pub at: String,
    /// sighup or change.
    pub trigger: &'static str,
    /// Whether the new set applied.
    pub applied: bool,
    /// Why not, with file, line and column.
    pub error: Option<String>,
}

/// A reply sent once the batch it belongs to is committed (or failed to).
type Reply = Box<dyn FnOnce(Result<(), String>) + Send>;

/// The engine's task.
pub struct Driver {
    pub(super) engine: Engine,
    pub(super) store: Store,
    pub(super) notifier: Notifier,
    pub(super) runner: StepRunner,
    pub(super) mapper: InputMapper,
    pub(super) registry: Arc<Registry>,
    pub(super) metrics: RuntimeMetrics,
    pub(super) source: PolicySource,
    /// Open incidents (and those resolved in the batch being committed).
    pub(super) book: BTreeMap<IncidentId, IncidentRow>,
    /// Decisions not committed yet: nothing of them is carried out before.
    pub(super) unsaved: Vec<Decision>,
    /// Runtime audit lines not committed yet.
    pub(super) notes: Vec<AuditEntry>,
    /// Step results not committed yet.
    pub(super) results: Vec<StepResultRow>,
    /// Steps to start once committed, beyond those decided (resumed after
    /// a restart).
    pub(super) resume: Vec<(hyperwatch_policies::decision::StepRun, Timestamp)>,
    /// Inputs changed the engine since its state was last saved.
    pub(super) dirty: bool,
    pub(super) next_silence: i64,
    pub(super) meta_dirty: bool,
    pub(super) replies: Vec<Reply>,
    pub(super) last_reload: Option<ReloadView>,
    pub(super) snapshot_interval: Duration,
    pub(super) last_saved: Instant,
    /// The open incidents for the status page, refreshed after each commit.
    pub(super) summaries: watch::Sender<Arc<Vec<IncidentSummary>>>,
}

/// Now on the engine's clock (Unix milliseconds).
pub fn now() -> Timestamp {
    Timestamp(now_ms().max(0) as u64)
}

impl Driver {
    /// Runs until `stop`, then saves the state one last time.
    pub async fn run(
        mut self,
        mut events: broadcast::Receiver<ClusterEvent>,
        mut requests: mpsc::Receiver<Request>,
        mut reports: mpsc::Receiver<StepReport>,
        mut reloads: mpsc::Receiver<Reload>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut save_tick = tokio::time::interval(self.snapshot_interval);
        save_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut events_open = true;
        loop {
            let wake = self.engine.next_wakeup().map_or(MAX_IDLE, |at| {
                Duration::from_millis(at.0.saturating_sub(now().0)).min(MAX_IDLE)
            });
            tokio::select! {
                // Sent true, or the sender dropped: stop either way.
                _ = stop.changed() => break,
                e = events.recv(), if events_open => {
                    events_open = !matches!(e, Err(broadcast::error::RecvError::Closed));
                    self.event(e);
                }
                Some(r) = requests.recv() => self.request(r),
                Some(r) = reports.recv() => self.report(r),
                Some(r) = reloads.recv() => self.reload(r),
                _ = tokio::time::sleep(wake) => self.advance(),
                _ = save_tick.tick() => {
                    if self.dirty && self.last_saved.elapsed() >= self.snapshot_interval {
                        self.finish(true).await;
                    }
                    continue;
                }
            }
            for _ in 0..DRAIN_BATCH {
                if !events_open || *stop.borrow() {
                    break;
                }
                match events.try_recv() {
                    Err(broadcast::error::TryRecvError::Empty) => break,
                    e => self.event(e.map_err(|e| match e {
                        broadcast::error::TryRecvError::Lagged(n) => {
                            broadcast::error::RecvError::Lagged(n)
                        }
                        _ => broadcast::error::RecvError::Closed,
                    })),
                }
            }
            self.finish(false).await;
        }
        self.finish(true).await;
        tracing::info!("policy engine stopped; its state is saved");
    }

    /// Feeds one input stamped now; refused inputs are counted.
    fn input(&mut self, kind: InputKind) -> Result<Vec<Decision>, EngineError> {
        let result = self.engine.handle(Input { at: now(), kind });
        match &result {
            Ok(decisions) => {
                self.dirty = true;
                self.unsaved.extend(decisions.iter().cloned());
            }
            Err(e) => self.metrics.refused(match e {
                EngineError::UnknownIncident(_) => "unknown-incident",
                EngineError::UnknownSilence(_) => "unknown-silence",
                EngineError::NotFinite { .. } => "not-finite",
                EngineError::BadSilence { .. } => "bad-silence",
                EngineError::SnapshotFormat { .. } => "snapshot-format",
            }),
        }
        result
    }

    fn event(&mut self, e: Result<ClusterEvent, broadcast::error::RecvError>) {
        match e {
            Ok(ev) => {
                for kind in self.mapper.map(&ev) {
                    if let Err(e) = self.input(kind) {
                        tracing::warn!(error = %e, "policy engine refused an input from the cluster");
                    }
                }
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => self.resync(missed),
            // The watchdog is stopping.
            Err(broadcast::error::RecvError::Closed) => {}
        }
    }

    /// Fell behind the cluster events: re-reads every host's latest hello,
    /// state and telemetry from the registry. Service changes and events
    /// lost in the gap cannot be recovered; the log says so.
    fn resync(&mut self, missed: u64) {
        tracing::warn!(
            missed,
            "policy engine fell behind the cluster events; re-reading the registry (service changes and agent events in the gap are lost)"
        );
        self.metrics.resync();
        for host in self.registry.snapshot() {
            let Some(entry) = self.registry.entry(&host.id) else {
                continue;
            };
            let (hello, telemetry) = {
                let r = entry.lock().expect("host lock");
                (r.hello.clone(), r.telemetry.clone())
            };
            let mut kinds = self.mapper.hello(&host.id, &hello);
            kinds.push(InputKind::HostState {
                host: host.id.clone(),
                state: host.state,
            });
            kinds.extend(telemetry.and_then(|t| self.mapper.telemetry(&host.id, &t)));
            for kind in kinds {
                let _ = self.input(kind);
            }
        }
        self.notes.push(note(
            None,
            format!("fell behind the cluster events by {missed}; re-read the registry"),
            None,
        ));
    }

    fn request(&mut self, r: Request) {
        match r {
            Request::Inputs { kinds, reply } => {
                let results: Vec<_> = kinds.into_iter().map(|k| self.input(k)).collect();
                self.replies.push(Box::new(move |committed| {
                    let _ = reply.send(committed.map(|()| results));
                }));
            }
            Request::SilenceId { reply } => {
                self.next_silence += 1;
                self.meta_dirty = true;
                let _ = reply.send(format!("s{}", self.next_silence));
            }
            Request::Incidents { reply } => {
                let all = self
                    .engine
                    .incidents()
                    .map(|i| IncidentView::open(&self.engine, i))
                    .collect();
                let _ = reply.send(all);
            }
            Request::Incident { id, reply } => {
                let one = self
                    .engine
                    .incident(id)
                    .map(|i| IncidentView::open(&self.engine, i));
                let _ = reply.send(one);
            }
            Request::Silences { reply } => {
                let _ = reply.send(self.engine.silences().map(SilenceView::of).collect());
            }
            Request::Policies { reply } => {
                let _ = reply.send(PoliciesView {
                    source: self.source.describe(),
                    policies: self
                        .engine
                        .policies()
                        .iter()
                        .map(|p| p.name.clone())
                        .collect(),
                    last_reload: self.last_reload.clone(),
                });
            }
        }
    }

    fn report(&mut self, r: StepReport) {
        let at = now();
        self.results.push(StepResultRow {
            run: r.run.to_string(),
            result: serde_json::to_string(&r.result).expect("step results serialize"),
            detail: r.detail.clone(),
            finished_ms: at.0 as i64,
        });
        let first = r.detail.lines().next().unwrap_or_default().to_owned();
        self.notes.push(note(
            Some(r.run.incident),
            format!("{} {}", r.run, first),
            Some(r.detail),
        ));
        if let Err(e) = self.input(InputKind::StepResult {
            run: r.run,
            result: r.result,
        }) {
            tracing::warn!(error = %e, "policy engine refused a step result");
        }
    }

    fn reload(&mut self, r: Reload) {
        let trigger = r.trigger.as_str();
        let at = view::rfc3339(now());
        match r.result {
            Ok(set) => {
                let n = set.len();
                let decisions = self.engine.set_policies(set);
                self.dirty = true;
                self.unsaved.extend(decisions);
                self.metrics.reload(trigger, true, n);
                tracing::info!(trigger, policies = n, "policies reloaded");
                self.notes.push(note(
                    None,
                    format!(
                        "policies reloaded ({trigger}): {n} from {}",
                        self.source.describe()
                    ),
                    None,
                ));
                self.last_reload = Some(ReloadView {
                    at,
                    trigger,
                    applied: true,
                    error: None,
                });
            }
            Err(report) => {
                let text = report.to_string();
                self.metrics.reload(trigger, false, 0);
                tracing::error!(
                    trigger,
                    "policy reload refused; the running policies stay:\n{text}"
                );
                self.notes.push(note(
                    None,
                    format!("policy reload refused ({trigger}); the running policies stay"),
                    Some(text.clone()),
                ));
                self.last_reload = Some(ReloadView {
                    at,
                    trigger,
                    applied: false,
                    error: Some(text),
                });
            }
        }
    }

    fn advance(&mut self) {
        let now = now();
        if self.engine.next_wakeup().is_some_and(|w| w <= now) {
            let decisions = self.engine.advance(now);
            self.dirty = true;
            self.unsaved.extend(decisions);
        }
    }

    /// Commits what was decided (and, with `save_state`, the engine state
    /// even without decisions), then carries the decisions out and answers
    /// the requests. A failed commit keeps everything for the next try:
    /// nothing is carried out that is not on disk.
    pub(super) async fn finish(&mut self, save_state: bool) {
        let nothing = self.unsaved.is_empty()
            && self.notes.is_empty()
            && self.results.is_empty()
            && !self.meta_dirty
            && self.replies.is_empty();
        if nothing && !(save_state && self.dirty) {
            return;
        }
        let at = now();
        let mut commit = Commit::default();
        let mut touched: Vec<IncidentId> = Vec::new();
        let mut batch: Vec<(NewDelivery, String)> = Vec::new();
        let decisions = std::mem::take(&mut self.unsaved);
        for d in &decisions {
            record::book(&mut self.book, d, &mut touched);
            commit.audit.push(record::audit(d));
            match &d.kind {
                DecisionKind::RunStep(r) => commit.steps.push(StepRow {
                    run: r.run.to_string(),
                    incident: r.run.incident.to_string(),
                    step: serde_json::to_string(r).expect("steps serialize"),
                    decided_ms: d.at.0 as i64,
                }),
                DecisionKind::Notify(n) => {
                    let fired = self.book.get(&n.incident).and_then(|b| b.fired_ms);
                    let labels = n
                        .targets
                        .first()
                        .map(|t| self.mapper.labels(t))
                        .unwrap_or_default();
                    let note = notification(n, d.at, fired.map(|f| Timestamp(f as u64)), labels);
                    batch.extend(self.deliveries(note, &n.channel));
                }
                _ => {}
            }
        }
        commit.incidents = touched
            .iter()
            .filter_map(|id| self.book.get(id).cloned())
            .collect();
        commit.deliveries = batch.iter().map(|(d, _)| d.clone()).collect();
        commit.audit.extend(self.notes.iter().cloned());
        commit.results = self.results.clone();
        if self.meta_dirty {
            commit.meta.push((NEXT_SILENCE, self.next_silence));
        }
        let state_bytes = if self.dirty || !decisions.is_empty() {
            let json =
                serde_json::to_string(&self.engine.snapshot()).expect("engine state serializes");
            let n = json.len();
            commit.state = Some(json);
            Some(n)
        } else {
            None
        };
        let started = Instant::now();
        if let Err(e) = self.store.commit(commit, at.0 as i64).await {
            tracing::error!(error = %e, "committing decisions failed; nothing of them is carried out until a commit succeeds");
            for reply in self.replies.drain(..) {
                reply(Err(format!("the store failed: {e}")));
            }
            self.unsaved = decisions;
            return;
        }
        self.metrics
            .committed(started.elapsed().as_secs_f64(), state_bytes);
        if state_bytes.is_some() {
            self.dirty = false;
            self.last_saved = Instant::now();
        }
        self.meta_dirty = false;
        self.notes.clear();
        self.results.clear();
        let channels: Vec<String> = batch.into_iter().map(|(_, c)| c).collect();
        self.notifier.recorded(&channels).await;
        self.carry_out(&decisions);
        for reply in self.replies.drain(..) {
            reply(Ok(()));
        }
        self.metrics
            .set_incidents(&view::count_by_status(&self.engine));
        if !decisions.is_empty() {
            self.summaries
                .send_replace(Arc::new(view::summaries(&self.engine)));
        }
    }

    /// Starts the steps, cancels the unwanted ones, counts, and forgets the
    /// incidents that resolved.
    fn carry_out(&mut self, decisions: &[Decision]) {
        for (run, at) in std::mem::take(&mut self.resume) {
            self.start_step(run, at);
        }
        for d in decisions {
            match &d.kind {
                DecisionKind::RunStep(r) => self.start_step(r.clone(), d.at),
                DecisionKind::CancelStep { run, action, why } => {
                    let what = self.runner.cancel(run);
                    self.notes.push(note(
                        Some(run.incident),
                        format!("{run}: cancelled {action} ({why}): {what}"),
                        None,
                    ));
                }
                DecisionKind::Notify(n) => self.metrics.notification(
                    &n.channel,
                    match n.kind {
                        NotifyKind::Problem => "problem",
                        NotifyKind::Repeat(_) => "repeat",
                        NotifyKind::Resolved => "resolved",
                        NotifyKind::Flapping => "flapping",
                        NotifyKind::Acked(_) => "acknowledgement",
                    },
                ),
                DecisionKind::StepFinished {
                    action, outcome, ..
                } => self.metrics.step(
                    action,
                    match outcome {
                        StepOutcome::Succeeded => "succeeded",
                        StepOutcome::Verified => "verified",
                        StepOutcome::Failed(_) => "failed",
                        StepOutcome::TimedOut(_) => "timed-out",
                        StepOutcome::NotAvailable(_) => "not-available",
                        StepOutcome::NotVerified(_) => "not-verified",
                        StepOutcome::WaitOver => "wait-over",
                    },
                ),
                DecisionKind::Status {
                    incident,
                    status: Status::Resolved,
                    ..
                } => {
                    self.metrics.resolved();
                    self.book.remove(incident);
                }
                _ => {}
            }
        }
    }

    fn start_step(&mut self, run: hyperwatch_policies::decision::StepRun, at: Timestamp) {
        let policy = self
            .book
            .get(&run.run.incident)
            .map(|b| b.policy.clone())
            .unwrap_or_default();
        let labels = self.mapper.labels(&run.target);
        self.runner.start(run, &policy, labels, at);
    }

    /// The deliveries of one notification to one channel; a channel the
    /// configuration lacks (the policies are checked against it, so only a
    /// race with a reload could cause it) goes to the console with a note.
    fn deliveries(&self, n: Notification, channel: &str) -> Vec<(NewDelivery, String)> {
        let batch = [(n.clone(), vec![channel.to_owned()])];
        match self.notifier.deliveries(&batch) {
            Ok(ds) => ds.into_iter().map(|d| (d, channel.to_owned())).collect(),
            Err(e) => {
                tracing::error!(error = %e, "notification to an unknown channel goes to the console");
                let fallback = [(n, vec![CONSOLE.to_owned()])];
                self.notifier
                    .deliveries(&fallback)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|mut d| {
                        d.note = Some(format!("channel {channel:?} is not configured"));
                        (d, CONSOLE.to_owned())
                    })
                    .collect()
            }
        }
    }
}
