//! Forwards the event bus to the watchdog stream: every [`AgentEvent`]
//! becomes a `hyperwatch.v1` event, queued in the stream's bounded outbox
//! (delivered after a reconnect, drops counted, never silent).

use std::{collections::HashMap, time::SystemTime};

use hyperwatch_proto::v1;
use tokio::sync::broadcast::{Receiver, error::RecvError};

use crate::{
    events::{AgentEvent, ExitOutcome},
    stream::EventSender,
};

/// Runs until the bus closes.
pub async fn run(mut bus: Receiver<AgentEvent>, sender: EventSender) {
    loop {
        match bus.recv().await {
            Ok(event) => {
                sender.send(to_wire(&event));
            }
            Err(RecvError::Lagged(missed)) => {
                // The bus is far larger than a burst; say so if it happens.
                tracing::warn!(missed, "event forwarder fell behind the bus; events lost");
                let fields = HashMap::from([("missed".to_owned(), missed.to_string())]);
                sender.send_generic("events_lost", fields);
            }
            Err(RecvError::Closed) => return,
        }
    }
}

/// The wire form of one bus event.
pub fn to_wire(event: &AgentEvent) -> v1::event::Kind {
    use v1::event::Kind;
    match event {
        AgentEvent::ProcessExited { service, exit } => {
            let status = match &exit.outcome {
                ExitOutcome::Exited { code } => {
                    Some(v1::process_exit::Status::ExitCode(i32::from(*code)))
                }
                ExitOutcome::Signaled { signal, .. } => {
                    Some(v1::process_exit::Status::Signal(*signal as i32))
                }
                ExitOutcome::Unknown => None,
            };
            Kind::ProcessExit(v1::ProcessExit {
                pid: exit.pid,
                comm: exit.comm.clone(),
                status,
                core_dumped: false,
                service: service.clone(),
            })
        }
        AgentEvent::OomKill { pid, comm, .. } => Kind::OomKill(v1::OomKill {
            pid: *pid,
            comm: comm.clone(),
            rss_bytes: 0,
            cgroup: String::new(),
        }),
        AgentEvent::CpuStuck {
            cpu,
            since_switch_seconds,
            ..
        } => Kind::StuckCpu(v1::StuckCpu {
            cpu: *cpu,
            stuck_for_ms: (since_switch_seconds * 1e3) as u64,
            pid: 0,
            comm: String::new(),
        }),
        AgentEvent::CpuRecovered {
            cpu, stuck_seconds, ..
        } => generic(
            "cpu_recovered",
            [
                ("cpu", cpu.to_string()),
                ("stuck_seconds", stuck_seconds.to_string()),
            ],
        ),
        AgentEvent::ServiceChanged(change) => {
            let state = |up: bool| if up { "running" } else { "failed" };
            Kind::ServiceStateChange(v1::ServiceStateChange {
                service: change.service.clone(),
                old_state: state(!change.up).to_owned(),
                new_state: state(change.up).to_owned(),
                changed_unix_nanos: unix_nanos(change.at),
                detail: format!("{} check: {}", change.kind.as_str(), change.reason),
            })
        }
        AgentEvent::EbpfProgramDetached {
            program, reason, ..
        } => generic(
            "ebpf_program_detached",
            [("program", program.clone()), ("reason", reason.clone())],
        ),
    }
}

fn generic<const N: usize>(name: &str, fields: [(&str, String); N]) -> v1::event::Kind {
    v1::event::Kind::Generic(v1::Generic {
        name: name.to_owned(),
        fields: fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
    })
}

fn unix_nanos(at: SystemTime) -> i64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{ProcessExit, ServiceChange, ServiceKind};

    #[test]
    fn a_killed_service_process_keeps_its_signal_and_service() {
        let event = AgentEvent::ProcessExited {
            service: "nginx".into(),
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
        let v1::event::Kind::ProcessExit(e) = to_wire(&event) else {
            panic!("not an exit")
        };
        assert_eq!((e.pid, e.service.as_str()), (42, "nginx"));
        assert_eq!(e.status, Some(v1::process_exit::Status::Signal(9)));
    }

    #[test]
    fn a_service_going_down_is_running_to_failed_at_its_time() {
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(5);
        let event = AgentEvent::ServiceChanged(ServiceChange {
            service: "db".into(),
            kind: ServiceKind::Tcp,
            up: false,
            at,
            reason: "connection refused".into(),
        });
        let v1::event::Kind::ServiceStateChange(c) = to_wire(&event) else {
            panic!()
        };
        assert_eq!(
            (c.old_state.as_str(), c.new_state.as_str()),
            ("running", "failed")
        );
        assert_eq!(c.changed_unix_nanos, 5_000_000_000);
        assert!(c.detail.contains("tcp check: connection refused"));
    }
}
