//! Process exits with their status, and OOM kills, to user space through a
//! ring buffer. See agent_common::exit for how the status is learned
//! without reading kernel structs.

use agent_common::exit::{
    EVENTS_BYTES, ExitInfo, FIELD_ABSENT, HOW_EXITED, HOW_SIGNALED, HOW_UNKNOWN, KIND_EXIT,
    KIND_OOM_VICTIM, MAX_EXITING, ProcessEvent, SIGKILL, TRACE_SIGNAL_DELIVERED, fatal_by_default,
};
use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::{map, tracepoint},
    maps::{HashMap, RingBuf},
    programs::TracePointContext,
};

use crate::offset;

/// Field offsets, set by the agent from the format files. The `*_GROUP_DEAD`
/// and `MARK_VICTIM_COMM` ones are FIELD_ABSENT on kernels without them.
#[unsafe(no_mangle)]
static SCHED_PROCESS_EXIT_COMM_OFFSET: u32 = 0;
#[unsafe(no_mangle)]
static SCHED_PROCESS_EXIT_PID_OFFSET: u32 = 0;
#[unsafe(no_mangle)]
static SCHED_PROCESS_EXIT_GROUP_DEAD_OFFSET: u32 = 0;
#[unsafe(no_mangle)]
static EXIT_GROUP_ERROR_CODE_OFFSET: u32 = 0;
#[unsafe(no_mangle)]
static SIGNAL_GENERATE_SIG_OFFSET: u32 = 0;
#[unsafe(no_mangle)]
static SIGNAL_GENERATE_PID_OFFSET: u32 = 0;
#[unsafe(no_mangle)]
static SIGNAL_GENERATE_GROUP_OFFSET: u32 = 0;
#[unsafe(no_mangle)]
static SIGNAL_GENERATE_RESULT_OFFSET: u32 = 0;
#[unsafe(no_mangle)]
static SIGNAL_DELIVER_SIG_OFFSET: u32 = 0;
#[unsafe(no_mangle)]
static SIGNAL_DELIVER_SA_HANDLER_OFFSET: u32 = 0;
#[unsafe(no_mangle)]
static MARK_VICTIM_PID_OFFSET: u32 = 0;
#[unsafe(no_mangle)]
static MARK_VICTIM_COMM_OFFSET: u32 = 0;

#[map(name = "PROCESS_EVENTS")]
static PROCESS_EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_BYTES, 0);

// Plain preallocated hashes: an LRU hash insert or delete costs ~500 ns here
// against ~100 ns. Entries are keyed by process and removed when it exits,
// so they cannot pile up.
#[map(name = "EXIT_INFO")]
static EXIT_INFO: HashMap<u32, ExitInfo> = HashMap::with_max_entries(MAX_EXITING, 0);

#[map(name = "LAST_FATAL_SIGNAL")]
static LAST_FATAL_SIGNAL: HashMap<u32, u32> = HashMap::with_max_entries(MAX_EXITING, 0);

/// The calling task's process id.
#[inline(always)]
fn current_tgid() -> u32 {
    (bpf_get_current_pid_tgid() >> 32) as u32
}

/// Records how the current process ends; the first decision wins, since
/// exit_group and a fatal signal are both final and the threads the kernel
/// then kills see a SIGKILL that is not the cause.
#[inline(always)]
fn decide(how: u32, code: u32) {
    let _ = EXIT_INFO.insert(current_tgid(), ExitInfo { how, code }, BPF_NOEXIST as u64);
}

#[tracepoint]
pub fn sys_enter_exit_group(ctx: TracePointContext) -> u32 {
    // SAFETY: the offset comes from the tracepoint's own format file.
    match unsafe { ctx.read_at::<u64>(offset(&EXIT_GROUP_ERROR_CODE_OFFSET)) } {
        Ok(code) => {
            // The exit status is the low byte of the argument (exit(3)).
            decide(HOW_EXITED, (code & 0xff) as u32);
            0
        }
        Err(_) => 1,
    }
}

#[tracepoint]
pub fn signal_generate(ctx: TracePointContext) -> u32 {
    match try_signal_generate(&ctx) {
        Ok(()) => 0,
        Err(()) => 1,
    }
}

fn try_signal_generate(ctx: &TracePointContext) -> Result<(), ()> {
    // SAFETY: the offsets come from the tracepoint's own format file.
    let sig: i32 = unsafe { ctx.read_at(offset(&SIGNAL_GENERATE_SIG_OFFSET)) }.map_err(|_| ())?;
    if !fatal_by_default(sig as u32) {
        return Ok(());
    }
    // SAFETY: as above.
    let result: i32 =
        unsafe { ctx.read_at(offset(&SIGNAL_GENERATE_RESULT_OFFSET)) }.map_err(|_| ())?;
    if result != TRACE_SIGNAL_DELIVERED {
        return Ok(());
    }
    // Only signals to a whole process: then `pid` is its tgid, and the entry
    // goes when the process does. (A fatal signal sent to one thread is
    // then reported as the SIGKILL the kernel turns it into.)
    // SAFETY: as above.
    let group: i32 =
        unsafe { ctx.read_at(offset(&SIGNAL_GENERATE_GROUP_OFFSET)) }.map_err(|_| ())?;
    if group == 0 {
        return Ok(());
    }
    // SAFETY: as above.
    let pid: i32 = unsafe { ctx.read_at(offset(&SIGNAL_GENERATE_PID_OFFSET)) }.map_err(|_| ())?;
    LAST_FATAL_SIGNAL
        .insert(pid as u32, sig as u32, 0)
        .map_err(|_| ())
}

#[tracepoint]
pub fn signal_deliver(ctx: TracePointContext) -> u32 {
    match try_signal_deliver(&ctx) {
        Ok(()) => 0,
        Err(()) => 1,
    }
}

fn try_signal_deliver(ctx: &TracePointContext) -> Result<(), ()> {
    // SAFETY: the offsets come from the tracepoint's own format file.
    let sig: i32 = unsafe { ctx.read_at(offset(&SIGNAL_DELIVER_SIG_OFFSET)) }.map_err(|_| ())?;
    let sig = sig as u32;
    if !fatal_by_default(sig) {
        return Ok(());
    }
    // SAFETY: as above.
    let handler: u64 =
        unsafe { ctx.read_at(offset(&SIGNAL_DELIVER_SA_HANDLER_OFFSET)) }.map_err(|_| ())?;
    // SIG_DFL is 0: only the default action ends the process.
    if handler != 0 {
        return Ok(());
    }
    let cause = if sig == SIGKILL {
        // SAFETY: reading a u32 value.
        unsafe { LAST_FATAL_SIGNAL.get(current_tgid()) }
            .copied()
            .unwrap_or(SIGKILL)
    } else {
        sig
    };
    decide(HOW_SIGNALED, cause);
    Ok(())
}

#[tracepoint]
pub fn sched_process_exec(_ctx: TracePointContext) -> u32 {
    // exec kills the other threads with SIGKILL (de_thread), which their
    // signal_deliver took for the process's end; the process lives on.
    // The last fatal signal stays: it came for the process (a group
    // signal), and one that arrived during the exec still kills the new
    // image.
    let tgid = current_tgid();
    if EXIT_INFO.get_ptr(tgid).is_some() {
        let _ = EXIT_INFO.remove(tgid);
    }
    0
}

/// Drops what is known about process `tgid` once it is gone; a lookup
/// first, since most processes have nothing and a delete costs more.
#[inline(always)]
fn forget(tgid: u32) {
    if EXIT_INFO.get_ptr(tgid).is_some() {
        let _ = EXIT_INFO.remove(tgid);
    }
    if LAST_FATAL_SIGNAL.get_ptr(tgid).is_some() {
        let _ = LAST_FATAL_SIGNAL.remove(tgid);
    }
}

#[tracepoint]
pub fn sched_process_exit(ctx: TracePointContext) -> u32 {
    match try_process_exit(&ctx) {
        Ok(()) => 0,
        Err(()) => 1,
    }
}

fn try_process_exit(ctx: &TracePointContext) -> Result<(), ()> {
    let tgid = current_tgid();
    let group_dead_offset = offset(&SCHED_PROCESS_EXIT_GROUP_DEAD_OFFSET);
    let last_thread = if group_dead_offset == FIELD_ABSENT as usize {
        // Without `group_dead`, the thread-group leader's exit stands for
        // the process's (see the agent's docs for the limits).
        // SAFETY: the offset comes from the tracepoint's own format file.
        let pid: i32 =
            unsafe { ctx.read_at(offset(&SCHED_PROCESS_EXIT_PID_OFFSET)) }.map_err(|_| ())?;
        pid as u32 == tgid
    } else {
        // SAFETY: as above.
        let dead: u8 = unsafe { ctx.read_at(group_dead_offset) }.map_err(|_| ())?;
        dead != 0
    };
    if !last_thread {
        return Ok(());
    }
    // SAFETY: reading a plain value.
    let info = unsafe { EXIT_INFO.get(tgid) }.copied().unwrap_or(ExitInfo {
        how: HOW_UNKNOWN,
        code: 0,
    });
    forget(tgid);
    // SAFETY: as above.
    let comm: [u8; 16] =
        unsafe { ctx.read_at(offset(&SCHED_PROCESS_EXIT_COMM_OFFSET)) }.map_err(|_| ())?;
    send(ProcessEvent {
        // SAFETY: no preconditions.
        ts_ns: unsafe { bpf_ktime_get_ns() },
        kind: KIND_EXIT,
        how: info.how,
        pid: tgid,
        code: info.code,
        comm,
    })
}

#[tracepoint]
pub fn mark_victim(ctx: TracePointContext) -> u32 {
    match try_mark_victim(&ctx) {
        Ok(()) => 0,
        Err(()) => 1,
    }
}

fn try_mark_victim(ctx: &TracePointContext) -> Result<(), ()> {
    // SAFETY: the offsets come from the tracepoint's own format file.
    let pid: i32 = unsafe { ctx.read_at(offset(&MARK_VICTIM_PID_OFFSET)) }.map_err(|_| ())?;
    let mut comm = [0u8; 16];
    let comm_offset = offset(&MARK_VICTIM_COMM_OFFSET);
    if comm_offset != FIELD_ABSENT as usize {
        // A __data_loc field: the low 16 bits are the string's offset in the
        // record, the high 16 bits its length.
        // SAFETY: as above.
        let loc: u32 = unsafe { ctx.read_at(comm_offset) }.map_err(|_| ())?;
        // SAFETY: the kernel wrote the string at that offset of the record.
        comm = unsafe { ctx.read_at((loc & 0xffff) as usize) }.unwrap_or([0; 16]);
    }
    send(ProcessEvent {
        // SAFETY: no preconditions.
        ts_ns: unsafe { bpf_ktime_get_ns() },
        kind: KIND_OOM_VICTIM,
        how: HOW_SIGNALED,
        pid: pid as u32,
        code: SIGKILL,
        comm,
    })
}

/// Queues an event without waking the reader: the wakeup is a self-IPI,
/// ~14 µs in a nested VM (a 10x dearer program), so the agent polls the
/// ring instead (agent exits.rs). A full ring drops the event and the
/// program's run reports failure.
#[inline(always)]
fn send(event: ProcessEvent) -> Result<(), ()> {
    PROCESS_EVENTS
        .output::<ProcessEvent>(&event, aya_ebpf::bindings::BPF_RB_NO_WAKEUP as u64)
        .map_err(|_| ())
}
