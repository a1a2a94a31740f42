//! The planner's input: a snapshot of the cluster (hosts, VMs, their usage
//! over a window) and the constraints every plan must honour.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Everything the planner knows about the cluster at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterSnapshot {
    pub hosts: Vec<Host>,
    pub vms: Vec<Vm>,
    pub constraints: Constraints,
}

/// A hypervisor host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Host {
    /// Unique name of the host.
    pub id: String,
    /// Logical CPUs.
    pub cores: u32,
    /// Physical memory, bytes.
    pub memory_bytes: u64,
    /// Busy CPUs (in cores, all load on the host: VMs and the hypervisor
    /// itself) sampled over the window; may be empty.
    pub cpu_samples: Vec<f64>,
    /// Used memory, bytes, sampled over the window; may be empty.
    pub memory_samples: Vec<u64>,
    pub state: HostState,
    /// Utilization (busy cores / cores) above which this host is overloaded;
    /// `None` takes [`PlannerSettings::cpu_threshold`](super::PlannerSettings).
    pub cpu_threshold: Option<f64>,
    /// Capacity kept free on this host; `None` takes
    /// [`Constraints::headroom`].
    pub headroom: Option<Headroom>,
}

/// Whether a host runs VMs and may receive them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostState {
    /// Runs VMs and may receive more.
    Healthy,
    /// Declared dead: its VMs are not running and must be placed elsewhere.
    Failed,
    /// Being drained: its VMs must leave, nothing may arrive.
    Maintenance,
    /// Its agent stopped on purpose: its VMs run on where they are and
    /// stay there (nothing can move them without the agent), nothing may
    /// arrive.
    Stopped,
}

/// A virtual machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vm {
    /// Unique name of the VM.
    pub id: String,
    /// The host it runs on (or ran on, when that host failed).
    pub host: String,
    pub vcpus: u32,
    /// Memory allocated to the VM, bytes: what it occupies on a host.
    pub memory_bytes: u64,
    /// Busy CPUs (in cores) sampled over the window. Empty means unknown,
    /// and the planner then assumes every vCPU busy.
    pub cpu_samples: Vec<f64>,
    /// Resident memory, bytes, over the window: what a live migration
    /// copies. Empty means unknown, and the planner assumes all of it.
    pub memory_samples: Vec<u64>,
    /// The tenant (project) that owns the VM, for reservations.
    pub tenant: String,
    /// Free-form labels, carried into the plan for the operator.
    pub labels: BTreeMap<String, String>,
    /// Failover order: higher is placed first.
    pub priority: i32,
}

/// Rules every plan honours at every step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Constraints {
    /// Groups of VMs of which no two may share a host (replicas).
    #[serde(default)]
    pub anti_affinity: Vec<AntiAffinityGroup>,
    /// VM id to the only host it may run on.
    #[serde(default)]
    pub pinned: BTreeMap<String, String>,
    /// VM id to why it cannot move at all (for example, a passed-through
    /// device).
    #[serde(default)]
    pub unmovable: BTreeMap<String, String>,
    /// Capacity held on a host for one tenant; other tenants never get it.
    #[serde(default)]
    pub reservations: Vec<Reservation>,
    /// Capacity kept free on every host that does not set its own.
    #[serde(default)]
    pub headroom: Headroom,
    /// At most this many vCPUs per core on a host; `None`: no vCPU limit,
    /// only observed CPU usage counts.
    #[serde(default)]
    pub cpu_allocation_ratio: Option<f64>,
}

/// VMs of which no two may run on one host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AntiAffinityGroup {
    /// Name shown in explanations.
    pub name: String,
    /// The VM ids of the group.
    pub vms: Vec<String>,
}

/// Capacity on one host reserved for one tenant: the tenant's own VMs use it
/// first; no other tenant's VM may use it. Several reservations of one
/// tenant on one host add up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reservation {
    /// The tenant the capacity is held for.
    pub tenant: String,
    /// The host holding it.
    pub host: String,
    /// Busy cores held.
    pub cpu_cores: f64,
    /// Memory held, bytes.
    pub memory_bytes: u64,
}

/// Fractions of a host's CPU and memory that stay free.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Headroom {
    /// Fraction of the cores kept idle, 0 to 1 (exclusive).
    pub cpu_fraction: f64,
    /// Fraction of memory kept unallocated, 0 to 1 (exclusive).
    pub memory_fraction: f64,
}

impl Default for Headroom {
    /// 10 % of CPU and 5 % of memory: room for the hypervisor's own bursts
    /// and the page cache, the margins operators commonly keep.
    fn default() -> Self {
        Headroom {
            cpu_fraction: 0.10,
            memory_fraction: 0.05,
        }
    }
}
