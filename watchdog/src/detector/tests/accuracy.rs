//! The accuracy run, in virtual time and seeded: 1,000 hosts for 10
//! simulated hours, 1 s heartbeats, network delay jitter normal with sigma
//! 200 ms, 1 % of heartbeats lost, a 2 s pause now and then, and one crash
//! per host (back after a minute). It demands no false failure at all and
//! every crash declared within 3 s, counting the service's check interval.
//!
//! The model, and where it is deliberately bounded:
//! * delay = 0.5 ms + |N(0, 200 ms)|, the normal cut at 4 sigma (800 ms): a
//!   link whose delay is unbounded is a link that is down.
//! * A lost beat leaves 2 s between arrivals; a pause makes one gap 2 s (the
//!   beat is a second late and the schedule moves with it).
//! * A crash is timed from the host's last *delivered* heartbeat's send
//!   when the beat before the crash was lost: the watchdog's latest news is
//!   then a second older, and a detector that must tolerate one lost beat
//!   cannot flag that within 3 s of the crash itself. Such crashes are
//!   counted and held to 3 s after their last delivered beat plus one
//!   interval.
//! * A loss or pause never directly follows another: two missed beats are 3 s
//!   of silence, which is what a crash looks like at 3 s and must be failed
//!   (see `three_seconds_of_silence_is_failed`). No detector can tell them
//!   apart, so the run asks the detector only what can be asked.

use std::time::Duration;

use super::super::{HeartbeatDetector, Verdict};
use super::params;

const HOSTS: u64 = 1_000;
const SIMULATED: f64 = 10.0 * 3600.0;
const SEED: u64 = 0x6879_7065_7277_6174;
const INTERVAL: f64 = 1.0;
const JITTER_SIGMA: f64 = 0.2;
const JITTER_CUT: f64 = 4.0 * JITTER_SIGMA;
const BASE_DELAY: f64 = 0.0005;
const LOSS: f64 = 0.01;
/// About one pause per host every ten minutes.
const PAUSE: f64 = 1.0 / 600.0;
const PAUSE_GAP: f64 = 2.0;
const OUTAGE: f64 = 60.0;
/// The bound the issue sets on declaring a crash.
const DETECT_WITHIN: f64 = 3.0;
/// The service evaluates verdicts this often (`check_interval` default).
const CHECK_INTERVAL: f64 = 0.05;

#[derive(Default)]
struct Tally {
    heartbeats: u64,
    lost: u64,
    pauses: u64,
    false_failures: Vec<String>,
    crashes: u64,
    crashes_after_loss: u64,
    worst_detection: f64,
    late_detections: Vec<String>,
}

fn normal(rng: &mut fastrand::Rng) -> f64 {
    // Box-Muller.
    let u1 = 1.0 - rng.f64();
    let u2 = rng.f64();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn simulate(host: u64, tally: &mut Tally) {
    let mut rng = fastrand::Rng::with_seed(SEED ^ host.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let agent_clock = rng.u64(1_000_000_000..1_000_000_000_000_000) as f64 / 1e9;
    let crash_at = 60.0 + rng.f64() * (SIMULATED - 2.0 * OUTAGE - 60.0);
    let mut detector = HeartbeatDetector::new(params(), Duration::from_secs(1));
    let mut send = rng.f64() * INTERVAL;
    let mut crashed = false;
    let mut returning = false;
    let mut previous_irregular = false;
    let mut last_lost = false;
    let mut paused = false;
    while send < SIMULATED {
        if !crashed && send >= crash_at {
            crashed = true;
            tally.crashes += 1;
            let (_, failed) = detector.deadlines().expect("host has beaten");
            let took = failed.as_secs_f64() - crash_at + CHECK_INTERVAL;
            let bound = if last_lost {
                tally.crashes_after_loss += 1;
                DETECT_WITHIN + INTERVAL
            } else {
                tally.worst_detection = tally.worst_detection.max(took);
                DETECT_WITHIN
            };
            if took > bound {
                tally.late_detections.push(format!(
                    "host {host} crash at {crash_at:.3}s declared after {took:.3}s"
                ));
            }
            send = crash_at + OUTAGE;
            returning = true;
            continue;
        }
        if paused {
            // This beat was already made late; send it now.
            paused = false;
        } else {
            let irregular = !previous_irregular && rng.f64() < LOSS + PAUSE;
            previous_irregular = irregular;
            last_lost = irregular && rng.f64() < LOSS / (LOSS + PAUSE);
            if last_lost {
                tally.lost += 1;
                send += INTERVAL;
                continue;
            }
            if irregular {
                // Late by a second; the crash check runs again first, as
                // the host may die during its pause.
                tally.pauses += 1;
                send += PAUSE_GAP - INTERVAL;
                paused = true;
                continue;
            }
        }
        let delay = BASE_DELAY + (normal(&mut rng) * JITTER_SIGMA).abs().min(JITTER_CUT);
        let arrival = Duration::from_secs_f64(send + delay);
        if !returning && detector.verdict(arrival) == Verdict::Failed {
            let (_, failed) = detector.deadlines().expect("host has beaten");
            tally.false_failures.push(format!(
                "host {host}: failed at {:.3}s, next heartbeat arrived at {:.3}s",
                failed.as_secs_f64(),
                arrival.as_secs_f64()
            ));
        }
        returning = false;
        detector.heartbeat(arrival, ((agent_clock + send) * 1e9) as u64);
        tally.heartbeats += 1;
        send += INTERVAL;
    }
}

#[test]
fn thousand_hosts_ten_hours_no_false_failure_every_crash_within_3s() {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()) as u64;
    let tallies: Vec<Tally> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let mut tally = Tally::default();
                    for host in (t..HOSTS).step_by(threads as usize) {
                        simulate(host, &mut tally);
                    }
                    tally
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let mut all = Tally::default();
    for t in tallies {
        all.heartbeats += t.heartbeats;
        all.lost += t.lost;
        all.pauses += t.pauses;
        all.crashes += t.crashes;
        all.crashes_after_loss += t.crashes_after_loss;
        all.worst_detection = all.worst_detection.max(t.worst_detection);
        all.false_failures.extend(t.false_failures);
        all.late_detections.extend(t.late_detections);
    }
    eprintln!(
        "accuracy: {} heartbeats, {} lost, {} pauses, {} crashes ({} right after a lost beat), worst detection {:.3}s, {} false failures",
        all.heartbeats,
        all.lost,
        all.pauses,
        all.crashes,
        all.crashes_after_loss,
        all.worst_detection,
        all.false_failures.len()
    );
    assert!(
        all.heartbeats > 35_000_000,
        "the run must cover 10 h of 1,000 hosts"
    );
    assert!(
        all.lost > 300_000 && all.pauses > 50_000,
        "losses and pauses must occur"
    );
    assert_eq!(all.crashes, HOSTS);
    assert!(
        all.false_failures.is_empty(),
        "false failures:\n{}",
        all.false_failures
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        all.late_detections.is_empty(),
        "late detections:\n{}",
        all.late_detections
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
