//! Reconnect delays: exponential with full jitter (a uniform draw below the
//! exponential bound), so a cluster of agents that lost the watchdog
//! together does not come back in one wave.

use std::time::Duration;

/// The delay schedule of one agent.
#[derive(Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
    rng: fastrand::Rng,
}

impl Backoff {
    /// Delays start below `initial` and double up to `max`.
    pub fn new(initial: Duration, max: Duration, rng: fastrand::Rng) -> Self {
        Self {
            initial,
            max: max.max(initial),
            attempt: 0,
            rng,
        }
    }

    /// The next delay.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self
            .initial
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        // Never zero: at least a tenth of the initial delay.
        ceiling.mul_f64(self.rng.f64()).max(self.initial / 10)
    }

    /// A connection worked: start from the bottom again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_with_jitter_and_resets() {
        let initial = Duration::from_millis(100);
        let max = Duration::from_secs(2);
        let mut b = Backoff::new(initial, max, fastrand::Rng::with_seed(7));
        let delays: Vec<Duration> = (0..12).map(|_| b.next_delay()).collect();
        for (i, d) in delays.iter().enumerate() {
            let ceiling = (initial * (1 << i.min(20))).min(max);
            assert!(*d <= ceiling && *d >= initial / 10, "attempt {i}: {d:?}");
        }
        assert!(
            delays[8..].iter().any(|d| *d > Duration::from_millis(400)),
            "reaches high delays: {delays:?}"
        );
        let distinct: std::collections::HashSet<_> = delays.iter().collect();
        assert!(distinct.len() > 8, "jittered: {delays:?}");
        b.reset();
        assert!(b.next_delay() <= initial);
    }
}
