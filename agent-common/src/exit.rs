//! Process exits and OOM kills, sent from the kernel programs to the agent
//! through a ring buffer.
//!
//! The exit status is not a field of `sched_process_exit`, so the programs
//! learn it from tracepoints that carry it, keyed by process (tgid):
//! `syscalls:sys_enter_exit_group` (the code of a voluntary exit) and
//! `signal:signal_deliver` (a fatal signal taken with its default action).
//! A fatal signal other than SIGKILL that hits a process without a handler
//! reaches its threads as SIGKILL (the kernel's group-exit fast path), so
//! `signal:signal_generate` remembers the last default-fatal signal sent to
//! each process, and a delivered SIGKILL is reported as that signal.
//!
//! Limits: a process whose last thread leaves through `exit` (not
//! `exit_group`) has an unknown status; a fatal signal sent to one thread
//! (tgkill) rather than the process shows as SIGKILL when the kernel's fast
//! path turns it into one; on kernels without `sched_process_exit`'s
//! `group_dead` (before 6.x) the thread-group leader's exit stands for the
//! process's, which is early when the leader exits before its threads.

/// Ring buffer carrying [`ProcessEvent`]s.
pub const EVENTS_MAP: &str = "PROCESS_EVENTS";

/// Ring buffer size: 256 KiB holds 6500 events, seconds of exits on a host
/// that forks thousands of processes a second, while the reader wakes on
/// every event.
pub const EVENTS_BYTES: u32 = 256 * 1024;

/// Hash map: tgid -> [`ExitInfo`], from the exit/signal tracepoints until
/// the process's last thread exits.
pub const EXIT_INFO_MAP: &str = "EXIT_INFO";

/// Hash map: tgid -> last default-fatal signal sent to the process.
pub const LAST_FATAL_SIGNAL_MAP: &str = "LAST_FATAL_SIGNAL";

/// Processes between their deciding tracepoint and their exit at once.
pub const MAX_EXITING: u32 = 16_384;

/// [`ProcessEvent::kind`]: the last thread of a process exited.
pub const KIND_EXIT: u32 = 1;
/// [`ProcessEvent::kind`]: the OOM killer chose the process as its victim.
pub const KIND_OOM_VICTIM: u32 = 2;

/// How a process ended: the cause is not known (e.g. its last thread left
/// through `exit`, not `exit_group`, or an entry was evicted).
pub const HOW_UNKNOWN: u32 = 0;
/// It called exit_group; `code` is the exit status (0..=255).
pub const HOW_EXITED: u32 = 1;
/// A fatal signal ended it; `code` is the signal number.
pub const HOW_SIGNALED: u32 = 2;

/// Value of an offset global whose field this kernel's tracepoint lacks
/// (`group_dead` before 6.x, `mark_victim`'s `comm` before 6.2).
pub const FIELD_ABSENT: u32 = u32::MAX;

/// SIGKILL's number on every Linux architecture.
pub const SIGKILL: u32 = 9;

/// `result` of `signal_generate` when the signal was queued
/// (TRACE_SIGNAL_DELIVERED in include/trace/events/signal.h).
pub const TRACE_SIGNAL_DELIVERED: i32 = 0;

/// One event from the ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcessEvent {
    /// bpf_ktime_get_ns() when it happened.
    pub ts_ns: u64,
    /// [`KIND_EXIT`] or [`KIND_OOM_VICTIM`].
    pub kind: u32,
    /// For exits: one of the `HOW_*` constants.
    pub how: u32,
    /// The process id (tgid).
    pub pid: u32,
    /// Exit status or signal number, by `how`.
    pub code: u32,
    /// The task's comm, NUL-padded.
    pub comm: [u8; 16],
}

/// What the exit and signal tracepoints learned about a dying process.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExitInfo {
    /// One of the `HOW_*` constants.
    pub how: u32,
    /// Exit status or signal number.
    pub code: u32,
}

/// Whether a signal's default action ends the process (terminate or core
/// dump): every signal but SIGCHLD, SIGCONT, SIGSTOP, SIGTSTP, SIGTTIN,
/// SIGTTOU, SIGURG and SIGWINCH (signal(7)); real-time signals terminate.
#[inline(always)]
pub fn fatal_by_default(sig: u32) -> bool {
    // Bits 17-23 and 28: CHLD, CONT, STOP, TSTP, TTIN, TTOU, URG, WINCH.
    const NOT_FATAL: u32 = (0x7f << 17) | (1 << 28);
    (1..=64).contains(&sig) && (sig >= 32 || (NOT_FATAL >> sig) & 1 == 0)
}

#[cfg(feature = "user")]
// SAFETY: repr(C), Copy, every bit pattern valid.
unsafe impl aya::Pod for ProcessEvent {}
#[cfg(feature = "user")]
// SAFETY: repr(C), Copy, every bit pattern valid.
unsafe impl aya::Pod for ExitInfo {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fatal_signals_follow_signal_7() {
        for sig in [1, 2, 3, 6, 9, 11, 13, 14, 15, 10, 12, 24, 25, 31, 34, 64] {
            assert!(fatal_by_default(sig), "{sig}");
        }
        for sig in [0, 17, 18, 19, 20, 21, 22, 23, 28, 65] {
            assert!(!fatal_by_default(sig), "{sig}");
        }
    }
}
