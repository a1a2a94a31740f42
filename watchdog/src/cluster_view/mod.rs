//! Capacity views of the registry: pure builders from each host's
//! inventory, health and usage windows to the VM planner's
//! [`ClusterSnapshot`](crate::planner::ClusterSnapshot), the LUN
//! rebalancer's [`Snapshot`](crate::rebalancer::Snapshot), and the storage
//! map `GET /api/v1/storage` serves. No I/O, no clock: the same hosts give
//! the same views.
//!
//! Names: VMs keep their own (unique in the cluster); storage devices and
//! LUNs are unique only on their host, so the rebalancer sees them as
//! `HOST/NAME` ([`qualify`]), and a group is `HOST/GROUP` unless the agent
//! marks it shared between hosts.
//!
//! Layout:
//! * [`vms`]: hosts -> the VM planner's snapshot.
//! * [`storage`]: hosts -> the rebalancer's snapshot.
//! * [`storage_map`]: hosts -> devices with their LUNs, per host (API).

pub mod storage;
pub mod storage_map;
pub mod vms;

use std::sync::Arc;

use hyperwatch_proto::v1;

use crate::{health::HostState, usage_window::UsageWindows};

pub use storage::rebalancer_snapshot;
pub use storage_map::{StorageMap, storage_map};
pub use vms::planner_snapshot;

/// The `Inventory.roles` word of a host that runs VMs.
pub const ROLE_HYPERVISOR: &str = "hypervisor";

/// What the registry knows of one host's capacity at one moment.
#[derive(Clone, Debug)]
pub struct HostCapacity {
    pub id: String,
    /// Health as the failure detector sees it.
    pub state: HostState,
    /// Set by an operator: drain it, send it nothing.
    pub maintenance: bool,
    pub connected: bool,
    pub inventory: Arc<v1::Inventory>,
    pub usage: Arc<UsageWindows>,
}

impl HostCapacity {
    /// Whether the host runs VMs; agents that send no roles (older ones)
    /// are hypervisors, as every host was before roles existed.
    pub fn is_hypervisor(&self) -> bool {
        self.inventory.roles.is_empty() || self.inventory.roles.iter().any(|r| r == ROLE_HYPERVISOR)
    }
}

/// A view built from the registry, and what it had to leave out, in words.
#[derive(Clone, Debug, PartialEq)]
pub struct Built<T> {
    pub snapshot: T,
    /// Items left out or resolved (duplicates, constraints naming a VM that
    /// is not there); empty when everything was taken as it was.
    pub notes: Vec<String>,
}

/// `HOST/NAME`: a device, LUN or group name made unique in the cluster.
pub fn qualify(host: &str, name: &str) -> String {
    format!("{host}/{name}")
}

/// The host and the name of a [`qualify`]d id (host ids hold no `/`).
pub fn split(qualified: &str) -> Option<(&str, &str)> {
    qualified.split_once('/')
}

#[cfg(test)]
pub(crate) mod test_hosts;
