//! Log2 latency histograms kept by the kernel programs: the bucket layout
//! and the bucket function, shared so both sides agree on every bound.

/// Finite buckets: upper bounds 1 µs, 2 µs, 4 µs ... 2^26 µs (about 67 s),
/// the range issue 4 asks for.
pub const FINITE_BUCKETS: usize = 27;

/// All buckets: the finite ones and the overflow bucket (`+Inf`).
pub const HIST_BUCKETS: usize = FINITE_BUCKETS + 1;

/// Nanoseconds in a microsecond, the unit of the first bucket.
const NS_PER_US: u64 = 1_000;

/// A latency histogram as a kernel program fills it (one per CPU in
/// per-CPU maps; user space adds the CPUs up).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Log2Hist {
    /// Observations per bucket (not cumulative); bucket `i` holds latencies
    /// in (2^(i-1) µs, 2^i µs], the last one everything above 2^26 µs.
    pub buckets: [u64; HIST_BUCKETS],
    /// Sum of all observed latencies, nanoseconds.
    pub sum_ns: u64,
}

impl Default for Log2Hist {
    fn default() -> Self {
        Self {
            buckets: [0; HIST_BUCKETS],
            sum_ns: 0,
        }
    }
}

impl Log2Hist {
    /// Records one latency.
    #[inline(always)]
    pub fn record(&mut self, ns: u64) {
        let i = bucket_index(ns);
        // The index is clamped below HIST_BUCKETS; `get_mut` keeps the
        // verifier (and clippy) free of an unchecked index.
        if let Some(b) = self.buckets.get_mut(i) {
            *b += 1;
        }
        self.sum_ns += ns;
    }

    /// Adds another histogram (another CPU's) into this one.
    pub fn merge(&mut self, other: &Log2Hist) {
        for (a, b) in self.buckets.iter_mut().zip(other.buckets.iter()) {
            *a += b;
        }
        self.sum_ns += other.sum_ns;
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }
}

/// Upper bound of finite bucket `i` in seconds: 2^i µs.
pub fn bucket_upper_seconds(i: usize) -> f64 {
    (1u64 << i) as f64 * 1e-6
}

/// The bucket of a latency: the smallest `i` with `ns <= 2^i µs`, or the
/// overflow bucket.
#[inline(always)]
pub fn bucket_index(ns: u64) -> usize {
    let us = ns.div_ceil(NS_PER_US);
    if us <= 1 {
        return 0;
    }
    // ceil(log2(us)) = floor(log2(us - 1)) + 1 for us >= 2.
    let i = log2_floor(us - 1) as usize + 1;
    if i > FINITE_BUCKETS {
        FINITE_BUCKETS
    } else {
        i
    }
}

/// floor(log2(v)) for v > 0, by binary search on the bit width: BPF has no
/// count-leading-zeros instruction, and this stays loop-free (as bcc's
/// `log2l` does).
#[inline(always)]
pub fn log2_floor(mut v: u64) -> u32 {
    let mut r = 0;
    for shift in [32u32, 16, 8, 4, 2, 1] {
        if v >> shift != 0 {
            v >>= shift;
            r += shift;
        }
    }
    r
}

#[cfg(feature = "user")]
// SAFETY: Log2Hist is repr(C), Copy, and every bit pattern is valid.
unsafe impl aya::Pod for Log2Hist {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log2_matches_leading_zeros() {
        for v in (1u64..5000).chain([u64::MAX, 1 << 40, (1 << 40) + 1]) {
            assert_eq!(log2_floor(v), 63 - v.leading_zeros(), "v={v}");
        }
    }

    #[test]
    fn bounds_are_inclusive_upper_bounds_in_microseconds() {
        assert_eq!(bucket_index(0), 0);
        assert_eq!(bucket_index(1_000), 0);
        assert_eq!(bucket_index(1_001), 1);
        assert_eq!(bucket_index(2_000), 1);
        assert_eq!(bucket_index(2_001), 2);
        assert_eq!(bucket_index(4_000), 2);
        assert_eq!(bucket_index(1_000_000), 10); // 1 ms <= 1024 µs
        assert_eq!(bucket_index((1 << 26) * 1_000), 26);
        assert_eq!(bucket_index((1 << 26) * 1_000 + 1), FINITE_BUCKETS);
        assert_eq!(bucket_index(u64::MAX), FINITE_BUCKETS);
        assert!((bucket_upper_seconds(26) - 67.108864).abs() < 1e-9);
    }

    #[test]
    fn record_and_merge_keep_count_and_sum() {
        let mut a = Log2Hist::default();
        a.record(500);
        a.record(3_000);
        let mut b = Log2Hist::default();
        b.record(3_500);
        a.merge(&b);
        assert_eq!(a.count(), 3);
        assert_eq!(a.sum_ns, 7_000);
        assert_eq!(a.buckets[0], 1);
        assert_eq!(a.buckets[2], 2);
    }
}
