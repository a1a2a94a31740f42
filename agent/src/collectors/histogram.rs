//! Turns a kernel log2 histogram into a metric histogram value in seconds.

use agent_common::hist::{FINITE_BUCKETS, Log2Hist, bucket_upper_seconds};

use crate::metrics::Value;

/// The histogram with `le` bounds 1 µs .. 2^26 µs and `+Inf`.
pub fn seconds(hist: &Log2Hist) -> Value {
    let mut buckets: Vec<(f64, u64)> = (0..FINITE_BUCKETS)
        .map(|i| (bucket_upper_seconds(i), hist.buckets[i]))
        .collect();
    buckets.push((f64::INFINITY, hist.buckets[FINITE_BUCKETS]));
    Value::Histogram {
        buckets,
        count: hist.count(),
        sum: hist.sum_ns as f64 / 1e9,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_count_and_sum_in_seconds() {
        let mut h = Log2Hist::default();
        h.record(1_500); // 2 µs bucket
        h.record(100_000_000_000); // 100 s: overflow
        let Value::Histogram {
            buckets,
            count,
            sum,
        } = seconds(&h)
        else {
            panic!("not a histogram")
        };
        assert_eq!(buckets.len(), 28);
        assert_eq!(buckets[0], (1e-6, 0));
        assert_eq!(buckets[1], (2e-6, 1));
        assert_eq!(buckets[27], (f64::INFINITY, 1));
        assert_eq!(count, 2);
        assert!((sum - 100.0000015).abs() < 1e-9);
    }
}
