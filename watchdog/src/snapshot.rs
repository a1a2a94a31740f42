//! Read-only views of hosts for the HTTP API and other readers: plain
//! serialisable structs made from the registry's records and the protocol's
//! messages.

use std::{
    collections::BTreeMap,
    time::{Duration, SystemTime},
};

use hyperwatch_proto::v1;
use serde::Serialize;

use crate::{health::HostState, registry::HostRecord, usage_window::UsageView};

/// One host as the API shows it.
#[derive(Clone, Debug, Serialize)]
pub struct HostSnapshot {
    pub id: String,
    pub state: HostState,
    /// Unix seconds of the last state change.
    pub state_since: f64,
    pub connected: bool,
    pub peer: Option<String>,
    /// Unix seconds since when the current stream is up.
    pub connected_since: Option<f64>,
    pub boot_id: String,
    pub agent_version: String,
    pub agent_instance: u64,
    pub capabilities: Vec<String>,
    /// The agent's `[labels]` (cluster, rack, tenant, ...).
    pub labels: BTreeMap<String, String>,
    /// The latest inventory (hello or InventoryUpdate).
    pub inventory: InventoryView,
    /// Unix seconds when it arrived.
    pub inventory_since: f64,
    /// Set by an operator: drained by the planner, receives nothing.
    pub maintenance: bool,
    pub heartbeats: u64,
    pub last_heartbeat_seq: u64,
    /// Seconds of silence as the detector counts it.
    pub silence_seconds: f64,
    pub phi: f64,
    pub telemetry: Option<TelemetryView>,
    pub events_through: u64,
    pub telemetry_through: u64,
    /// Event sequence numbers that never arrived (agent buffer overflow).
    pub events_missing: u64,
    /// Records the agent dropped from its full buffer, as of its last hello.
    pub agent_dropped_events: u64,
    pub agent_dropped_telemetry: u64,
    /// The most recent events, oldest first (only for a single host).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recent_events: Option<Vec<EventView>>,
    /// The usage windows in figures (only for a single host).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageView>,
}

impl HostSnapshot {
    /// The view of `r` at detector time `now`.
    pub fn of(r: &HostRecord, now: Duration, with_events: bool) -> Self {
        Self {
            id: r.id.clone(),
            state: r.health.state,
            state_since: unix_seconds(r.state_since),
            connected: r.connection.is_some(),
            peer: r.connection.as_ref().map(|c| c.peer.to_string()),
            connected_since: r.connection.as_ref().map(|c| unix_seconds(c.since)),
            boot_id: r.hello.boot_id.clone(),
            agent_version: r.hello.agent_version.clone(),
            agent_instance: r.hello.agent_instance,
            capabilities: r.hello.capabilities.clone(),
            labels: r.hello.labels.clone().into_iter().collect(),
            inventory: InventoryView::from(r.inventory.as_ref()),
            inventory_since: unix_seconds(r.inventory_at),
            maintenance: r.maintenance,
            heartbeats: r.heartbeats,
            last_heartbeat_seq: r.last_heartbeat_seq,
            silence_seconds: r.detector.silence(now).as_secs_f64(),
            phi: r.detector.phi(now),
            telemetry: r.telemetry.as_deref().map(TelemetryView::from),
            events_through: r.events_through,
            telemetry_through: r.telemetry_through,
            events_missing: r.events_missing,
            agent_dropped_events: r.hello.dropped_events,
            agent_dropped_telemetry: r.hello.dropped_telemetry,
            recent_events: with_events.then(|| r.recent_events.iter().cloned().collect()),
            usage: with_events.then(|| r.usage.view()),
        }
    }
}

fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The latest inventory.
#[derive(Clone, Debug, Default, Serialize)]
pub struct InventoryView {
    /// Raised by the agent at every change of its VMs or storage layout.
    pub revision: u64,
    /// "hypervisor", "storage"; empty from agents that predate roles.
    pub roles: Vec<String>,
    pub cpu_cores: u32,
    pub memory_bytes: u64,
    pub kernel_release: String,
    pub vms: Vec<VmView>,
    pub storage: Vec<StorageView>,
    /// The agent's watched services, by name.
    pub services: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct VmView {
    pub name: String,
    pub uuid: String,
    pub vcpus: u32,
    pub memory_bytes: u64,
    /// running, paused, migrating (leaving), incoming (arriving), ...
    pub state: String,
    pub tenant: String,
    pub labels: BTreeMap<String, String>,
    pub priority: i32,
    /// Why it cannot move; empty when it can.
    pub unmovable_reason: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct StorageView {
    pub name: String,
    pub kind: String,
    pub group: String,
    pub shared_group: bool,
    pub capacity_bytes: u64,
    pub used_bytes: u64,
    pub luns: Vec<LunView>,
}

#[derive(Clone, Debug, Serialize)]
pub struct LunView {
    pub id: String,
    pub size_bytes: u64,
    pub used_bytes: u64,
    pub consumer: String,
    pub pinned: bool,
    /// active (also for an empty state), leaving or incoming.
    pub state: String,
}

impl From<&v1::Inventory> for InventoryView {
    fn from(i: &v1::Inventory) -> Self {
        Self {
            revision: i.revision,
            roles: i.roles.clone(),
            cpu_cores: i.cpu_cores,
            memory_bytes: i.memory_bytes,
            kernel_release: i.kernel_release.clone(),
            services: i.services.clone(),
            vms: i
                .vms
                .iter()
                .map(|v| VmView {
                    name: v.name.clone(),
                    uuid: v.uuid.clone(),
                    vcpus: v.vcpus,
                    memory_bytes: v.memory_bytes,
                    state: v.state.clone(),
                    tenant: v.tenant.clone(),
                    labels: v
                        .labels
                        .iter()
                        .map(|(k, x)| (k.clone(), x.clone()))
                        .collect(),
                    priority: v.priority,
                    unmovable_reason: v.unmovable_reason.clone(),
                })
                .collect(),
            storage: i
                .storage
                .iter()
                .map(|s| StorageView {
                    name: s.name.clone(),
                    kind: s.kind.clone(),
                    group: s.group.clone(),
                    shared_group: s.shared_group,
                    capacity_bytes: s.capacity_bytes,
                    used_bytes: s.used_bytes,
                    luns: s
                        .luns
                        .iter()
                        .map(|l| LunView {
                            id: l.id.clone(),
                            size_bytes: l.size_bytes,
                            used_bytes: l.used_bytes,
                            consumer: l.consumer.clone(),
                            pinned: l.pinned,
                            state: if l.state.is_empty() {
                                "active".into()
                            } else {
                                l.state.clone()
                            },
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

/// The latest telemetry summary.
#[derive(Clone, Debug, Serialize)]
pub struct TelemetryView {
    pub seq: u64,
    pub sampled_unix_nanos: i64,
    pub cpu_utilisation: Option<f64>,
    pub memory_used_bytes: Option<u64>,
    pub memory_total_bytes: Option<u64>,
    pub load1: Option<f64>,
    pub load5: Option<f64>,
    pub load15: Option<f64>,
    pub samples: usize,
}

impl From<&v1::Telemetry> for TelemetryView {
    fn from(t: &v1::Telemetry) -> Self {
        Self {
            seq: t.seq,
            sampled_unix_nanos: t.sampled_unix_nanos,
            cpu_utilisation: t.cpu_utilisation,
            memory_used_bytes: t.memory_used_bytes,
            memory_total_bytes: t.memory_total_bytes,
            load1: t.load1,
            load5: t.load5,
            load15: t.load15,
            samples: t.samples.len(),
        }
    }
}

/// One agent event, flattened: its kind and its fields as strings.
#[derive(Clone, Debug, Serialize)]
pub struct EventView {
    pub seq: u64,
    pub unix_nanos: i64,
    pub kind: &'static str,
    pub fields: BTreeMap<String, String>,
}

impl From<&v1::Event> for EventView {
    fn from(e: &v1::Event) -> Self {
        use v1::event::Kind;
        let mut fields = BTreeMap::new();
        let mut put = |k: &str, v: String| {
            fields.insert(k.to_owned(), v);
        };
        let kind = match &e.kind {
            Some(Kind::ProcessExit(p)) => {
                put("pid", p.pid.to_string());
                put("comm", p.comm.clone());
                match p.status {
                    Some(v1::process_exit::Status::ExitCode(c)) => put("exit_code", c.to_string()),
                    Some(v1::process_exit::Status::Signal(s)) => put("signal", s.to_string()),
                    None => {}
                }
                "process_exit"
            }
            Some(Kind::OomKill(o)) => {
                put("pid", o.pid.to_string());
                put("comm", o.comm.clone());
                put("rss_bytes", o.rss_bytes.to_string());
                put("cgroup", o.cgroup.clone());
                "oom_kill"
            }
            Some(Kind::ServiceStateChange(s)) => {
                put("service", s.service.clone());
                put("old_state", s.old_state.clone());
                put("new_state", s.new_state.clone());
                put("changed_unix_nanos", s.changed_unix_nanos.to_string());
                put("detail", s.detail.clone());
                "service_state_change"
            }
            Some(Kind::StuckCpu(s)) => {
                put("cpu", s.cpu.to_string());
                put("stuck_for_ms", s.stuck_for_ms.to_string());
                put("pid", s.pid.to_string());
                put("comm", s.comm.clone());
                "stuck_cpu"
            }
            Some(Kind::EbpfUnavailable(u)) => {
                put("reason", u.reason.clone());
                "ebpf_unavailable"
            }
            Some(Kind::Generic(g)) => {
                put("name", g.name.clone());
                for (k, v) in &g.fields {
                    put(k, v.clone());
                }
                "generic"
            }
            None => "unknown",
        };
        Self {
            seq: e.seq,
            unix_nanos: e.unix_nanos,
            kind,
            fields,
        }
    }
}
