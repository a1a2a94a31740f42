//! Turning a window of usage samples into one figure: a percentile, so that
//! a single spike in the window moves nothing.

/// The nearest-rank `p`-percentile (0 < p <= 1) of `samples`, or `None`
/// when there are none. With the default p = 0.9 and a window of ten or
/// more samples, the single highest sample never decides.
pub fn percentile<T: Copy + Default + PartialOrd>(samples: &[T], p: f64) -> Option<T> {
    let n = samples.len();
    if n == 0 {
        return None;
    }
    // Nearest rank: the smallest value with at least p of the samples at or
    // below it.
    let rank = ((p * n as f64).ceil() as usize).clamp(1, n) - 1;
    // Windows are short; selecting on a stack copy spares an allocation per
    // VM on large clusters.
    let mut small = [T::default(); SMALL_WINDOW];
    let mut large = Vec::new();
    let copy: &mut [T] = if n <= SMALL_WINDOW {
        small[..n].copy_from_slice(samples);
        &mut small[..n]
    } else {
        large.extend_from_slice(samples);
        &mut large
    };
    let order = |a: &T, b: &T| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal);
    Some(*copy.select_nth_unstable_by(rank, order).1)
}

/// Windows up to this many samples are copied on the stack (an hour of
/// minute samples).
const SMALL_WINDOW: usize = 64;

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn one_spike_in_ten_samples_is_not_the_p90() {
        let samples = [1.0, 1.1, 0.9, 1.0, 9.0, 1.2, 1.0, 0.8, 1.1, 1.0];
        assert_eq!(percentile(&samples, 0.9), Some(1.2));
        assert_eq!(percentile(&samples, 1.0), Some(9.0));
    }

    #[test]
    fn nearest_rank_on_small_windows() {
        assert_eq!(percentile(&[3u64], 0.9), Some(3));
        assert_eq!(percentile(&[1u64, 2, 3, 4], 0.5), Some(2));
        assert_eq!(percentile(&[4u64, 3, 2, 1], 0.51), Some(3));
        assert_eq!(percentile::<f64>(&[], 0.9), None);
    }
}
