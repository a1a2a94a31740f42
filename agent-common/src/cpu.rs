//! Per-CPU busy-time accounting written by the `sched_switch` program.

/// Name of the per-CPU array map that holds one [`CpuBusy`] per CPU.
pub const CPU_BUSY_MAP: &str = "CPU_BUSY";

/// Busy (non-idle) time of one CPU, kept by the kernel program.
///
/// `last_switch_ns` is the `bpf_ktime_get_ns()` of the last context switch
/// seen on this CPU and `last_was_idle` tells whether the task switched in at
/// that moment was the idle task (pid 0). User space adds the time since the
/// last switch when the CPU is busy right now, so a CPU that spins without
/// switching still shows its time.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuBusy {
    /// Accumulated non-idle nanoseconds up to `last_switch_ns`.
    pub busy_ns: u64,
    /// Monotonic time (CLOCK_MONOTONIC, ns) of the last switch; 0 before any.
    pub last_switch_ns: u64,
    /// 1 when the task running since `last_switch_ns` is the idle task.
    pub current_is_idle: u32,
    /// Keeps the size a multiple of 8 on both sides.
    pub _pad: u32,
}

#[cfg(feature = "user")]
// SAFETY: CpuBusy is repr(C), Copy, and every bit pattern is valid.
unsafe impl aya::Pod for CpuBusy {}
