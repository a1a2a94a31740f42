//! Placeholders for the hot programs' direct tracepoint-field loads.
//!
//! A helper call costs tens of nanoseconds (bpf_probe_read_kernel: ~50 ns
//! on an EPYC guest with the SRSO safe-RET mitigation), so the programs that
//! run on every context switch, wakeup and block request load their fields
//! straight from the tracepoint record. The verifier allows that only at
//! offsets fixed in the instruction, so the programs are compiled with these
//! placeholders as offsets and the agent rewrites them with the offsets read
//! from tracefs format files before loading (a field relocation, as libbpf's
//! CO-RE does from BTF). A placeholder left unpatched lies far beyond any
//! tracepoint record (PERF_MAX_TRACE_SIZE is 2048), so the verifier rejects
//! the program rather than let it read the wrong bytes.

/// First placeholder.
const BASE: i16 = 0x7000;
/// Distance between placeholders: a field read as several loads (an 8-byte
/// array) keeps its loads within its own window.
const STRIDE: i16 = 0x20;

pub const SCHED_SWITCH_PREV_PID: i16 = BASE;
pub const SCHED_SWITCH_PREV_STATE: i16 = BASE + STRIDE;
pub const SCHED_SWITCH_NEXT_PID: i16 = BASE + 2 * STRIDE;
pub const SCHED_WAKEUP_PID: i16 = BASE + 3 * STRIDE;
pub const SCHED_WAKEUP_NEW_PID: i16 = BASE + 4 * STRIDE;
pub const BLOCK_RQ_ISSUE_DEV: i16 = BASE + 5 * STRIDE;
pub const BLOCK_RQ_ISSUE_SECTOR: i16 = BASE + 6 * STRIDE;
pub const BLOCK_RQ_COMPLETE_DEV: i16 = BASE + 7 * STRIDE;
pub const BLOCK_RQ_COMPLETE_SECTOR: i16 = BASE + 8 * STRIDE;
pub const BLOCK_RQ_COMPLETE_RWBS: i16 = BASE + 9 * STRIDE;
