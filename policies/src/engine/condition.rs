//! Condition evaluation for one target: feeding samples and events into a
//! condition's track, and deciding whether it is true, whether it has held
//! long enough, and when that could next change without new input.

use super::state::{TargetEntry, Track};
use crate::policy::{Condition, Predicate};
use crate::time::Timestamp;

/// A condition's verdict at one instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Verdict {
    /// The predicate is true now.
    pub raw: bool,
    /// It has been true for the condition's `for`.
    pub holds: bool,
    /// When the verdict changes if no input arrives.
    pub next: Option<Timestamp>,
}

/// Updates `since` from the predicate's new truth value.
fn mark(track: &mut Track, raw: bool, now: Timestamp) {
    track.since = if raw { track.since.or(Some(now)) } else { None };
}

/// Seeds a new watch from what is already known of the target: a threshold
/// breached by the latest sample counts from now.
pub(crate) fn seed(c: &Condition, track: &mut Track, entry: &TargetEntry, now: Timestamp) {
    if let Predicate::Threshold { metric, cmp } = &c.predicate
        && let Some((_, v)) = entry.metrics.get(metric)
    {
        mark(track, cmp.breached_by(*v), now);
    }
}

/// Feeds a metric sample.
pub(crate) fn on_sample(
    c: &Condition,
    track: &mut Track,
    metric: &str,
    value: f64,
    now: Timestamp,
) {
    match &c.predicate {
        Predicate::Threshold { metric: m, cmp } if m == metric => {
            mark(track, cmp.breached_by(value), now)
        }
        Predicate::Count {
            metric: m,
            cmp,
            at_least,
            of_last,
        } if m == metric => {
            track.ring.push_back(cmp.breached_by(value));
            while track.ring.len() > *of_last as usize {
                track.ring.pop_front();
            }
            let breaches = track.ring.iter().filter(|b| **b).count();
            mark(track, breaches >= *at_least as usize, now);
        }
        Predicate::Rate {
            metric: m,
            cmp,
            over,
        } if m == metric => {
            track.points.push_back((now, value));
            let start = now.minus(*over);
            while track.points.front().is_some_and(|(t, _)| *t < start) {
                track.points.pop_front();
            }
            let raw = match (track.points.front(), track.points.back()) {
                (Some((t0, v0)), Some((t1, v1))) if t1 > t0 => {
                    let per_second = (v1 - v0) / (t1.since(*t0).0 as f64 / 1_000.0);
                    cmp.breached_by(per_second)
                }
                _ => false,
            };
            mark(track, raw, now);
        }
        _ => {}
    }
}

/// Feeds a point event.
pub(crate) fn on_event(c: &Condition, track: &mut Track, name: &str, now: Timestamp) {
    if let Predicate::Events {
        name: n, at_least, ..
    } = &c.predicate
        && n == name
    {
        track.events.push_back(now);
        // Only the newest `at_least` matter: the count reaches the
        // threshold exactly when the oldest of them is in the window.
        while track.events.len() > *at_least as usize {
            track.events.pop_front();
        }
    }
}

/// The condition's verdict now.
pub(crate) fn verdict(
    c: &Condition,
    track: &Track,
    entry: &TargetEntry,
    now: Timestamp,
) -> Verdict {
    let held_since = |since: Option<Timestamp>| {
        let raw = since.is_some();
        let ready = since.map(|s| s.plus(c.hold));
        Verdict {
            raw,
            holds: ready.is_some_and(|r| r <= now),
            next: ready.filter(|r| *r > now),
        }
    };
    match &c.predicate {
        Predicate::Threshold { .. } | Predicate::Count { .. } | Predicate::Rate { .. } => {
            held_since(track.since)
        }
        Predicate::State {
            name,
            values,
            negate,
        } => {
            let since = entry
                .states
                .get(name)
                .filter(|s| values.contains(&s.value) != *negate)
                .map(|s| s.since);
            held_since(since)
        }
        Predicate::Events {
            at_least, within, ..
        } => {
            let oldest = track
                .events
                .front()
                .copied()
                .filter(|_| track.events.len() >= *at_least as usize);
            let expires = oldest.map(|t| t.plus(*within)).filter(|e| *e > now);
            Verdict {
                raw: expires.is_some(),
                holds: expires.is_some(),
                next: expires,
            }
        }
        Predicate::Absent { name, after } => {
            let sample = entry.metrics.get(name).map(|(t, _)| *t);
            let state = entry.states.get(name).map(|s| s.seen);
            let last = sample.max(state).unwrap_or(entry.first_seen);
            let due = last.plus(*after);
            Verdict {
                raw: due <= now,
                holds: due <= now,
                next: Some(due).filter(|d| *d > now),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Comparison;
    use crate::target::{TargetInfo, TargetRef};
    use crate::time::Duration;
    use std::collections::BTreeMap;

    fn entry() -> TargetEntry {
        TargetEntry {
            info: TargetInfo::bare(TargetRef::host("hv1")),
            first_seen: Timestamp(0),
            metrics: BTreeMap::new(),
            states: BTreeMap::new(),
        }
    }

    fn at(secs: u64) -> Timestamp {
        Timestamp(secs * 1_000)
    }

    #[test]
    fn a_threshold_must_hold_for_its_duration() {
        let c = Condition {
            predicate: Predicate::Threshold {
                metric: "cpu".into(),
                cmp: Comparison::Above(0.9),
            },
            hold: Duration::secs(300),
        };
        let mut t = Track::default();
        on_sample(&c, &mut t, "cpu", 0.95, at(0));
        let v = verdict(&c, &t, &entry(), at(60));
        assert_eq!((v.raw, v.holds, v.next), (true, false, Some(at(300))));
        on_sample(&c, &mut t, "cpu", 0.97, at(120));
        assert!(
            verdict(&c, &t, &entry(), at(300)).holds,
            "the breach counts from its start"
        );
        on_sample(&c, &mut t, "cpu", 0.5, at(310));
        assert!(!verdict(&c, &t, &entry(), at(310)).raw);
    }

    #[test]
    fn x_of_the_last_y_samples() {
        let c = Condition {
            predicate: Predicate::Count {
                metric: "lat".into(),
                cmp: Comparison::Above(1.0),
                at_least: 3,
                of_last: 5,
            },
            hold: Duration::ZERO,
        };
        let mut t = Track::default();
        let mut raws = Vec::new();
        for (i, v) in [2.0, 0.0, 2.0, 0.0, 2.0, 0.0, 0.0].into_iter().enumerate() {
            on_sample(&c, &mut t, "lat", v, at(i as u64));
            raws.push(verdict(&c, &t, &entry(), at(i as u64)).raw);
        }
        assert_eq!(raws, [false, false, false, false, true, false, false]);
    }

    #[test]
    fn rate_of_change_over_a_window() {
        let c = Condition {
            predicate: Predicate::Rate {
                metric: "used".into(),
                cmp: Comparison::Above(10.0),
                over: Duration::secs(60),
            },
            hold: Duration::ZERO,
        };
        let mut t = Track::default();
        on_sample(&c, &mut t, "used", 0.0, at(0));
        on_sample(&c, &mut t, "used", 330.0, at(30));
        assert!(verdict(&c, &t, &entry(), at(30)).raw, "11/s is over 10/s");
        on_sample(&c, &mut t, "used", 340.0, at(90));
        assert!(
            !verdict(&c, &t, &entry(), at(90)).raw,
            "the window moved past the climb"
        );
    }

    #[test]
    fn events_count_in_a_sliding_window_and_expire() {
        let c = Condition {
            predicate: Predicate::Events {
                name: "oom".into(),
                at_least: 2,
                within: Duration::secs(60),
            },
            hold: Duration::ZERO,
        };
        let mut t = Track::default();
        on_event(&c, &mut t, "oom", at(0));
        assert!(!verdict(&c, &t, &entry(), at(0)).raw);
        on_event(&c, &mut t, "oom", at(50));
        let v = verdict(&c, &t, &entry(), at(50));
        assert_eq!((v.raw, v.next), (true, Some(at(60))));
        assert!(!verdict(&c, &t, &entry(), at(60)).raw);
    }

    #[test]
    fn absence_counts_from_the_last_report_or_first_sight() {
        let c = Condition {
            predicate: Predicate::Absent {
                name: "heartbeat".into(),
                after: Duration::secs(30),
            },
            hold: Duration::ZERO,
        };
        let mut e = entry();
        let t = Track::default();
        assert_eq!(verdict(&c, &t, &e, at(10)).next, Some(at(30)));
        assert!(verdict(&c, &t, &e, at(30)).raw);
        e.metrics.insert("heartbeat".into(), (at(25), 1.0));
        assert!(!verdict(&c, &t, &e, at(30)).raw);
    }
}
