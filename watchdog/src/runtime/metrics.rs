//! The policy runtime's metrics: incidents by state, notifications
//! decided, recovery steps by result, policy reloads, and what persisting
//! the engine costs.

use prometheus_client::{
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

type Labels = Vec<(&'static str, String)>;

/// Every incident state, so each series exists from the start.
const STATES: [&str; 4] = ["pending", "firing", "recovering", "resolved"];

/// Commit durations: 100 µs (no snapshot) doubling to ~6.5 s (a large
/// snapshot on a slow disk).
fn persist_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 17))
}

/// The runtime's metrics; clones share the series.
#[derive(Clone)]
pub struct RuntimeMetrics {
    incidents: Family<Labels, Gauge>,
    resolved: Counter,
    notifications: Family<Labels, Counter>,
    steps: Family<Labels, Counter>,
    reload_success: Gauge,
    reload_errors: Counter,
    reloads: Family<Labels, Counter>,
    policies: Gauge,
    snapshot_bytes: Gauge,
    persist: Histogram,
    resyncs: Counter,
    refused: Family<Labels, Counter>,
}

impl Default for RuntimeMetrics {
    fn default() -> Self {
        Self {
            incidents: Family::default(),
            resolved: Counter::default(),
            notifications: Family::default(),
            steps: Family::default(),
            reload_success: Gauge::default(),
            reload_errors: Counter::default(),
            reloads: Family::default(),
            policies: Gauge::default(),
            snapshot_bytes: Gauge::default(),
            persist: persist_histogram(),
            resyncs: Counter::default(),
            refused: Family::default(),
        }
    }
}

impl RuntimeMetrics {
    /// Adds the series to the watchdog's registry.
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "hyperwatch_incidents",
            "Open incidents, by state",
            self.incidents.clone(),
        );
        r.register(
            "hyperwatch_incidents_resolved",
            "Incidents resolved since the watchdog started",
            self.resolved.clone(),
        );
        r.register(
            "hyperwatch_notifications_decided",
            "Notifications the escalation ladders decided, by channel and kind (problem, repeat, resolved, flapping)",
            self.notifications.clone(),
        );
        r.register(
            "hyperwatch_recovery_steps",
            "Recovery step outcomes, by step (action name or kind) and result",
            self.steps.clone(),
        );
        r.register(
            "hyperwatch_policy_reload_success",
            "1 if the last policy (re)load applied, 0 if it did not check and the previous set still runs",
            self.reload_success.clone(),
        );
        r.register(
            "hyperwatch_policy_reload_errors",
            "Policy reloads refused because the files did not check",
            self.reload_errors.clone(),
        );
        r.register(
            "hyperwatch_policy_reloads",
            "Policy reloads attempted, by trigger (sighup, change)",
            self.reloads.clone(),
        );
        r.register(
            "hyperwatch_policies",
            "Recovery policies in force",
            self.policies.clone(),
        );
        r.register(
            "hyperwatch_engine_snapshot_bytes",
            "Size of the policy engine's last saved state",
            self.snapshot_bytes.clone(),
        );
        r.register(
            "hyperwatch_engine_commit_seconds",
            "Time to commit a batch of decisions (engine state, audit, outbox) to the store",
            self.persist.clone(),
        );
        r.register(
            "hyperwatch_engine_resyncs",
            "Times the policy runtime fell behind the cluster events and re-read the registry",
            self.resyncs.clone(),
        );
        r.register(
            "hyperwatch_engine_inputs_refused",
            "Inputs the policy engine refused, by reason",
            self.refused.clone(),
        );
        for s in STATES {
            self.incidents
                .get_or_create(&vec![("state", s.to_owned())])
                .set(0);
        }
    }

    /// Sets the open incidents by state.
    pub fn set_incidents(&self, by_state: &[(&'static str, i64)]) {
        for s in STATES {
            let n = by_state
                .iter()
                .find(|(k, _)| *k == s)
                .map_or(0, |(_, n)| *n);
            self.incidents
                .get_or_create(&vec![("state", s.to_owned())])
                .set(n);
        }
    }

    /// Counts a resolution.
    pub fn resolved(&self) {
        self.resolved.inc();
    }

    /// Counts a decided notification.
    pub fn notification(&self, channel: &str, kind: &'static str) {
        self.notifications
            .get_or_create(&vec![
                ("channel", channel.to_owned()),
                ("kind", kind.into()),
            ])
            .inc();
    }

    /// Counts a step outcome.
    pub fn step(&self, step: &str, result: &'static str) {
        self.steps
            .get_or_create(&vec![("step", step.to_owned()), ("result", result.into())])
            .inc();
    }

    /// Records a reload's outcome.
    pub fn reload(&self, trigger: &'static str, applied: bool, policies: usize) {
        self.reloads
            .get_or_create(&vec![("trigger", trigger.to_owned())])
            .inc();
        self.reload_success.set(i64::from(applied));
        if applied {
            self.policies.set(policies as i64);
        } else {
            self.reload_errors.inc();
        }
    }

    /// The policies loaded at start.
    pub fn reload_initial(&self, policies: usize) {
        self.reload_success.set(1);
        self.policies.set(policies as i64);
    }

    /// Records a commit.
    pub fn committed(&self, seconds: f64, snapshot_bytes: Option<usize>) {
        self.persist.observe(seconds);
        if let Some(n) = snapshot_bytes {
            self.snapshot_bytes.set(n as i64);
        }
    }

    /// Counts a resync after falling behind.
    pub fn resync(&self) {
        self.resyncs.inc();
    }

    /// Counts a refused input.
    pub fn refused(&self, reason: &'static str) {
        self.refused
            .get_or_create(&vec![("reason", reason.to_owned())])
            .inc();
    }
}
