//! `sched/sched_switch`: each CPU's busy (non-idle) time, and the run-queue
//! latency of the thread switched in (host-wide and per VM).
//!
//! A thread's wait starts when it becomes runnable: woken (see
//! [`crate::sched_wakeup`]) or switched out while still runnable
//! (preempted or yielding), which this program records for `prev`.

use agent_common::{
    cpu::CpuBusy,
    hist::Log2Hist,
    runq::{
        HOST_HIST, MAX_TASKS, NO_VM, PREV_STATE_NOT_RUNNABLE_MASK, RUNQ_HIST_ENTRIES, TaskState,
        VM_HIST_BASE,
    },
};
use aya_ebpf::{
    helpers::bpf_ktime_get_ns,
    macros::{map, tracepoint},
    maps::{LruHashMap, PerCpuArray},
    programs::TracePointContext,
};

use crate::offset;

/// Offsets of `prev_pid`, `prev_state` and `next_pid` in the tracepoint
/// record; set by the agent from `events/sched/sched_switch/format`.
#[unsafe(no_mangle)]
static SCHED_SWITCH_PREV_PID_OFFSET: u32 = 0;
#[unsafe(no_mangle)]
static SCHED_SWITCH_PREV_STATE_OFFSET: u32 = 0;
#[unsafe(no_mangle)]
static SCHED_SWITCH_NEXT_PID_OFFSET: u32 = 0;

#[map(name = "CPU_BUSY")]
static CPU_BUSY: PerCpuArray<CpuBusy> = PerCpuArray::with_max_entries(1, 0);

/// Shared with the wakeup programs and written by the agent (VM slots).
#[map(name = "TASKS")]
pub static TASKS: LruHashMap<u32, TaskState> = LruHashMap::with_max_entries(MAX_TASKS, 0);

#[map(name = "RUNQ_HIST")]
static RUNQ_HIST: PerCpuArray<Log2Hist> = PerCpuArray::with_max_entries(RUNQ_HIST_ENTRIES, 0);

#[tracepoint]
pub fn sched_switch(ctx: TracePointContext) -> u32 {
    match try_sched_switch(&ctx) {
        Ok(()) => 0,
        Err(()) => 1,
    }
}

fn try_sched_switch(ctx: &TracePointContext) -> Result<(), ()> {
    // SAFETY: the offsets come from the tracepoint's own format file.
    let next_pid: i32 =
        unsafe { ctx.read_at(offset(&SCHED_SWITCH_NEXT_PID_OFFSET)) }.map_err(|_| ())?;
    // SAFETY: bpf_ktime_get_ns has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    account_busy(now, next_pid == 0)?;

    // SAFETY: as above.
    let prev_state: i64 =
        unsafe { ctx.read_at(offset(&SCHED_SWITCH_PREV_STATE_OFFSET)) }.map_err(|_| ())?;
    if prev_state & PREV_STATE_NOT_RUNNABLE_MASK == 0 {
        // SAFETY: as above.
        let prev_pid: i32 =
            unsafe { ctx.read_at(offset(&SCHED_SWITCH_PREV_PID_OFFSET)) }.map_err(|_| ())?;
        if prev_pid != 0 {
            mark_runnable(prev_pid as u32, now);
        }
    }
    if next_pid != 0 {
        record_wait(next_pid as u32, now);
    }
    Ok(())
}

fn account_busy(now: u64, next_is_idle: bool) -> Result<(), ()> {
    let slot = CPU_BUSY.get_ptr_mut(0).ok_or(())?;
    // SAFETY: a per-CPU slot is only touched by programs on this CPU, and
    // sched_switch does not nest on one CPU.
    let busy = unsafe { &mut *slot };
    if busy.last_switch_ns != 0 && busy.current_is_idle == 0 {
        busy.busy_ns += now.saturating_sub(busy.last_switch_ns);
    }
    busy.last_switch_ns = now;
    busy.current_is_idle = u32::from(next_is_idle);
    Ok(())
}

/// Starts the wait of a thread that became runnable at `now`.
#[inline(always)]
pub fn mark_runnable(tid: u32, now: u64) {
    match TASKS.get_ptr_mut(tid) {
        // SAFETY: an LRU value pointer stays valid during the program; a
        // racing writer can only store another timestamp, which is benign.
        Some(task) => unsafe { (*task).enqueued_ns = now },
        None => {
            let fresh = TaskState {
                enqueued_ns: now,
                vm_slot: NO_VM,
                _pad: 0,
            };
            // A full map evicts its least recently used entry; a failure
            // only loses this one sample.
            let _ = TASKS.insert(tid, fresh, 0);
        }
    }
}

/// Ends the wait of the thread switched in and records it.
#[inline(always)]
fn record_wait(tid: u32, now: u64) {
    let Some(task) = TASKS.get_ptr_mut(tid) else {
        return;
    };
    // SAFETY: see mark_runnable.
    let task = unsafe { &mut *task };
    let since = task.enqueued_ns;
    if since == 0 || since > now {
        return;
    }
    task.enqueued_ns = 0;
    let waited = now - since;
    add(HOST_HIST, waited);
    if task.vm_slot != NO_VM {
        add(VM_HIST_BASE + task.vm_slot, waited);
    }
}

#[inline(always)]
fn add(index: u32, ns: u64) {
    if let Some(hist) = RUNQ_HIST.get_ptr_mut(index) {
        // SAFETY: per-CPU slot, see account_busy.
        unsafe { (*hist).record(ns) };
    }
}
