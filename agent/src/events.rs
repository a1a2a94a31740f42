//! The agent's event bus: what happened on this host that the watchdog must
//! hear about at once, not at the next telemetry tick (a watched service
//! died, the OOM killer struck, a CPU stopped switching, an eBPF program was
//! detached).
//!
//! The bus is a broadcast channel: every subscriber sees every event
//! published after it subscribed. A subscriber that falls more than
//! [`BUS_CAPACITY`] events behind loses the oldest ones and is told how many
//! (tokio's `RecvError::Lagged`).

use std::time::SystemTime;

use serde::Serialize;
use tokio::sync::broadcast;

/// Events a subscriber may fall behind by before it loses the oldest: far
/// more than a host produces in the seconds a slow stream may stall.
pub const BUS_CAPACITY: usize = 4_096;

/// Something the watchdog should learn about now.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentEvent {
    /// A process of a watched service exited.
    ProcessExited {
        /// The `[[services]]` entry the process belonged to.
        service: String,
        exit: ProcessExit,
    },
    /// The kernel's OOM killer chose a victim.
    OomKill {
        pid: u32,
        comm: String,
        at: SystemTime,
    },
    /// A CPU has run one task without a context switch for longer than the
    /// configured threshold.
    CpuStuck {
        cpu: u32,
        since_switch_seconds: f64,
        at: SystemTime,
    },
    /// A CPU that was stuck switched again.
    CpuRecovered {
        cpu: u32,
        stuck_seconds: f64,
        at: SystemTime,
    },
    /// A service check changed state.
    ServiceChanged(ServiceChange),
    /// An eBPF program was detached (over its cost budget); the others run.
    EbpfProgramDetached {
        program: String,
        reason: String,
        at: SystemTime,
    },
}

/// How a process ended, as the kernel reported it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "how", rename_all = "snake_case")]
pub enum ExitOutcome {
    /// It called exit_group with this status.
    Exited { code: u8 },
    /// A fatal signal (number and name, e.g. 9 and "SIGKILL") ended it.
    Signaled { signal: u32, name: String },
    /// The status could not be learned (see agent_common::exit).
    Unknown,
}

/// One process exit.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProcessExit {
    /// Process id (tgid).
    pub pid: u32,
    /// Its comm (the kernel's short name, up to 15 bytes).
    pub comm: String,
    pub outcome: ExitOutcome,
    /// When the last thread exited (kernel time, converted to wall time).
    pub at: SystemTime,
}

/// The kinds of service check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceKind {
    Process,
    Tcp,
    Http,
    Systemd,
}

impl ServiceKind {
    /// The `kind` metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceKind::Process => "process",
            ServiceKind::Tcp => "tcp",
            ServiceKind::Http => "http",
            ServiceKind::Systemd => "systemd",
        }
    }
}

/// A service going down or coming back.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ServiceChange {
    pub service: String,
    pub kind: ServiceKind,
    /// The new state.
    pub up: bool,
    /// When the change happened (for a process death, the kernel's exit
    /// time; otherwise when the check saw it).
    pub at: SystemTime,
    /// What the check saw, e.g. "pid 1234 (nginx) killed by SIGKILL" or
    /// "connect to 127.0.0.1:80: connection refused".
    pub reason: String,
}

/// The bus. Cloning it gives another handle on the same channel.
#[derive(Clone, Debug)]
pub struct EventBus {
    tx: broadcast::Sender<AgentEvent>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    /// A bus with room for [`BUS_CAPACITY`] events per subscriber.
    pub fn new() -> Self {
        Self {
            tx: broadcast::channel(BUS_CAPACITY).0,
        }
    }

    /// Sends `event` to every current subscriber (none is fine: the event
    /// is then only logged and counted by whoever produced it).
    pub fn publish(&self, event: AgentEvent) {
        tracing::debug!(?event, "event");
        let _ = self.tx.send(event);
    }

    /// A receiver of every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<AgentEvent> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_subscriber_sees_events_published_after_it_subscribed() {
        let bus = EventBus::new();
        bus.publish(AgentEvent::OomKill {
            pid: 1,
            comm: "early".into(),
            at: SystemTime::UNIX_EPOCH,
        });
        let mut a = bus.subscribe();
        let mut b = bus.clone().subscribe();
        let event = AgentEvent::CpuStuck {
            cpu: 3,
            since_switch_seconds: 25.0,
            at: SystemTime::UNIX_EPOCH,
        };
        bus.publish(event.clone());
        assert_eq!(a.recv().await.unwrap(), event);
        assert_eq!(b.recv().await.unwrap(), event);
        assert!(a.try_recv().is_err());
    }

    #[test]
    fn events_serialize_with_a_type_tag() {
        let e = AgentEvent::ProcessExited {
            service: "web".into(),
            exit: ProcessExit {
                pid: 42,
                comm: "nginx".into(),
                outcome: ExitOutcome::Signaled {
                    signal: 9,
                    name: "SIGKILL".into(),
                },
                at: SystemTime::UNIX_EPOCH,
            },
        };
        let json = serde_json::to_string(&e).unwrap();
        assert!(
            json.starts_with(r#"{"type":"process_exited","service":"web""#),
            "{json}"
        );
        assert!(
            json.contains(r#""outcome":{"how":"signaled","signal":9,"name":"SIGKILL"}"#),
            "{json}"
        );
    }
}
