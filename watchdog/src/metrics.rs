//! The watchdog's own metrics (prometheus-client): hosts by state,
//! heartbeat interarrival and lag, ingest rates, connections, rejections,
//! commands. Served at /metrics.

use std::sync::{Mutex, atomic::AtomicI64};

use prometheus_client::{
    encoding::text::encode,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry as PromRegistry,
};

use crate::health::HostState;

type Labels = Vec<(&'static str, &'static str)>;

/// Heartbeat timing buckets, seconds: fine around the 1 s period and the
/// 100 ms lag budget, up to the hard timeout and beyond.
const TIMING_BUCKETS: [f64; 16] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.9, 1.0, 1.1, 1.5, 2.0, 3.0, 5.0,
];

/// Every counter and histogram; hosts by state are counted at scrape time.
pub struct Metrics {
    /// Behind a lock so that parts started after the registry (the policy
    /// runtime, the outbox) can add their series.
    registry: Mutex<PromRegistry>,
    hosts: Family<Labels, Gauge>,
    pub heartbeat_interarrival: Histogram,
    pub heartbeat_lag: Histogram,
    messages: Family<Labels, Counter>,
    pub connections: Gauge<i64, AtomicI64>,
    pub connections_accepted: Counter,
    rejected: Family<Labels, Counter>,
    state_changes: Family<Labels, Counter>,
    events: Family<Labels, Counter>,
    commands: Family<Labels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = PromRegistry::default();
        let hosts = Family::<Labels, Gauge>::default();
        registry.register(
            "hyperwatch_hosts",
            "Hosts known to the watchdog, by health state",
            hosts.clone(),
        );
        let heartbeat_interarrival = Histogram::new(TIMING_BUCKETS);
        registry.register(
            "hyperwatch_heartbeat_interarrival_seconds",
            "Time between consecutive heartbeats of a host, as the watchdog received them",
            heartbeat_interarrival.clone(),
        );
        let heartbeat_lag = Histogram::new(TIMING_BUCKETS);
        registry.register(
            "hyperwatch_heartbeat_lag_seconds",
            "From an agent sending a heartbeat (its wall clock) to the watchdog having processed it; needs synchronised clocks",
            heartbeat_lag.clone(),
        );
        let messages = Family::<Labels, Counter>::default();
        registry.register(
            "hyperwatch_stream_messages",
            "Messages received from agents, by kind",
            messages.clone(),
        );
        let connections = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "hyperwatch_stream_connections",
            "Agent connections open now",
            connections.clone(),
        );
        let connections_accepted = Counter::default();
        registry.register(
            "hyperwatch_stream_connections_accepted",
            "Agent streams accepted (after TLS and hello)",
            connections_accepted.clone(),
        );
        let rejected = Family::<Labels, Counter>::default();
        registry.register(
            "hyperwatch_stream_rejected",
            "Connections and streams refused, by reason",
            rejected.clone(),
        );
        let state_changes = Family::<Labels, Counter>::default();
        registry.register(
            "hyperwatch_host_state_changes",
            "Host health state changes, by new state",
            state_changes.clone(),
        );
        let events = Family::<Labels, Counter>::default();
        registry.register(
            "hyperwatch_stream_events",
            "Agent events by outcome: new, duplicate (dropped), gap (sequence numbers missing)",
            events.clone(),
        );
        let commands = Family::<Labels, Counter>::default();
        registry.register(
            "hyperwatch_commands",
            "Commands sent to agents, by outcome",
            commands.clone(),
        );
        Self {
            registry: Mutex::new(registry),
            hosts,
            heartbeat_interarrival,
            heartbeat_lag,
            messages,
            connections,
            connections_accepted,
            rejected,
            state_changes,
            events,
            commands,
        }
    }
}

impl Metrics {
    /// Adds families another part computes at scrape time.
    pub fn register_collector(
        &mut self,
        collector: Box<dyn prometheus_client::collector::Collector>,
    ) {
        self.registry
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .register_collector(collector);
    }

    /// Counts a received message of `kind`.
    pub fn message(&self, kind: &'static str) {
        self.messages.get_or_create(&vec![("kind", kind)]).inc();
    }

    /// Counts a refusal.
    pub fn rejected(&self, reason: &'static str) {
        self.rejected.get_or_create(&vec![("reason", reason)]).inc();
    }

    /// Counts a state change.
    pub fn state_change(&self, to: HostState) {
        self.state_changes
            .get_or_create(&vec![("state", to.as_str())])
            .inc();
    }

    /// Counts an event outcome ("new", "duplicate", "gap").
    pub fn event(&self, outcome: &'static str, n: u64) {
        self.events
            .get_or_create(&vec![("outcome", outcome)])
            .inc_by(n);
    }

    /// Counts a command outcome.
    pub fn command(&self, outcome: &'static str) {
        self.commands
            .get_or_create(&vec![("outcome", outcome)])
            .inc();
    }

    /// The OpenMetrics text, with hosts by state as counted now.
    pub fn encode(&self, hosts_by_state: &[(HostState, usize)]) -> String {
        for (state, n) in hosts_by_state {
            self.hosts
                .get_or_create(&vec![("state", state.as_str())])
                .set(*n as i64);
        }
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        encode(&mut out, &registry).expect("writing to a String cannot fail");
        out
    }

    /// Adds another part's series (served at /metrics from now on).
    pub fn register_part(&self, f: impl FnOnce(&mut PromRegistry)) {
        f(&mut self.registry.lock().unwrap_or_else(|p| p.into_inner()));
    }
}
