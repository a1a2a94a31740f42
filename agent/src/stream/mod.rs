//! The stream to the watchdog: hello, heartbeats, telemetry, events, and
//! commands from the allowlist. Events and telemetry go through a bounded
//! outbox that survives disconnections.
//!
//! * [`outbox`]: the numbered, acknowledged, bounded buffer.
//! * [`session`]: connecting (failover, backoff, TLS) and one stream's life.
//! * [`goodbye`]: the last message of an agent stopping on purpose.
//! * [`backoff`]: jittered exponential reconnect delays.
//! * [`telemetry`]: a scrape turned into a summary; [`usage`]: its per-VM,
//!   per-device and per-LUN part.
//! * [`actions`]: running allowlisted actions (or handing commands to the
//!   simulated host).
//! * [`runs`]: each recovery step's run id run once; a repeat is answered
//!   with the first run's result.
//! * [`identity`]: host id, boot id, the host part of the inventory.
//! * [`inventory`]: the whole inventory, its revisions and the real
//!   host's inventory watcher.
//!
//! Other parts of the agent emit events through an [`EventSender`].

pub mod actions;
pub mod backoff;
pub mod goodbye;
pub mod identity;
pub mod inventory;
pub mod outbox;
pub mod runs;
pub mod session;
pub mod telemetry;
pub mod usage;

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
    },
    time::SystemTime,
};

use hyperwatch_proto::v1;

use crate::metrics::{Family, Kind};
use inventory::InventoryPublisher;
use outbox::Outbox;

/// Emits events to the watchdog; cheap to clone, never blocks. Events are
/// numbered and kept until the watchdog has them (see [`outbox`]).
#[derive(Clone, Debug)]
pub struct EventSender {
    outbox: Arc<Outbox>,
}

impl EventSender {
    /// Queues an event of `kind`, stamped now; returns its sequence number.
    pub fn send(&self, kind: v1::event::Kind) -> u64 {
        self.outbox.push_event(v1::Event {
            seq: 0,
            monotonic_nanos: monotonic_nanos(),
            unix_nanos: unix_nanos(SystemTime::now()),
            kind: Some(kind),
        })
    }

    /// Queues a generic event called `name` with `fields`.
    pub fn send_generic(&self, name: &str, fields: HashMap<String, String>) -> u64 {
        self.send(v1::event::Kind::Generic(v1::Generic {
            name: name.to_owned(),
            fields,
        }))
    }
}

/// Shared state of the stream: the outbox and counters for /metrics.
#[derive(Debug)]
pub struct StreamHandle {
    pub outbox: Arc<Outbox>,
    pub connected: AtomicBool,
    pub reconnects: AtomicU64,
    /// Random per process: sequence numbers count within it.
    pub instance: u64,
    /// The latest inventory: in every hello, and sent again when it changes.
    pub inventory: Arc<InventoryPublisher>,
}

impl StreamHandle {
    pub fn new(buffer_records: usize) -> Self {
        Self {
            outbox: Arc::new(Outbox::new(buffer_records)),
            connected: AtomicBool::new(false),
            reconnects: AtomicU64::new(0),
            instance: fastrand::u64(1..),
            inventory: Arc::new(InventoryPublisher::default()),
        }
    }

    /// An event sender for any part of the agent.
    pub fn events(&self) -> EventSender {
        EventSender {
            outbox: self.outbox.clone(),
        }
    }

    /// The stream's series for /metrics.
    pub fn families(&self) -> Vec<Family> {
        let mut dropped = Family::new(
            "hyperwatch_stream_dropped",
            "Events and telemetry summaries dropped because the buffer for the watchdog was full.",
            Kind::Counter,
        );
        dropped.push(
            vec![("kind", "event".into())],
            self.outbox.dropped.events.load(Relaxed) as f64,
        );
        dropped.push(
            vec![("kind", "telemetry".into())],
            self.outbox.dropped.telemetry.load(Relaxed) as f64,
        );
        vec![
            dropped,
            Family::new(
                "hyperwatch_stream_buffered_records",
                "Events and telemetry summaries waiting for the watchdog's acknowledgement.",
                Kind::Gauge,
            )
            .with(self.outbox.len() as f64),
            Family::new(
                "hyperwatch_stream_connected",
                "Whether the stream to a watchdog is up (1) or not (0).",
                Kind::Gauge,
            )
            .with(if self.connected.load(Relaxed) {
                1.0
            } else {
                0.0
            }),
            Family::new(
                "hyperwatch_stream_reconnects",
                "Streams to a watchdog established after the first.",
                Kind::Counter,
            )
            .with(self.reconnects.load(Relaxed) as f64),
        ]
    }
}

/// CLOCK_MONOTONIC in nanoseconds: the clock the watchdog's detector
/// measures the agent's send schedule with.
pub fn monotonic_nanos() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

/// Nanoseconds since the Unix epoch.
pub fn unix_nanos(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}
