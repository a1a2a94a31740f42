//! `sched/sched_switch`: accumulates each CPU's busy (non-idle) time.

use agent_common::cpu::CpuBusy;
use aya_ebpf::{
    helpers::bpf_ktime_get_ns,
    macros::{map, tracepoint},
    maps::PerCpuArray,
    programs::TracePointContext,
};

/// Offset of `next_pid` in the tracepoint record; set by the agent from
/// `events/sched/sched_switch/format` before load.
#[unsafe(no_mangle)]
static SCHED_SWITCH_NEXT_PID_OFFSET: u32 = 0;

#[map(name = "CPU_BUSY")]
static CPU_BUSY: PerCpuArray<CpuBusy> = PerCpuArray::with_max_entries(1, 0);

#[tracepoint]
pub fn sched_switch(ctx: TracePointContext) -> u32 {
    match try_sched_switch(&ctx) {
        Ok(()) => 0,
        Err(()) => 1,
    }
}

fn try_sched_switch(ctx: &TracePointContext) -> Result<(), ()> {
    // SAFETY: a plain read of a global the loader initialised.
    let offset = unsafe { core::ptr::read_volatile(&SCHED_SWITCH_NEXT_PID_OFFSET) } as usize;
    // SAFETY: the offset comes from the tracepoint's own format file.
    let next_pid: i32 = unsafe { ctx.read_at(offset) }.map_err(|_| ())?;
    // SAFETY: bpf_ktime_get_ns has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    let slot = CPU_BUSY.get_ptr_mut(0).ok_or(())?;
    // SAFETY: a per-CPU slot is only touched by programs on this CPU, and
    // sched_switch does not nest on one CPU.
    let busy = unsafe { &mut *slot };
    if busy.last_switch_ns != 0 && busy.current_is_idle == 0 {
        busy.busy_ns += now.saturating_sub(busy.last_switch_ns);
    }
    busy.last_switch_ns = now;
    busy.current_is_idle = u32::from(next_pid == 0);
    Ok(())
}
