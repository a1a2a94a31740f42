//! Process exits and OOM kills from the kernel's ring buffer: decoded,
//! counted, and handed on (to the service checks through [`ExitFeed`], and
//! OOM kills to the event bus).
//!
//! The programs queue events without waking the reader (a wakeup is a
//! self-IPI costing ~14 µs per exit in a VM), so the reader polls the ring
//! every [`RING_POLL_INTERVAL`]: reading the ring's positions is a memory
//! read (it is mmap'd), no system call.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use agent_common::exit::{HOW_EXITED, HOW_SIGNALED, KIND_EXIT, KIND_OOM_VICTIM, ProcessEvent};
use aya::maps::{MapData, RingBuf};
use tokio::sync::broadcast;

use crate::{
    clock,
    events::{AgentEvent, EventBus, ExitOutcome, ProcessExit},
};

/// Exits a service check may fall behind by; past that it rescans /proc.
const FEED_CAPACITY: usize = 8_192;

/// How often the ring is read: an exit reaches the service checks within
/// 20 ms (issue 4 asks for 100 ms), for 50 cheap wakeups a second.
pub const RING_POLL_INTERVAL: std::time::Duration = std::time::Duration::from_millis(20);

/// Exit and OOM-kill counts, and the live feed of exits.
#[derive(Debug)]
pub struct ExitFeed {
    counts: Mutex<Counts>,
    tx: broadcast::Sender<ProcessExit>,
}

#[derive(Debug, Default)]
struct Counts {
    /// (how, signal) -> exits; see [`ExitFeed::exit_counts`].
    exits: BTreeMap<(&'static str, String), u64>,
    oom_kills: u64,
}

impl ExitFeed {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            counts: Mutex::new(Counts::default()),
            tx: broadcast::channel(FEED_CAPACITY).0,
        })
    }

    /// Every exit from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<ProcessExit> {
        self.tx.subscribe()
    }

    /// Exits so far by (`how`, `signal`): how is `exit_success`,
    /// `exit_failure`, `signal` or `unknown`; signal is the signal's name
    /// for `signal` and empty otherwise.
    pub fn exit_counts(&self) -> Vec<((&'static str, String), u64)> {
        let counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts.exits.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    /// OOM kills so far.
    pub fn oom_kills(&self) -> u64 {
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .oom_kills
    }

    /// Counts and forwards one event from the kernel.
    pub fn record(&self, event: &ProcessEvent, bus: &EventBus) {
        let at = clock::wall_time(event.ts_ns);
        let mut comm = comm_str(&event.comm);
        match event.kind {
            KIND_EXIT => {
                let outcome = outcome(event.how, event.code);
                let key = match &outcome {
                    ExitOutcome::Exited { code: 0 } => ("exit_success", String::new()),
                    ExitOutcome::Exited { .. } => ("exit_failure", String::new()),
                    ExitOutcome::Signaled { name, .. } => ("signal", name.clone()),
                    ExitOutcome::Unknown => ("unknown", String::new()),
                };
                *self.lock().exits.entry(key).or_default() += 1;
                let _ = self.tx.send(ProcessExit {
                    pid: event.pid,
                    comm,
                    outcome,
                    at,
                });
            }
            KIND_OOM_VICTIM => {
                self.lock().oom_kills += 1;
                if comm.is_empty() {
                    // Kernels before 6.x carry only the pid; the victim is
                    // usually still there to be named.
                    comm = std::fs::read_to_string(format!("/proc/{}/comm", event.pid))
                        .map(|c| c.trim_end().to_owned())
                        .unwrap_or_default();
                }
                tracing::warn!(pid = event.pid, %comm, "OOM killer chose a victim");
                bus.publish(AgentEvent::OomKill {
                    pid: event.pid,
                    comm,
                    at,
                });
            }
            other => tracing::debug!(kind = other, "unknown process event kind"),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Reads the ring buffer every [`RING_POLL_INTERVAL`] until the agent stops.
pub async fn run(mut ring: RingBuf<MapData>, feed: Arc<ExitFeed>, bus: EventBus) {
    let mut ticks = tokio::time::interval(RING_POLL_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        while let Some(item) = ring.next() {
            match decode(&item) {
                Some(event) => feed.record(&event, &bus),
                None => tracing::warn!(len = item.len(), "short process event in the ring buffer"),
            }
        }
    }
}

fn decode(bytes: &[u8]) -> Option<ProcessEvent> {
    if bytes.len() < size_of::<ProcessEvent>() {
        return None;
    }
    // SAFETY: the length is checked; ProcessEvent is plain data valid for
    // any bit pattern; read_unaligned copes with the ring's 8-byte alignment.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<ProcessEvent>()) })
}

fn comm_str(comm: &[u8; 16]) -> String {
    let end = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
    String::from_utf8_lossy(&comm[..end]).into_owned()
}

/// The outcome of a kernel `how`/`code` pair.
pub fn outcome(how: u32, code: u32) -> ExitOutcome {
    match how {
        HOW_EXITED => ExitOutcome::Exited { code: code as u8 },
        HOW_SIGNALED => ExitOutcome::Signaled {
            signal: code,
            name: signal_name(code),
        },
        _ => ExitOutcome::Unknown,
    }
}

/// "SIGKILL" for 9; real-time signals as "SIGRTMIN+n".
pub fn signal_name(sig: u32) -> String {
    match nix::sys::signal::Signal::try_from(sig as i32) {
        Ok(s) => s.as_str().to_owned(),
        Err(_) => {
            let rtmin = libc::SIGRTMIN() as u32;
            if sig >= rtmin {
                format!("SIGRTMIN+{}", sig - rtmin)
            } else {
                format!("SIG{sig}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: u32, how: u32, code: u32) -> ProcessEvent {
        let mut comm = [0u8; 16];
        comm[..5].copy_from_slice(b"nginx");
        ProcessEvent {
            ts_ns: clock::monotonic_ns(),
            kind,
            how,
            pid: 77,
            code,
            comm,
        }
    }

    #[test]
    fn exits_are_counted_by_outcome_and_fed_to_subscribers() {
        let feed = ExitFeed::new();
        let bus = EventBus::new();
        let mut rx = feed.subscribe();
        feed.record(&event(KIND_EXIT, HOW_SIGNALED, 9), &bus);
        feed.record(&event(KIND_EXIT, HOW_EXITED, 0), &bus);
        feed.record(&event(KIND_EXIT, HOW_EXITED, 3), &bus);
        feed.record(&event(KIND_EXIT, 0, 0), &bus);
        let first = rx.try_recv().unwrap();
        assert_eq!(first.pid, 77);
        assert_eq!(first.comm, "nginx");
        assert_eq!(
            first.outcome,
            ExitOutcome::Signaled {
                signal: 9,
                name: "SIGKILL".into()
            }
        );
        let counts = feed.exit_counts();
        assert!(counts.contains(&(("signal", "SIGKILL".into()), 1)));
        assert!(counts.contains(&(("exit_success", String::new()), 1)));
        assert!(counts.contains(&(("exit_failure", String::new()), 1)));
        assert!(counts.contains(&(("unknown", String::new()), 1)));
    }

    #[test]
    fn oom_victims_go_to_the_bus() {
        let feed = ExitFeed::new();
        let bus = EventBus::new();
        let mut rx = bus.subscribe();
        feed.record(&event(KIND_OOM_VICTIM, HOW_SIGNALED, 9), &bus);
        assert_eq!(feed.oom_kills(), 1);
        match rx.try_recv().unwrap() {
            AgentEvent::OomKill { pid, comm, .. } => {
                assert_eq!((pid, comm.as_str()), (77, "nginx"))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn signal_names() {
        assert_eq!(signal_name(15), "SIGTERM");
        assert_eq!(signal_name(libc::SIGRTMIN() as u32 + 2), "SIGRTMIN+2");
    }

    #[test]
    fn short_records_are_rejected() {
        assert!(decode(&[0u8; 8]).is_none());
        assert!(decode(&[0u8; size_of::<ProcessEvent>()]).is_some());
    }
}
