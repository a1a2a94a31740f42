//! The kernel programs' clock (CLOCK_MONOTONIC, what bpf_ktime_get_ns()
//! returns) and its conversion to wall-clock time for events.

use std::time::{Duration, SystemTime};

/// CLOCK_MONOTONIC in nanoseconds.
pub fn monotonic_ns() -> u64 {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .expect("CLOCK_MONOTONIC is always available");
    ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64
}

/// The wall-clock time of a kernel timestamp: now minus how long ago it was.
pub fn wall_time(kernel_ns: u64) -> SystemTime {
    wall_time_at(kernel_ns, monotonic_ns(), SystemTime::now())
}

/// [`wall_time`] with both clocks read by the caller.
pub fn wall_time_at(kernel_ns: u64, now_mono_ns: u64, now_wall: SystemTime) -> SystemTime {
    let ago = Duration::from_nanos(now_mono_ns.saturating_sub(kernel_ns));
    now_wall.checked_sub(ago).unwrap_or(now_wall)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kernel_time_is_placed_before_now_by_its_age() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        assert_eq!(
            wall_time_at(4_000_000_000, 5_500_000_000, now),
            now - Duration::from_millis(1_500)
        );
        // A timestamp from the future (clock read races) is clamped to now.
        assert_eq!(wall_time_at(6_000_000_000, 5_000_000_000, now), now);
    }
}
