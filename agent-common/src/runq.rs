//! Run-queue latency: the per-task state the scheduler programs keep and the
//! histogram maps they fill.

/// Array of [`TaskState`], indexed by `tid & TASK_SLOT_MASK`: a
/// direct-mapped table. An array lookup is inlined by the verifier (no
/// helper call), which a hash lookup is not; two threads sharing a slot
/// only matters while both wait at once, and the `tid` tag keeps one from
/// being charged with the other's wait.
pub const TASKS_MAP: &str = "TASKS";

/// Array of [`VmTask`] (same indexing), written by the agent only: the VM
/// slot of each thread of a VM's qemu process.
pub const VM_TASKS_MAP: &str = "VM_TASKS";

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

/// Slots of `TASKS` and `VM_TASKS` (1 MiB and 512 KiB). Only threads
/// waiting at the same instant compete for a slot, a handful per CPU.
pub const TASK_SLOTS: u32 = 1 << 16;

/// `tid & TASK_SLOT_MASK` is a thread's slot.
pub const TASK_SLOT_MASK: u32 = TASK_SLOTS - 1;

/// `vm_slot` of a thread that belongs to no VM.
pub const NO_VM: u32 = u32::MAX;

/// The scheduler programs' record of the thread in one slot.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskState {
    /// bpf_ktime_get_ns() when the thread became runnable (woken, or
    /// switched out while runnable); 0 once it ran.
    pub enqueued_ns: u64,
    /// The thread the stamp belongs to.
    pub tid: u32,
    /// Keeps the size a multiple of 8 on both sides.
    pub _pad: u32,
}

/// The agent's tag of the thread in one slot.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmTask {
    /// The tagged thread; 0 for an empty slot.
    pub tid: u32,
    /// Its VM's slot, or [`NO_VM`].
    pub vm_slot: u32,
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
#[cfg(feature = "user")]
// SAFETY: VmTask is repr(C), Copy, and every bit pattern is valid.
unsafe impl aya::Pod for VmTask {}
