//! `block/block_rq_issue` and `block/block_rq_complete`: the latency of each
//! block request from issue to the device until completion, per device and
//! operation. Requests are keyed by the tracepoints' `dev` and `sector`.

use agent_common::{
    ctx as tp,
    disk::{DiskHistKey, MAX_DISK_KEYS, MAX_REQUESTS, RequestKey, op_from_rwbs},
    hist::Log2Hist,
};
use aya_ebpf::{
    helpers::bpf_ktime_get_ns,
    macros::{map, tracepoint},
    maps::{LruHashMap, PerCpuHashMap},
    programs::TracePointContext,
};

use crate::field;

#[map(name = "DISK_REQUESTS")]
static DISK_REQUESTS: LruHashMap<RequestKey, u64> = LruHashMap::with_max_entries(MAX_REQUESTS, 0);

#[map(name = "DISK_HIST")]
static DISK_HIST: PerCpuHashMap<DiskHistKey, Log2Hist> =
    PerCpuHashMap::with_max_entries(MAX_DISK_KEYS, 0);

#[tracepoint]
pub fn block_rq_issue(ctx: TracePointContext) -> u32 {
    let key = RequestKey {
        dev: field(&ctx, tp::BLOCK_RQ_ISSUE_DEV),
        _pad: 0,
        sector: field(&ctx, tp::BLOCK_RQ_ISSUE_SECTOR),
    };
    // SAFETY: bpf_ktime_get_ns has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    match DISK_REQUESTS.insert(key, now, 0) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

#[tracepoint]
pub fn block_rq_complete(ctx: TracePointContext) -> u32 {
    match try_complete(&ctx) {
        Ok(()) => 0,
        Err(()) => 1,
    }
}

fn try_complete(ctx: &TracePointContext) -> Result<(), ()> {
    let key = RequestKey {
        dev: field(ctx, tp::BLOCK_RQ_COMPLETE_DEV),
        _pad: 0,
        sector: field(ctx, tp::BLOCK_RQ_COMPLETE_SECTOR),
    };
    // SAFETY: reading a u64 out of the map value; a concurrent update only
    // changes the timestamp.
    let Some(issued) = (unsafe { DISK_REQUESTS.get(key) }).copied() else {
        // Issued before the program was attached, or a later partial
        // completion that moved the sector on.
        return Ok(());
    };
    let _ = DISK_REQUESTS.remove(key);
    // SAFETY: bpf_ktime_get_ns has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    // The operation letters are rwbs[0] and rwbs[1], loaded bytewise (the
    // array may sit at any offset).
    let hist_key = DiskHistKey {
        dev: key.dev,
        op: op_from_rwbs(
            field(ctx, tp::BLOCK_RQ_COMPLETE_RWBS),
            field(ctx, tp::BLOCK_RQ_COMPLETE_RWBS + 1),
        ),
    };
    let hist = match DISK_HIST.get_ptr_mut(hist_key) {
        Some(h) => h,
        None => {
            DISK_HIST
                .insert(hist_key, Log2Hist::default(), 0)
                .map_err(|_| ())?;
            DISK_HIST.get_ptr_mut(hist_key).ok_or(())?
        }
    };
    // SAFETY: a per-CPU value is only touched on this CPU, and tracepoint
    // programs do not nest on one CPU.
    unsafe { (*hist).record(now.saturating_sub(issued)) };
    Ok(())
}
