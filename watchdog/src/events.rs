//! What the watchdog publishes to the parts after ingest (policy engine,
//! planner, status page): host state changes, connections, telemetry,
//! agent events and inventories, on one broadcast channel. A subscriber that falls behind
//! loses the oldest items (it is told how many) and re-reads the
//! [`crate::registry::Registry`] snapshot, which always holds the latest.

use std::{net::SocketAddr, sync::Arc, time::SystemTime};

use hyperwatch_proto::v1;
use tokio::sync::broadcast;

use crate::health::HostState;

/// Items a subscriber may lag behind before it starts losing the oldest:
/// a few seconds of telemetry from 10,000 hosts.
pub const CLUSTER_EVENTS_CAPACITY: usize = 65_536;

/// One thing that happened in the cluster.
#[derive(Clone, Debug)]
pub enum ClusterEvent {
    /// A host changed health state (`from` is None for a new host).
    HostState {
        host: String,
        from: Option<HostState>,
        to: HostState,
        at: SystemTime,
        /// Why, in words ("silent for 2.61 s, phi 10.3", "heartbeat resumed").
        reason: String,
    },
    /// An agent's stream was accepted (its hello carries the inventory).
    Connected {
        host: String,
        peer: SocketAddr,
        hello: Arc<v1::Hello>,
    },
    /// An agent's stream ended.
    Disconnected {
        host: String,
        peer: SocketAddr,
        reason: String,
    },
    /// A telemetry summary arrived (new sequence numbers only).
    Telemetry {
        host: String,
        telemetry: Arc<v1::Telemetry>,
    },
    /// An agent event arrived (new sequence numbers only).
    AgentEvent { host: String, event: Arc<v1::Event> },
    /// A host's inventory arrived: with each hello, and whenever its VMs or
    /// storage change.
    Inventory {
        host: String,
        inventory: Arc<v1::Inventory>,
    },
}

/// The sending side, held by ingest and the detector loop.
#[derive(Clone, Debug)]
pub struct ClusterEvents(broadcast::Sender<ClusterEvent>);

impl Default for ClusterEvents {
    fn default() -> Self {
        Self(broadcast::channel(CLUSTER_EVENTS_CAPACITY).0)
    }
}

impl ClusterEvents {
    /// A new subscription: everything published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<ClusterEvent> {
        self.0.subscribe()
    }

    /// Publishes; nobody listening is fine.
    pub fn publish(&self, event: ClusterEvent) {
        let _ = self.0.send(event);
    }
}
