//! The status page at `/` and the one endpoint it reads, `GET
//! /api/v1/status`: the registry's hosts combined with what other parts of
//! the watchdog provide (open incidents, recent plans, storage devices).
//!
//! Those parts register a provider at start-up through [`StatusSources`];
//! the page says plainly which ones are missing instead of showing made-up
//! data. Storage falls back to the devices the agents reported in their
//! hello, and says so.

pub mod metrics;

use std::{
    collections::BTreeMap,
    panic::{AssertUnwindSafe, catch_unwind},
    sync::{Arc, RwLock},
    time::SystemTime,
};

use axum::{
    Json,
    extract::State,
    http::header,
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};

use crate::{api::ApiState, health::HostState, registry::Registry, snapshot::HostSnapshot};

/// The page: inline CSS and vanilla JS, no build step.
pub const STATUS_PAGE: &str = include_str!("status/page.html");

/// What the page shows when the policy runtime registered no provider.
pub const NO_INCIDENTS: &str = "policy runtime not running: open incidents are not known";
/// ...when the planner registered none.
pub const NO_PLANS: &str = "planner not running: plans and migrations are not known";
/// Where storage comes from when the rebalancer registered no provider.
pub const STORAGE_FROM_INVENTORY: &str =
    "LUN rebalancer not running: devices as each agent reported them when it connected";

/// An open incident, as the policy runtime reports it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IncidentSummary {
    /// The incident's id, unique within this watchdog.
    pub id: String,
    /// The policy that opened it.
    pub policy: String,
    /// What it concerns: a host id, `host/service`, a storage device.
    pub target: String,
    /// Its state in the runtime's words (`pending`, `firing`, ...).
    pub state: String,
    /// The recovery step under way, in words (`2/3 restart-service nginx`);
    /// `None` when no step runs (waiting, or all steps done).
    pub step: Option<String>,
    /// Escalation ladder level reached; 0 before any escalation.
    pub level: u32,
    /// Unix seconds since when it has been open.
    pub since: f64,
}

/// A recent plan (VM placement or LUN moves), as the planner reports it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanSummary {
    /// The plan's id.
    pub id: String,
    /// `rebalance`, `failover`, `move-luns` (the placement metrics' `mode`).
    pub mode: String,
    /// Moves in the plan.
    pub moves: u32,
    /// Moves completed and verified.
    pub done: u32,
    /// Moves that failed.
    pub failed: u32,
    /// Unix seconds when it started.
    pub started: f64,
    /// Why it was made (`hv-3 failed`, `hv-1 CPU 0.93 over 0.85`).
    pub reason: String,
    /// Recorded only: its moves would have run and none did.
    #[serde(default)]
    pub dry_run: bool,
    /// Its migrations or LUN moves, each with its state.
    pub migrations: Vec<MigrationSummary>,
}

/// One move of a plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MigrationSummary {
    /// The VM or LUN moved.
    pub item: String,
    /// Source host or device.
    pub from: String,
    /// Destination host or device.
    pub to: String,
    /// `pending`, `running`, `done`, `failed`, `timed-out`, `skipped`, or
    /// `would-run` in a dry run.
    pub state: String,
}

/// A storage device and its LUNs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StorageSummary {
    /// The host serving it.
    pub host: String,
    /// The device's name on that host.
    pub device: String,
    /// Capacity, bytes.
    pub capacity: u64,
    /// Used, bytes.
    pub used: u64,
    /// The LUNs on it.
    pub luns: Vec<LunSummary>,
}

/// A LUN on a storage device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LunSummary {
    /// The LUN's id (`vg/lv`, an image file, a partition).
    pub id: String,
    /// Size, bytes.
    pub size: u64,
    /// Who uses it (a VM), empty when unknown.
    pub consumer: String,
}

/// A provider: called on every status request and every scrape of
/// /metrics, so it must return quickly without blocking (read a snapshot
/// the part keeps, such as a `watch` channel's latest value).
pub type Provider<T> = Arc<dyn Fn() -> Vec<T> + Send + Sync>;

/// The providers other parts register; each may be registered at any time
/// (a later registration replaces the earlier one).
#[derive(Default)]
pub struct StatusSources {
    incidents: RwLock<Option<Provider<IncidentSummary>>>,
    plans: RwLock<Option<Provider<PlanSummary>>>,
    storage: RwLock<Option<Provider<StorageSummary>>>,
}

impl std::fmt::Debug for StatusSources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let has = |p: bool| if p { "registered" } else { "absent" };
        f.debug_struct("StatusSources")
            .field("incidents", &has(read(&self.incidents).is_some()))
            .field("plans", &has(read(&self.plans).is_some()))
            .field("storage", &has(read(&self.storage).is_some()))
            .finish()
    }
}

impl StatusSources {
    /// The policy runtime's open incidents.
    pub fn provide_incidents(&self, f: impl Fn() -> Vec<IncidentSummary> + Send + Sync + 'static) {
        *self.incidents.write().expect("status sources lock") = Some(Arc::new(f));
    }

    /// The planner's recent plans, newest first.
    pub fn provide_plans(&self, f: impl Fn() -> Vec<PlanSummary> + Send + Sync + 'static) {
        *self.plans.write().expect("status sources lock") = Some(Arc::new(f));
    }

    /// The rebalancer's view of storage devices and their LUNs.
    pub fn provide_storage(&self, f: impl Fn() -> Vec<StorageSummary> + Send + Sync + 'static) {
        *self.storage.write().expect("status sources lock") = Some(Arc::new(f));
    }

    /// Open incidents, or None without a provider.
    pub fn incidents(&self) -> Option<Result<Vec<IncidentSummary>, String>> {
        call(read(&self.incidents))
    }

    /// Recent plans, or None without a provider.
    pub fn plans(&self) -> Option<Result<Vec<PlanSummary>, String>> {
        call(read(&self.plans))
    }

    /// Storage devices, or None without a provider.
    pub fn storage(&self) -> Option<Result<Vec<StorageSummary>, String>> {
        call(read(&self.storage))
    }
}

fn read<T: ?Sized>(slot: &RwLock<Option<Arc<T>>>) -> Option<Arc<T>> {
    slot.read().expect("status sources lock").clone()
}

/// Calls a provider; a panicking one becomes an error the page shows, not
/// a failed request.
fn call<T>(provider: Option<Provider<T>>) -> Option<Result<Vec<T>, String>> {
    let provider = provider?;
    Some(
        catch_unwind(AssertUnwindSafe(|| provider())).map_err(|panic| {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".into());
            tracing::error!(%message, "a status provider panicked");
            format!("provider failed: {message}")
        }),
    )
}

/// One part of the status: whether its source runs, and its items.
#[derive(Clone, Debug, Serialize)]
pub struct Section<T> {
    /// A source answered (the items are real, possibly none).
    pub available: bool,
    /// Where the items come from (`provider`, `agent inventory`, `none`).
    pub source: &'static str,
    /// What the page should say about the source, if anything.
    pub note: Option<String>,
    pub items: Vec<T>,
}

impl<T> Section<T> {
    fn from_provider(answer: Option<Result<Vec<T>, String>>, absent: &str) -> Self {
        match answer {
            Some(Ok(items)) => Self {
                available: true,
                source: "provider",
                note: None,
                items,
            },
            Some(Err(e)) => Self {
                available: false,
                source: "provider",
                note: Some(e),
                items: Vec::new(),
            },
            None => Self {
                available: false,
                source: "none",
                note: Some(absent.to_owned()),
                items: Vec::new(),
            },
        }
    }
}

/// A host as a tile of the grid.
#[derive(Clone, Debug, Serialize)]
pub struct HostStatus {
    pub id: String,
    pub state: HostState,
    /// Unix seconds of the last state change.
    pub state_since: f64,
    pub connected: bool,
    /// Busy share of all CPUs, 0..1, from the latest telemetry.
    pub cpu_utilisation: Option<f64>,
    /// Used share of memory, 0..1, from the latest telemetry.
    pub memory_utilisation: Option<f64>,
    pub load1: Option<f64>,
    pub cpu_cores: u32,
    /// VMs in the agent's inventory.
    pub vms: usize,
    /// Seconds since the last heartbeat, as the detector counts them.
    pub silence_seconds: f64,
    pub phi: f64,
    pub agent_version: String,
}

impl From<&HostSnapshot> for HostStatus {
    fn from(h: &HostSnapshot) -> Self {
        let t = h.telemetry.as_ref();
        let memory = t.and_then(|t| match (t.memory_used_bytes, t.memory_total_bytes) {
            (Some(used), Some(total)) if total > 0 => Some(used as f64 / total as f64),
            _ => None,
        });
        Self {
            id: h.id.clone(),
            state: h.state,
            state_since: h.state_since,
            connected: h.connected,
            cpu_utilisation: t.and_then(|t| t.cpu_utilisation),
            memory_utilisation: memory,
            load1: t.and_then(|t| t.load1),
            cpu_cores: h.inventory.cpu_cores,
            vms: h.inventory.vms.len(),
            silence_seconds: h.silence_seconds,
            phi: h.phi,
            agent_version: h.agent_version.clone(),
        }
    }
}

/// The whole status document.
#[derive(Clone, Debug, Serialize)]
pub struct Status {
    pub cluster: String,
    /// Unix seconds when this was put together.
    pub generated: f64,
    /// Hosts by id.
    pub hosts: Vec<HostStatus>,
    /// Hosts by state, every state listed.
    pub counts: BTreeMap<&'static str, usize>,
    pub incidents: Section<IncidentSummary>,
    pub plans: Section<PlanSummary>,
    pub storage: Section<StorageSummary>,
}

/// Puts the status together from the registry and the sources.
pub fn status(registry: &Registry, sources: &StatusSources) -> Status {
    let snapshot = registry.snapshot();
    let mut counts: BTreeMap<&'static str, usize> =
        HostState::ALL.iter().map(|s| (s.as_str(), 0)).collect();
    for h in &snapshot {
        *counts.entry(h.state.as_str()).or_default() += 1;
    }
    let storage = match sources.storage() {
        None => Section {
            available: true,
            source: "agent inventory",
            note: Some(STORAGE_FROM_INVENTORY.to_owned()),
            items: storage_from_inventory(&snapshot),
        },
        answer => Section::from_provider(answer, ""),
    };
    Status {
        cluster: registry.cluster().to_owned(),
        generated: SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64()),
        hosts: snapshot.iter().map(HostStatus::from).collect(),
        counts,
        incidents: Section::from_provider(sources.incidents(), NO_INCIDENTS),
        plans: Section::from_provider(sources.plans(), NO_PLANS),
        storage,
    }
}

/// Storage devices from the hosts' hello inventories.
fn storage_from_inventory(hosts: &[HostSnapshot]) -> Vec<StorageSummary> {
    hosts
        .iter()
        .flat_map(|h| {
            h.inventory.storage.iter().map(|s| StorageSummary {
                host: h.id.clone(),
                device: s.name.clone(),
                capacity: s.capacity_bytes,
                used: s.used_bytes,
                luns: s
                    .luns
                    .iter()
                    .map(|l| LunSummary {
                        id: l.id.clone(),
                        size: l.size_bytes,
                        consumer: l.consumer.clone(),
                    })
                    .collect(),
            })
        })
        .collect()
}

/// `GET /`: the page.
pub async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        STATUS_PAGE,
    )
        .into_response()
}

/// `GET /api/v1/status`.
pub async fn get(State(s): State<ApiState>) -> Response {
    (
        [(header::CACHE_CONTROL, "no-store")],
        Json(status(&s.registry, &s.status)),
    )
        .into_response()
}
