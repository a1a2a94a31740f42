//! `sched/sched_wakeup` and `sched/sched_wakeup_new`: a woken (or newly
//! created) thread becomes runnable; its run-queue wait starts now.

use aya_ebpf::{helpers::bpf_ktime_get_ns, macros::tracepoint, programs::TracePointContext};

use crate::{offset, sched_switch::mark_runnable};

/// Offset of `pid` in each record; set by the agent from the format files.
#[unsafe(no_mangle)]
static SCHED_WAKEUP_PID_OFFSET: u32 = 0;
#[unsafe(no_mangle)]
static SCHED_WAKEUP_NEW_PID_OFFSET: u32 = 0;

#[tracepoint]
pub fn sched_wakeup(ctx: TracePointContext) -> u32 {
    woken(&ctx, offset(&SCHED_WAKEUP_PID_OFFSET))
}

#[tracepoint]
pub fn sched_wakeup_new(ctx: TracePointContext) -> u32 {
    woken(&ctx, offset(&SCHED_WAKEUP_NEW_PID_OFFSET))
}

#[inline(always)]
fn woken(ctx: &TracePointContext, pid_offset: usize) -> u32 {
    // SAFETY: the offset comes from the tracepoint's own format file.
    let Ok(pid) = (unsafe { ctx.read_at::<i32>(pid_offset) }) else {
        return 1;
    };
    if pid != 0 {
        // SAFETY: bpf_ktime_get_ns has no preconditions.
        mark_runnable(pid as u32, unsafe { bpf_ktime_get_ns() });
    }
    0
}
