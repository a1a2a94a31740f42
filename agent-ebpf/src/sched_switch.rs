//! `sched/sched_switch`: each CPU's busy (non-idle) time, and the run-queue
//! latency of the thread switched in (host-wide and per VM).
//!
//! A thread's wait starts when it becomes runnable: woken (see
//! [`crate::sched_wakeup`]) or switched out while still runnable
//! (preempted or yielding), which this program records for `prev`.
//! This runs on every context switch, so it makes one helper call
//! (bpf_ktime_get_ns) and otherwise only inlined array lookups and direct
//! field loads.

use agent_common::{
    cpu::CpuBusy,
    ctx as tp,
    hist::Log2Hist,
    runq::{
        HOST_HIST, NO_VM, PREV_STATE_NOT_RUNNABLE_MASK, RUNQ_HIST_ENTRIES, TASK_SLOT_MASK,
        TASK_SLOTS, TaskState, VM_HIST_BASE, VmTask,
    },
};
use aya_ebpf::{
    helpers::bpf_ktime_get_ns,
    macros::{map, tracepoint},
    maps::{Array, PerCpuArray},
    programs::TracePointContext,
};

use crate::field;

#[map(name = "CPU_BUSY")]
static CPU_BUSY: PerCpuArray<CpuBusy> = PerCpuArray::with_max_entries(1, 0);

/// Written by the wakeup programs and this one.
#[map(name = "TASKS")]
static TASKS: Array<TaskState> = Array::with_max_entries(TASK_SLOTS, 0);

/// Written by the agent: VM slots of VM threads.
#[map(name = "VM_TASKS")]
static VM_TASKS: Array<VmTask> = Array::with_max_entries(TASK_SLOTS, 0);

#[map(name = "RUNQ_HIST")]
static RUNQ_HIST: PerCpuArray<Log2Hist> = PerCpuArray::with_max_entries(RUNQ_HIST_ENTRIES, 0);

#[tracepoint]
pub fn sched_switch(ctx: TracePointContext) -> u32 {
    let next_pid: i32 = field(&ctx, tp::SCHED_SWITCH_NEXT_PID);
    // SAFETY: bpf_ktime_get_ns has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    account_busy(now, next_pid == 0);

    let prev_state: i64 = field(&ctx, tp::SCHED_SWITCH_PREV_STATE);
    if prev_state & PREV_STATE_NOT_RUNNABLE_MASK == 0 {
        let prev_pid: i32 = field(&ctx, tp::SCHED_SWITCH_PREV_PID);
        if prev_pid != 0 {
            mark_runnable(prev_pid as u32, now);
        }
    }
    if next_pid != 0 {
        record_wait(next_pid as u32, now);
    }
    0
}

#[inline(always)]
fn account_busy(now: u64, next_is_idle: bool) {
    let Some(slot) = CPU_BUSY.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: a per-CPU slot is only touched by programs on this CPU, and
    // tracepoint programs do not nest on one CPU.
    let busy = unsafe { &mut *slot };
    if busy.last_switch_ns != 0 && busy.current_is_idle == 0 {
        busy.busy_ns += now.saturating_sub(busy.last_switch_ns);
    }
    busy.last_switch_ns = now;
    busy.current_is_idle = u32::from(next_is_idle);
}

/// Starts the wait of a thread that became runnable at `now`.
#[inline(always)]
pub fn mark_runnable(tid: u32, now: u64) {
    if let Some(task) = TASKS.get_ptr_mut(tid & TASK_SLOT_MASK) {
        // SAFETY: an array value pointer is valid while the program runs.
        // The stamp is written before the tag, so a reader on another CPU
        // that sees this tid also sees this stamp (x86 and arm64 keep
        // store order for the JIT's plain stores as seen by this pairing
        // well enough: a torn pair only loses or skews one sample).
        unsafe {
            core::ptr::write_volatile(&raw mut (*task).enqueued_ns, now);
            core::ptr::write_volatile(&raw mut (*task).tid, tid);
        }
    }
}

/// Ends the wait of the thread switched in and records it.
#[inline(always)]
fn record_wait(tid: u32, now: u64) {
    let slot = tid & TASK_SLOT_MASK;
    let Some(task) = TASKS.get_ptr_mut(slot) else {
        return;
    };
    // SAFETY: see mark_runnable.
    let (owner, since) = unsafe {
        (
            core::ptr::read_volatile(&raw const (*task).tid),
            core::ptr::read_volatile(&raw const (*task).enqueued_ns),
        )
    };
    if owner != tid || since == 0 || since > now {
        return;
    }
    // SAFETY: as above.
    unsafe { core::ptr::write_volatile(&raw mut (*task).enqueued_ns, 0) };
    let waited = now - since;
    add(HOST_HIST, waited);
    if let Some(vm) = VM_TASKS.get(slot)
        && vm.tid == tid
        && vm.vm_slot != NO_VM
    {
        add(VM_HIST_BASE + vm.vm_slot, waited);
    }
}

#[inline(always)]
fn add(index: u32, ns: u64) {
    if let Some(hist) = RUNQ_HIST.get_ptr_mut(index) {
        // SAFETY: per-CPU slot, see account_busy.
        unsafe { (*hist).record(ns) };
    }
}

/// Does nothing: attached only for benchmarks (`[ebpf] attach_noop_baseline`)
/// to measure what any program on sched_switch costs (the tracepoint's
/// dispatch and the kernel's statistics), beside the real one.
#[tracepoint]
pub fn sched_switch_noop(_ctx: TracePointContext) -> u32 {
    0
}
