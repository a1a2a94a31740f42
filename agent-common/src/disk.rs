//! Disk IO latency: request keys, per-device histogram keys and the
//! operation a request's `rwbs` string names.

/// LRU hash map: [`RequestKey`] -> issue time (bpf_ktime_get_ns()).
pub const DISK_REQUESTS_MAP: &str = "DISK_REQUESTS";

/// Per-CPU hash map: [`DiskHistKey`] -> [`crate::hist::Log2Hist`].
pub const DISK_HIST_MAP: &str = "DISK_HIST";

/// Requests in flight tracked at once: far above any device's queue depth
/// summed over a host's disks; stale entries (requests that never complete
/// where we look) age out of the LRU map.
pub const MAX_REQUESTS: u32 = 16_384;

/// (device, operation) pairs: 64 devices of 5 operations with room to spare.
pub const MAX_DISK_KEYS: u32 = 1_024;

/// One request in flight: the tracepoints' `dev` and `sector`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RequestKey {
    /// Kernel dev_t: major << 20 | minor.
    pub dev: u32,
    /// Keeps `sector` 8-aligned on both sides.
    pub _pad: u32,
    /// First sector of the request.
    pub sector: u64,
}

/// One histogram: a device and an operation.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DiskHistKey {
    /// Kernel dev_t: major << 20 | minor.
    pub dev: u32,
    /// One of the `OP_*` constants.
    pub op: u32,
}

pub const OP_READ: u32 = 0;
pub const OP_WRITE: u32 = 1;
pub const OP_DISCARD: u32 = 2;
pub const OP_FLUSH: u32 = 3;
pub const OP_OTHER: u32 = 4;

/// Width of the minor number in a kernel dev_t (MINORBITS).
pub const MINOR_BITS: u32 = 20;

/// The operation in a block tracepoint's `rwbs` string (blk_fill_rwbs):
/// an optional leading `F` (preflush), then the operation letter `R`, `W`,
/// `D` (discard, `DE` secure erase), `F` (flush) or `N` (none), then
/// modifier letters. A lone `F`, or `F` followed by a modifier, is a flush.
#[inline(always)]
pub fn op_from_rwbs(b0: u8, b1: u8) -> u32 {
    let op = if b0 == b'F' {
        match b1 {
            b'R' | b'W' | b'D' | b'F' | b'N' => b1,
            _ => b'F',
        }
    } else {
        b0
    };
    match op {
        b'R' => OP_READ,
        b'W' => OP_WRITE,
        b'D' => OP_DISCARD,
        b'F' => OP_FLUSH,
        _ => OP_OTHER,
    }
}

/// The Prometheus `operation` label of an `OP_*` value.
pub fn op_name(op: u32) -> &'static str {
    match op {
        OP_READ => "read",
        OP_WRITE => "write",
        OP_DISCARD => "discard",
        OP_FLUSH => "flush",
        _ => "other",
    }
}

#[cfg(feature = "user")]
// SAFETY: repr(C), Copy, every bit pattern valid, padding fields explicit.
unsafe impl aya::Pod for RequestKey {}
#[cfg(feature = "user")]
// SAFETY: repr(C), Copy, every bit pattern valid.
unsafe impl aya::Pod for DiskHistKey {}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(rwbs: &str) -> &'static str {
        let b = rwbs.as_bytes();
        op_name(op_from_rwbs(
            b.first().copied().unwrap_or(0),
            b.get(1).copied().unwrap_or(0),
        ))
    }

    #[test]
    fn operations_from_real_rwbs_strings() {
        assert_eq!(op("R"), "read");
        assert_eq!(op("RA"), "read");
        assert_eq!(op("RSM"), "read");
        assert_eq!(op("W"), "write");
        assert_eq!(op("WS"), "write");
        assert_eq!(op("WFS"), "write"); // write with FUA
        assert_eq!(op("FWS"), "write"); // preflush + write
        assert_eq!(op("D"), "discard");
        assert_eq!(op("DE"), "discard");
        assert_eq!(op("F"), "flush");
        assert_eq!(op("FF"), "flush");
        assert_eq!(op("FS"), "flush");
        assert_eq!(op("N"), "other");
        assert_eq!(op(""), "other");
    }
}
