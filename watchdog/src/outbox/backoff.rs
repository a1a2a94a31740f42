//! When to try again: exponential backoff with jitter, never past the
//! delivery's deadline. Pure: the random part is an argument.

use std::time::Duration;

use crate::channels::config::DeliverySettings;

/// The delay before attempt `attempts + 1`, after `attempts` failures:
/// `initial_backoff * 2^(attempts-1)`, capped at `max_backoff`, then "equal
/// jitter" (half fixed, half random, `unit` in [0, 1)) so that many
/// deliveries failing together do not retry in lockstep, while the delay
/// never drops below half its nominal value.
pub fn delay(settings: &DeliverySettings, attempts: u32, unit: f64) -> Duration {
    let exponent = attempts.saturating_sub(1).min(32);
    let nominal = settings
        .initial_backoff
        .saturating_mul(1u32 << exponent.min(31))
        .min(settings.max_backoff);
    let half = nominal / 2;
    half + half.mul_f64(unit.clamp(0.0, 1.0))
}

/// What to do after a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Try again at this time (Unix milliseconds).
    RetryAt(i64),
    /// The bound on total time is reached: escalate the failure.
    GiveUp,
}

/// Decides the next step after failure number `attempts` at `now_ms` of a
/// delivery recorded at `enqueued_ms`. `at_least` is a delay the receiver
/// asked for (HTTP Retry-After). The last retry is placed at the deadline,
/// so the bound is used fully and never exceeded.
pub fn next(
    settings: &DeliverySettings,
    attempts: u32,
    enqueued_ms: i64,
    now_ms: i64,
    at_least: Option<Duration>,
    unit: f64,
) -> Next {
    let deadline = enqueued_ms.saturating_add(millis(settings.give_up_after));
    if now_ms >= deadline {
        return Next::GiveUp;
    }
    let wait = delay(settings, attempts, unit).max(at_least.unwrap_or_default());
    Next::RetryAt(now_ms.saturating_add(millis(wait)).min(deadline))
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> DeliverySettings {
        DeliverySettings {
            initial_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(60),
            give_up_after: Duration::from_secs(600),
            ..Default::default()
        }
    }

    #[test]
    fn doubles_up_to_the_cap_with_bounded_jitter() {
        let s = settings();
        assert_eq!(delay(&s, 1, 0.0), Duration::from_secs(1));
        assert_eq!(delay(&s, 1, 1.0), Duration::from_secs(2));
        assert_eq!(delay(&s, 3, 1.0), Duration::from_secs(8));
        assert_eq!(delay(&s, 10, 1.0), Duration::from_secs(60));
        assert_eq!(delay(&s, 10, 0.0), Duration::from_secs(30));
        assert_eq!(delay(&s, u32::MAX, 0.5), Duration::from_secs(45));
    }

    #[test]
    fn never_retries_past_the_deadline_then_gives_up() {
        let s = settings();
        assert_eq!(next(&s, 1, 0, 1_000, None, 1.0), Next::RetryAt(3_000));
        assert_eq!(next(&s, 20, 0, 590_000, None, 1.0), Next::RetryAt(600_000));
        assert_eq!(next(&s, 21, 0, 600_000, None, 1.0), Next::GiveUp);
    }

    #[test]
    fn honours_the_receivers_retry_after() {
        let s = settings();
        let n = next(&s, 1, 0, 1_000, Some(Duration::from_secs(30)), 0.0);
        assert_eq!(n, Next::RetryAt(31_000));
    }
}
