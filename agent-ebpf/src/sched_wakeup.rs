//! `sched/sched_wakeup` and `sched/sched_wakeup_new`: a woken (or newly
//! created) thread becomes runnable; its run-queue wait starts now.

use agent_common::ctx as tp;
use aya_ebpf::{helpers::bpf_ktime_get_ns, macros::tracepoint, programs::TracePointContext};

use crate::{field, sched_switch::mark_runnable};

#[tracepoint]
pub fn sched_wakeup(ctx: TracePointContext) -> u32 {
    woken(field(&ctx, tp::SCHED_WAKEUP_PID))
}

#[tracepoint]
pub fn sched_wakeup_new(ctx: TracePointContext) -> u32 {
    woken(field(&ctx, tp::SCHED_WAKEUP_NEW_PID))
}

#[inline(always)]
fn woken(pid: i32) -> u32 {
    if pid != 0 {
        // SAFETY: bpf_ktime_get_ns has no preconditions.
        mark_runnable(pid as u32, unsafe { bpf_ktime_get_ns() });
    }
    0
}
