//! The host registry: one record per host (identity, inventory, detector,
//! health, connection, latest telemetry, usage windows, recent events), the
//! ingest entry points that update it, and the snapshots the API and later
//! parts read.

use std::{
    collections::{HashMap, VecDeque},
    net::SocketAddr,
    sync::{Arc, Mutex, RwLock},
    time::{Duration, Instant, SystemTime},
};

use hyperwatch_proto::v1;
use tokio::sync::mpsc;
use tonic::Status;

use crate::{
    cluster_view::HostCapacity,
    config::DetectorConfig,
    detector::{DetectorParams, HeartbeatDetector, Verdict},
    events::{ClusterEvent, ClusterEvents},
    health::{Health, HostState},
    metrics::Metrics,
    snapshot::{EventView, HostSnapshot},
    usage_window::UsageWindows,
};

/// Recent events kept per host for the API; the full stream goes to
/// [`ClusterEvents`] subscribers.
pub const RECENT_EVENTS: usize = 256;

/// Where a host's messages go.
pub type Outbound = mpsc::Sender<Result<v1::WatchdogMessage, Status>>;

/// The live stream of a host.
#[derive(Clone, Debug)]
pub struct Connection {
    /// Unique per accepted stream.
    pub id: u64,
    pub peer: SocketAddr,
    pub since: SystemTime,
    pub outbound: Outbound,
    /// Told when a newer stream of the same host replaces this one.
    pub replaced: Arc<tokio::sync::Notify>,
}

/// Everything known about one host.
pub struct HostRecord {
    pub id: String,
    pub health: Health,
    pub state_since: SystemTime,
    pub detector: HeartbeatDetector,
    /// Cached (suspect, failed) deadlines of the detector.
    deadlines: Option<(Duration, Duration)>,
    pub hello: Arc<v1::Hello>,
    pub connection: Option<Connection>,
    pub last_heartbeat_seq: u64,
    pub last_heartbeat_at: Option<Instant>,
    pub heartbeats: u64,
    pub telemetry: Option<Arc<v1::Telemetry>>,
    /// The latest inventory: from the hello, then from each InventoryUpdate.
    pub inventory: Arc<v1::Inventory>,
    /// When that inventory arrived.
    pub inventory_at: SystemTime,
    /// Usage over a bounded window of telemetry summaries; shared with
    /// capacity snapshots, copied only when written while one holds it.
    pub usage: Arc<UsageWindows>,
    /// Set by an operator: the host is being drained and receives nothing.
    pub maintenance: bool,
    /// Highest sequence numbers received from `hello.agent_instance`.
    pub events_through: u64,
    pub telemetry_through: u64,
    pub recent_events: VecDeque<EventView>,
    pub events_missing: u64,
}

/// A host's shared record.
pub type HostEntry = Mutex<HostRecord>;

/// All hosts, and the channels that tell others about them.
pub struct Registry {
    hosts: RwLock<HashMap<String, Arc<HostEntry>>>,
    params: DetectorParams,
    recovery: Duration,
    /// Origin of the watchdog clock the detectors run on.
    epoch: Instant,
    /// The cluster's name, told to agents in the welcome.
    cluster: String,
    pub events: ClusterEvents,
    pub metrics: Arc<Metrics>,
}

impl Registry {
    pub fn new(
        cluster: &str,
        detector: &DetectorConfig,
        events: ClusterEvents,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            cluster: cluster.to_owned(),
            hosts: RwLock::default(),
            params: detector.params(),
            recovery: detector.recovery(),
            epoch: Instant::now(),
            events,
            metrics,
        }
    }

    /// The cluster's name.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// The detectors' clock: time since the registry was made.
    pub fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    /// Registers an accepted hello and its stream; returns the host's entry
    /// and the welcome to send. A stream the same host had before is
    /// replaced (its sender is dropped, which ends it). A new boot or agent
    /// instance starts a fresh detector and sequence numbering.
    pub fn attach(
        &self,
        hello: v1::Hello,
        connection: Connection,
    ) -> (Arc<HostEntry>, v1::WatchdogMessage) {
        let hello = Arc::new(hello);
        let interval = Duration::from_millis(hello.heartbeat_interval_ms.clamp(10, 60_000));
        let peer = connection.peer;
        let existing = self
            .hosts
            .read()
            .expect("registry lock")
            .get(&hello.host_id)
            .cloned();
        let (entry, new_host) = match existing {
            Some(entry) => (entry, false),
            None => {
                let record = HostRecord {
                    id: hello.host_id.clone(),
                    health: Health::default(),
                    state_since: SystemTime::now(),
                    detector: HeartbeatDetector::new(self.params, interval),
                    deadlines: None,
                    hello: hello.clone(),
                    connection: None,
                    last_heartbeat_seq: 0,
                    last_heartbeat_at: None,
                    heartbeats: 0,
                    telemetry: None,
                    inventory: Arc::default(),
                    inventory_at: SystemTime::now(),
                    usage: Arc::default(),
                    maintenance: false,
                    events_through: 0,
                    telemetry_through: 0,
                    recent_events: VecDeque::new(),
                    events_missing: 0,
                };
                let mut hosts = self.hosts.write().expect("registry lock");
                let entry = hosts
                    .entry(hello.host_id.clone())
                    .or_insert_with(|| Arc::new(Mutex::new(record)))
                    .clone();
                (entry, true)
            }
        };
        let resumed;
        let welcome = {
            let mut r = entry.lock().expect("host lock");
            if r.hello.boot_id != hello.boot_id {
                // A reboot restarts the agent's monotonic clock.
                r.detector = HeartbeatDetector::new(self.params, interval);
                r.deadlines = None;
            }
            if r.hello.agent_instance != hello.agent_instance {
                r.events_through = 0;
                r.telemetry_through = 0;
            }
            r.hello = hello.clone();
            resumed = r.health.resume().map(|to| {
                // Back from a planned stop: a new heartbeat schedule, and
                // the stop's gap is no silence to learn from.
                r.detector = HeartbeatDetector::new(self.params, interval);
                r.deadlines = None;
                r.state_since = SystemTime::now();
                tracing::info!(host = %hello.host_id, "agent back after its goodbye; host healthy");
                ClusterEvent::HostState {
                    host: hello.host_id.clone(),
                    from: Some(HostState::Stopped),
                    to,
                    at: r.state_since,
                    reason: "hello after the agent's goodbye".into(),
                }
            });
            // The hello carries the inventory as of this connection.
            let inventory = Arc::new(hello.inventory.clone().unwrap_or_default());
            set_inventory(&mut r, inventory);
            if let Some(old) = r.connection.replace(connection) {
                old.replaced.notify_one();
                tracing::info!(host = %hello.host_id, old_peer = %old.peer, new_peer = %peer, "stream replaced by a newer one");
            }
            v1::WatchdogMessage {
                body: Some(v1::watchdog_message::Body::Welcome(v1::Welcome {
                    protocol_version: hyperwatch_proto::PROTOCOL_VERSION,
                    cluster: self.cluster.clone(),
                    events_through: r.events_through,
                    telemetry_through: r.telemetry_through,
                })),
            }
        };
        if new_host {
            self.metrics.state_change(HostState::Healthy);
            self.events.publish(ClusterEvent::HostState {
                host: hello.host_id.clone(),
                from: None,
                to: HostState::Healthy,
                at: SystemTime::now(),
                reason: "first hello".into(),
            });
        }
        if let Some(change) = resumed {
            self.metrics.state_change(HostState::Healthy);
            self.events.publish(change);
        }
        self.events.publish(ClusterEvent::Connected {
            host: hello.host_id.clone(),
            peer,
            hello,
        });
        self.publish_inventory(&entry);
        (entry, welcome)
    }

    /// The stream `connection_id` of `entry` ended.
    pub fn detach(&self, entry: &HostEntry, connection_id: u64, reason: String) {
        let mut r = entry.lock().expect("host lock");
        if r.connection.as_ref().is_some_and(|c| c.id == connection_id) {
            let c = r.connection.take().expect("checked");
            let host = r.id.clone();
            drop(r);
            self.events.publish(ClusterEvent::Disconnected {
                host,
                peer: c.peer,
                reason,
            });
        }
    }

    /// The agent on stream `connection_id` said goodbye: it stops on
    /// purpose. The host is stopped, which no verdict changes, until the
    /// agent's next hello. A goodbye on a stream already replaced is
    /// ignored: the newer stream's agent is running.
    pub fn goodbye(&self, entry: &HostEntry, connection_id: u64, reason: &str) {
        let mut r = entry.lock().expect("host lock");
        if r.connection.as_ref().is_none_or(|c| c.id != connection_id) {
            tracing::info!(host = %r.id, %reason, "goodbye on a replaced stream; ignored");
            return;
        }
        tracing::info!(host = %r.id, %reason, "agent said goodbye: stopping on purpose, not a failure");
        // No deadlines: the detector stays out until the next hello.
        r.deadlines = None;
        let from = r.health.state;
        let Some(to) = r.health.stop() else {
            return;
        };
        r.state_since = SystemTime::now();
        self.metrics.state_change(to);
        let change = ClusterEvent::HostState {
            host: r.id.clone(),
            from: Some(from),
            to,
            at: r.state_since,
            reason: format!("agent said goodbye: {reason}"),
        };
        drop(r);
        self.events.publish(change);
    }

    /// A heartbeat arrived.
    pub fn heartbeat(&self, entry: &HostEntry, hb: &v1::Heartbeat) {
        let now = self.now();
        let arrived = Instant::now();
        let mut r = entry.lock().expect("host lock");
        if let Some(previous) = r.last_heartbeat_at {
            self.metrics
                .heartbeat_interarrival
                .observe(arrived.duration_since(previous).as_secs_f64());
        }
        r.last_heartbeat_at = Some(arrived);
        r.last_heartbeat_seq = hb.seq;
        r.heartbeats += 1;
        r.detector.heartbeat(now, hb.sent_monotonic_nanos);
        r.deadlines = r.detector.deadlines();
        let change = self.transition(&mut r, now, Verdict::Alive, || "heartbeat resumed".into());
        drop(r);
        self.publish_change(change);
        let lag = unix_nanos(SystemTime::now()) - hb.sent_unix_nanos;
        self.metrics
            .heartbeat_lag
            .observe((lag.max(0) as f64) / 1e9);
    }

    /// A new inventory arrived. One stream delivers them in order, and a
    /// reconnect's hello carries the current one, so an older revision
    /// here can only be a confused agent: it is logged and ignored.
    pub fn inventory_update(&self, entry: &HostEntry, update: v1::InventoryUpdate) {
        let Some(inventory) = update.inventory else {
            return;
        };
        {
            let mut r = entry.lock().expect("host lock");
            if inventory.revision < r.inventory.revision {
                tracing::warn!(host = %r.id, revision = inventory.revision, held = r.inventory.revision, "an older inventory revision; ignored");
                return;
            }
            set_inventory(&mut r, Arc::new(inventory));
        }
        self.publish_inventory(entry);
    }

    fn publish_inventory(&self, entry: &HostEntry) {
        let (host, inventory) = {
            let r = entry.lock().expect("host lock");
            (r.id.clone(), r.inventory.clone())
        };
        self.events
            .publish(ClusterEvent::Inventory { host, inventory });
    }

    /// Marks `host` in maintenance (drained by the planner, never a
    /// destination) or back in service; false when the host is unknown.
    pub fn set_maintenance(&self, host: &str, on: bool) -> bool {
        let Some(entry) = self.entry(host) else {
            return false;
        };
        entry.lock().expect("host lock").maintenance = on;
        tracing::info!(%host, maintenance = on, "maintenance flag set");
        true
    }

    /// A telemetry summary arrived; returns the ack to send (repeats are
    /// acked too, so the agent frees them).
    pub fn telemetry(&self, entry: &HostEntry, t: v1::Telemetry) -> v1::WatchdogMessage {
        let mut r = entry.lock().expect("host lock");
        if t.seq <= r.telemetry_through {
            return ack(&r);
        }
        r.telemetry_through = t.seq;
        let cores = r.inventory.cpu_cores;
        Arc::make_mut(&mut r.usage).record(&t, cores);
        let t = Arc::new(t);
        r.telemetry = Some(t.clone());
        let (host, ack) = (r.id.clone(), ack(&r));
        drop(r);
        self.events
            .publish(ClusterEvent::Telemetry { host, telemetry: t });
        ack
    }

    /// An agent event arrived; returns the ack to send. Repeats (same
    /// sequence number, after a reconnect) are counted and dropped; a jump
    /// in sequence numbers is counted and logged (the agent's buffer
    /// overflowed).
    pub fn event(&self, entry: &HostEntry, e: v1::Event) -> v1::WatchdogMessage {
        let mut r = entry.lock().expect("host lock");
        if e.seq <= r.events_through {
            self.metrics.event("duplicate", 1);
            return ack(&r);
        }
        let missing = e.seq - r.events_through - 1;
        if missing > 0 && r.events_through > 0 {
            self.metrics.event("gap", missing);
            r.events_missing += missing;
            tracing::warn!(host = %r.id, missing, after = r.events_through, "agent events missing (dropped from the agent's full buffer)");
        }
        r.events_through = e.seq;
        self.metrics.event("new", 1);
        if r.recent_events.len() >= RECENT_EVENTS {
            r.recent_events.pop_front();
        }
        r.recent_events.push_back(EventView::from(&e));
        let (host, ack) = (r.id.clone(), ack(&r));
        drop(r);
        self.events.publish(ClusterEvent::AgentEvent {
            host,
            event: Arc::new(e),
        });
        ack
    }

    /// Evaluates every host's verdict at the current time and applies the
    /// transitions; the detector loop calls it every check interval.
    pub fn check(&self) {
        self.check_at(self.now());
    }

    /// [`Self::check`] at `now` on the detectors' clock.
    fn check_at(&self, now: Duration) {
        let entries: Vec<Arc<HostEntry>> = self
            .hosts
            .read()
            .expect("registry lock")
            .values()
            .cloned()
            .collect();
        for entry in entries {
            let mut r = entry.lock().expect("host lock");
            let Some((suspect, failed)) = r.deadlines else {
                continue;
            };
            let verdict = if now >= failed {
                Verdict::Failed
            } else if now >= suspect {
                Verdict::Suspect
            } else {
                Verdict::Alive
            };
            let change = self.transition(&mut r, now, verdict, || {
                "calm through the recovery period".into()
            });
            drop(r);
            self.publish_change(change);
        }
    }

    fn transition(
        &self,
        r: &mut HostRecord,
        now: Duration,
        verdict: Verdict,
        reason: impl FnOnce() -> String,
    ) -> Option<ClusterEvent> {
        let from = r.health.state;
        let to = r.health.apply(verdict, now, self.recovery)?;
        r.state_since = SystemTime::now();
        let reason = match verdict {
            Verdict::Alive => reason(),
            _ => format!(
                "silent for {:.2} s, phi {:.1}",
                r.detector.silence(now).as_secs_f64(),
                r.detector.phi(now)
            ),
        };
        match to {
            HostState::Failed => tracing::warn!(host = %r.id, %reason, "host failed"),
            _ => {
                tracing::info!(host = %r.id, from = from.as_str(), to = to.as_str(), %reason, "host state changed")
            }
        }
        self.metrics.state_change(to);
        Some(ClusterEvent::HostState {
            host: r.id.clone(),
            from: Some(from),
            to,
            at: r.state_since,
            reason,
        })
    }

    fn publish_change(&self, change: Option<ClusterEvent>) {
        if let Some(c) = change {
            self.events.publish(c);
        }
    }

    /// The entry of `host`, if known.
    pub fn entry(&self, host: &str) -> Option<Arc<HostEntry>> {
        self.hosts.read().expect("registry lock").get(host).cloned()
    }

    /// Hosts by state, every state listed.
    pub fn count_by_state(&self) -> Vec<(HostState, usize)> {
        let mut counts: Vec<(HostState, usize)> = HostState::ALL.iter().map(|s| (*s, 0)).collect();
        for entry in self.hosts.read().expect("registry lock").values() {
            let state = entry.lock().expect("host lock").health.state;
            if let Some(c) = counts.iter_mut().find(|(s, _)| *s == state) {
                c.1 += 1;
            }
        }
        counts
    }

    /// Every host, sorted by id, without its recent events.
    pub fn snapshot(&self) -> Vec<HostSnapshot> {
        let now = self.now();
        let mut all: Vec<HostSnapshot> = self
            .hosts
            .read()
            .expect("registry lock")
            .values()
            .map(|e| HostSnapshot::of(&e.lock().expect("host lock"), now, false))
            .collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    /// One host with its recent events.
    pub fn host(&self, host: &str) -> Option<HostSnapshot> {
        let now = self.now();
        self.entry(host)
            .map(|e| HostSnapshot::of(&e.lock().expect("host lock"), now, true))
    }

    /// Every host's inventory, state and usage windows, sorted by id: the
    /// input of the capacity views (see [`crate::cluster_view`]). Cheap:
    /// the windows are shared, not copied.
    pub fn capacity(&self) -> Vec<HostCapacity> {
        let mut all: Vec<HostCapacity> = self
            .hosts
            .read()
            .expect("registry lock")
            .values()
            .map(|e| {
                let r = e.lock().expect("host lock");
                HostCapacity {
                    id: r.id.clone(),
                    state: r.health.state,
                    maintenance: r.maintenance,
                    connected: r.connection.is_some(),
                    inventory: r.inventory.clone(),
                    usage: r.usage.clone(),
                }
            })
            .collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    /// The live stream of `host`, if connected.
    pub fn connection(&self, host: &str) -> Option<Connection> {
        self.entry(host)?
            .lock()
            .expect("host lock")
            .connection
            .clone()
    }
}

/// Takes `inventory` as the host's and forgets the usage windows of what
/// it no longer lists.
fn set_inventory(r: &mut HostRecord, inventory: Arc<v1::Inventory>) {
    Arc::make_mut(&mut r.usage).retain(&inventory);
    r.inventory = inventory;
    r.inventory_at = SystemTime::now();
}

fn ack(r: &HostRecord) -> v1::WatchdogMessage {
    v1::WatchdogMessage {
        body: Some(v1::watchdog_message::Body::Ack(v1::Ack {
            events_through: r.events_through,
            telemetry_through: r.telemetry_through,
        })),
    }
}

/// Nanoseconds since the Unix epoch (0 before it).
pub fn unix_nanos(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// CLOCK_MONOTONIC in nanoseconds (the clock agents stamp heartbeats with).
pub fn monotonic_nanos() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
#[path = "registry_tests.rs"]
mod tests;
