//! Run-queue latency: the per-task state the scheduler programs keep and the
//! histogram maps they fill.

/// LRU hash map: thread id -> [`TaskState`].
pub const TASKS_MAP: &str = "TASKS";

/// Per-CPU array of [`crate::hist::Log2Hist`]: index [`HOST_HIST`] for the
/// whole host, `VM_HIST_BASE + slot` for the VM in that slot.
pub const RUNQ_HIST_MAP: &str = "RUNQ_HIST";

/// Index of the host-wide histogram in `RUNQ_HIST`.
pub const HOST_HIST: u32 = 0;

/// Index of VM slot 0's histogram in `RUNQ_HIST`.
pub const VM_HIST_BASE: u32 = 1;

/// VMs tracked per host. A hypervisor runs tens to a few hundred; each slot
/// costs one histogram (232 bytes) per CPU in kernel memory.
pub const MAX_VMS: u32 = 256;

/// Entries of `RUNQ_HIST`: the host and every VM slot.
pub const RUNQ_HIST_ENTRIES: u32 = VM_HIST_BASE + MAX_VMS;

/// Threads tracked at once. Sized for a busy host (a few thousand threads,
/// tens of thousands with many VMs); when full the LRU map drops the least
/// recently woken thread, which only loses that thread's next sample.
pub const MAX_TASKS: u32 = 65_536;

/// `vm_slot` of a thread that belongs to no VM.
pub const NO_VM: u32 = u32::MAX;

/// The scheduler programs' record of one thread.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskState {
    /// bpf_ktime_get_ns() when the thread last became runnable (woken, or
    /// preempted while runnable); 0 while it runs or sleeps.
    pub enqueued_ns: u64,
    /// The VM slot the agent assigned to this thread, or [`NO_VM`].
    pub vm_slot: u32,
    /// Keeps the size a multiple of 8 on both sides.
    pub _pad: u32,
}

/// Mask of the `prev_state` bits that say a switched-out task was not
/// runnable. The tracepoint reports a preempted task as TASK_REPORT_MAX
/// (0x100) and a task that yielded while runnable as 0; the print format in
/// every kernel since 4.14 prints "R" exactly when
/// `prev_state & (TASK_REPORT_MAX - 1) == 0` (include/trace/events/sched.h).
pub const PREV_STATE_NOT_RUNNABLE_MASK: i64 = 0xff;

#[cfg(feature = "user")]
// SAFETY: TaskState is repr(C), Copy, and every bit pattern is valid.
unsafe impl aya::Pod for TaskState {}
