//! The detector in virtual time: unit behaviour, then the accuracy run the
//! issue asks for (1,000 hosts, 10 simulated hours, seeded).

use std::time::Duration;

use super::*;

/// The watchdog's defaults (`[detector]` in watchdog/default.toml).
fn params() -> DetectorParams {
    crate::config::DetectorConfig::default().params()
}

const SECOND: Duration = Duration::from_secs(1);
/// An arbitrary agent clock origin: detection must not depend on it.
const AGENT_CLOCK: u64 = 987_654_321_000_000;

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// Feeds `n` heartbeats sent every second from t=0, each arriving `delay`
/// after it was sent.
fn regular(n: u64, delay: impl Fn(u64) -> f64) -> HeartbeatDetector {
    let mut d = HeartbeatDetector::new(params(), SECOND);
    for k in 0..n {
        d.heartbeat(secs(k as f64 + delay(k)), AGENT_CLOCK + k * 1_000_000_000);
    }
    d
}

#[test]
fn phi_grows_with_silence_and_scores_invert_it() {
    let mut last = f64::MIN;
    for i in -40..200 {
        let p = phi_of_score(i as f64 / 10.0);
        assert!(
            p.is_finite() && p >= last,
            "phi must grow: {p} after {last}"
        );
        last = p;
    }
    for phi in [0.5, 1.0, 3.0, 8.0, 10.0, 16.0] {
        assert!((phi_of_score(score_for_phi(phi)) - phi).abs() < 1e-9);
    }
}

#[test]
fn a_regular_host_is_alive_then_failed_between_min_silence_and_hard_timeout() {
    let d = regular(100, |_| 0.001);
    let last_arrival = 99.001;
    assert_eq!(d.verdict(secs(last_arrival + 0.9)), Verdict::Alive);
    let (suspect, failed) = d.deadlines().unwrap();
    let failed_after = failed.as_secs_f64() - 99.001;
    let p = params();
    assert!(
        failed_after >= p.min_silence.as_secs_f64() && failed_after < p.hard_timeout.as_secs_f64(),
        "a regular host fails on phi, before the hard timeout: {failed_after}"
    );
    assert!(suspect < failed);
    assert_eq!(d.verdict(suspect), Verdict::Suspect);
    assert_eq!(d.verdict(failed), Verdict::Failed);
    assert!(d.phi(failed) >= p.failure_phi - 1e-6);
}

#[test]
fn a_jittery_host_is_given_longer_than_a_regular_one() {
    let quiet = regular(100, |_| 0.001);
    // Delays alternating 1 ms and 500 ms: the same mean rate, more spread.
    let jittery = regular(100, |k| if k % 2 == 0 { 0.001 } else { 0.5 });
    let quiet_after = quiet.deadlines().unwrap().1.as_secs_f64() - 99.001;
    // The jittery host's last heartbeat (k = 99) was a slow one; silence
    // counts from its send time plus the least delay.
    let jittery_after = jittery.deadlines().unwrap().1.as_secs_f64() - 99.001;
    assert!(
        jittery_after > quiet_after + 0.1,
        "jitter must widen the margin: {jittery_after} vs {quiet_after}"
    );
}

#[test]
fn the_hard_timeout_caps_detection_and_min_silence_floors_it() {
    let p = params();
    // Very erratic host: phi alone would wait long.
    let erratic = regular(100, |k| [0.0, 0.7, 0.2, 0.75][k as usize % 4]);
    let (_, failed) = erratic.deadlines().unwrap();
    assert_eq!(failed, secs(99.0) + p.hard_timeout);
    // A clockwork host with a tiny deviation floor would fail fast on phi;
    // the minimum silence holds it.
    let mut tight = p;
    tight.min_std_deviation = Duration::from_millis(1);
    tight.acceptable_pause = Duration::ZERO;
    let mut d = HeartbeatDetector::new(tight, SECOND);
    for k in 0..200u64 {
        d.heartbeat(secs(k as f64), AGENT_CLOCK + k * 1_000_000_000);
    }
    assert_eq!(d.deadlines().unwrap().1, secs(199.0) + tight.min_silence);
}

#[test]
fn a_late_last_heartbeat_does_not_delay_detection() {
    let on_time = regular(50, |_| 0.001);
    let late = regular(50, |k| if k == 49 { 0.7 } else { 0.001 });
    let (a, b) = (on_time.deadlines().unwrap().1, late.deadlines().unwrap().1);
    // Only the statistics move a little (one slower silence); the 700 ms
    // of delivery delay do not carry over.
    assert!(
        a.abs_diff(b) < Duration::from_millis(150),
        "silence counts from the send time, not from delivery: {a:?} vs {b:?}"
    );
}

#[test]
fn stale_heartbeats_are_ignored_and_outages_stay_out_of_the_statistics() {
    let mut d = regular(60, |_| 0.001);
    let before = d.deadlines().unwrap();
    d.heartbeat(secs(59.5), AGENT_CLOCK + 58 * 1_000_000_000);
    assert_eq!(d.deadlines().unwrap(), before, "a repeat changes nothing");
    // A 60 s outage, then regular beats again: detection as quick as before.
    for k in 120..180u64 {
        d.heartbeat(secs(k as f64 + 0.001), AGENT_CLOCK + k * 1_000_000_000);
    }
    let after = d.deadlines().unwrap().1.as_secs_f64() - 179.001;
    let was = before.1.as_secs_f64() - 59.001;
    assert!((after - was).abs() < 0.01, "{after} vs {was}");
}

#[test]
fn three_seconds_of_silence_is_failed() {
    // Why the accuracy run below never drops two beats in a row: 3 s of
    // silence is exactly what "declared failed within 3 s" must catch.
    let d = regular(100, |k| 0.2 * ((k % 5) as f64 / 4.0));
    assert_eq!(d.verdict(secs(99.0 + 3.0)), Verdict::Failed);
}

mod accuracy;
