//! `block/block_rq_issue` and `block/block_rq_complete`: the latency of each
//! block request from issue to the device until completion, per device and
//! operation. Requests are keyed by the tracepoints' `dev` and `sector`.

use agent_common::{
    disk::{DiskHistKey, MAX_DISK_KEYS, MAX_REQUESTS, RWBS_READ, RequestKey, op_from_rwbs},
    hist::Log2Hist,
};
use aya_ebpf::{
    helpers::bpf_ktime_get_ns,
    macros::{map, tracepoint},
    maps::{LruHashMap, PerCpuHashMap},
    programs::TracePointContext,
};

use crate::offset;

/// Field offsets, set by the agent from the format files.
#[unsafe(no_mangle)]
static BLOCK_RQ_ISSUE_DEV_OFFSET: u32 = 0;
#[unsafe(no_mangle)]
static BLOCK_RQ_ISSUE_SECTOR_OFFSET: u32 = 0;
#[unsafe(no_mangle)]
static BLOCK_RQ_COMPLETE_DEV_OFFSET: u32 = 0;
#[unsafe(no_mangle)]
static BLOCK_RQ_COMPLETE_SECTOR_OFFSET: u32 = 0;
#[unsafe(no_mangle)]
static BLOCK_RQ_COMPLETE_RWBS_OFFSET: u32 = 0;

#[map(name = "DISK_REQUESTS")]
static DISK_REQUESTS: LruHashMap<RequestKey, u64> = LruHashMap::with_max_entries(MAX_REQUESTS, 0);

#[map(name = "DISK_HIST")]
static DISK_HIST: PerCpuHashMap<DiskHistKey, Log2Hist> =
    PerCpuHashMap::with_max_entries(MAX_DISK_KEYS, 0);

#[tracepoint]
pub fn block_rq_issue(ctx: TracePointContext) -> u32 {
    match try_issue(&ctx) {
        Ok(()) => 0,
        Err(()) => 1,
    }
}

#[tracepoint]
pub fn block_rq_complete(ctx: TracePointContext) -> u32 {
    match try_complete(&ctx) {
        Ok(()) => 0,
        Err(()) => 1,
    }
}

#[inline(always)]
fn request_key(ctx: &TracePointContext, dev: &u32, sector: &u32) -> Result<RequestKey, ()> {
    // SAFETY: the offsets come from the tracepoint's own format file.
    let dev: u32 = unsafe { ctx.read_at(offset(dev)) }.map_err(|_| ())?;
    // SAFETY: as above.
    let sector: u64 = unsafe { ctx.read_at(offset(sector)) }.map_err(|_| ())?;
    Ok(RequestKey {
        dev,
        _pad: 0,
        sector,
    })
}

fn try_issue(ctx: &TracePointContext) -> Result<(), ()> {
    let key = request_key(
        ctx,
        &BLOCK_RQ_ISSUE_DEV_OFFSET,
        &BLOCK_RQ_ISSUE_SECTOR_OFFSET,
    )?;
    // SAFETY: bpf_ktime_get_ns has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    DISK_REQUESTS.insert(key, now, 0).map_err(|_| ())
}

fn try_complete(ctx: &TracePointContext) -> Result<(), ()> {
    let key = request_key(
        ctx,
        &BLOCK_RQ_COMPLETE_DEV_OFFSET,
        &BLOCK_RQ_COMPLETE_SECTOR_OFFSET,
    )?;
    // SAFETY: reading a u64 out of the map value; a concurrent update only
    // changes the timestamp.
    let Some(issued) = (unsafe { DISK_REQUESTS.get(key) }).copied() else {
        // Issued before the program was attached, or by a partial
        // completion that moved the sector on.
        return Ok(());
    };
    let _ = DISK_REQUESTS.remove(key);
    // SAFETY: bpf_ktime_get_ns has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    // SAFETY: the offset comes from the tracepoint's own format file.
    let rwbs: [u8; RWBS_READ] =
        unsafe { ctx.read_at(offset(&BLOCK_RQ_COMPLETE_RWBS_OFFSET)) }.map_err(|_| ())?;
    let hist_key = DiskHistKey {
        dev: key.dev,
        op: op_from_rwbs(rwbs[0], rwbs[1]),
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
    // SAFETY: a per-CPU value is only touched on this CPU, and completions
    // do not nest on one CPU.
    unsafe { (*hist).record(now.saturating_sub(issued)) };
    Ok(())
}
