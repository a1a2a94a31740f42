//! The failure detector of one host: phi accrual (Hayashibara et al.) over
//! the silences this host has shown, bounded below by a minimum silence and
//! above by a hard timeout. A pure type: it is fed times and never reads a
//! clock, so it is tested in virtual time.
//!
//! Silence is measured from when the last heartbeat *would* have arrived had
//! it met the least network delay seen lately: its send time on the agent's
//! monotonic clock plus the smallest observed (arrival - send) offset. So a
//! crash is detected a fixed time after the agent's last send, however late
//! that last heartbeat happened to travel, and the agents' clocks need no
//! synchronisation (the offset absorbs both the clock difference and the
//! base latency).

use std::{collections::VecDeque, time::Duration};

/// How the detector decides; `[detector]` in the watchdog's configuration.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DetectorParams {
    /// Phi at which a host is suspect.
    pub suspect_phi: f64,
    /// Phi past which (together with `min_silence`) a host is failed.
    pub failure_phi: f64,
    /// Added to the mean silence before phi is computed: the pause a host
    /// may take (one lost heartbeat) without raising phi.
    pub acceptable_pause: Duration,
    /// Floor of the standard deviation, so a very regular host does not
    /// turn a few milliseconds of delay into certainty.
    pub min_std_deviation: Duration,
    /// A host is never failed before this much silence.
    pub min_silence: Duration,
    /// A host is always failed after this much silence.
    pub hard_timeout: Duration,
    /// How many recent silences the statistics cover.
    pub window: usize,
}

/// What the detector says about a host at an instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Alive,
    Suspect,
    Failed,
}

/// Phi accrual state of one host.
#[derive(Clone, Debug)]
pub struct HeartbeatDetector {
    params: DetectorParams,
    /// `params.failure_phi` and `suspect_phi` as standard scores, solved
    /// once so deadlines cost no search.
    failure_score: f64,
    suspect_score: f64,
    /// Recent silences at arrival, seconds.
    silences: VecDeque<f64>,
    sum: f64,
    sum_sq: f64,
    /// Sliding-window minimum of (arrival - send) offsets, nanoseconds:
    /// (heartbeat index, offset), offsets increasing front to back.
    offsets: VecDeque<(u64, i64)>,
    heartbeats: u64,
    last_sent: Option<u64>,
}

impl HeartbeatDetector {
    /// A detector for a host that says it beats every `interval`.
    pub fn new(params: DetectorParams, interval: Duration) -> Self {
        let mut d = Self {
            params,
            failure_score: score_for_phi(params.failure_phi),
            suspect_score: score_for_phi(params.suspect_phi),
            silences: VecDeque::with_capacity(params.window.max(2)),
            sum: 0.0,
            sum_sq: 0.0,
            offsets: VecDeque::new(),
            heartbeats: 0,
            last_sent: None,
        };
        // Bootstrap as Akka does: the announced interval, spread by a
        // quarter either way, until real silences replace it.
        let i = interval.as_secs_f64();
        d.record(i * 0.75);
        d.record(i * 1.25);
        d
    }

    /// A heartbeat sent at `sent_monotonic_nanos` (agent clock) arrived at
    /// `arrived` (watchdog clock). Stale heartbeats (not newer than the last
    /// one) are ignored; a silence past the hard timeout was an outage, not
    /// jitter, and stays out of the statistics.
    pub fn heartbeat(&mut self, arrived: Duration, sent_monotonic_nanos: u64) {
        if self.last_sent.is_some_and(|s| sent_monotonic_nanos <= s) {
            return;
        }
        let arrived_ns = nanos(arrived);
        let offset = arrived_ns.saturating_sub(sent_monotonic_nanos as i64);
        let silence = self.silence_at(arrived_ns);
        self.heartbeats += 1;
        while self.offsets.back().is_some_and(|&(_, o)| o >= offset) {
            self.offsets.pop_back();
        }
        self.offsets.push_back((self.heartbeats, offset));
        let oldest = self.heartbeats.saturating_sub(self.params.window as u64);
        while self.offsets.front().is_some_and(|&(i, _)| i <= oldest) {
            self.offsets.pop_front();
        }
        if let Some(s) = silence
            && s < self.params.hard_timeout.as_secs_f64()
        {
            self.record(s);
        }
        self.last_sent = Some(sent_monotonic_nanos);
    }

    fn record(&mut self, silence: f64) {
        if self.silences.len() >= self.params.window.max(2) {
            let old = self.silences.pop_front().expect("window is not empty");
            self.sum -= old;
            self.sum_sq -= old * old;
        }
        self.silences.push_back(silence);
        self.sum += silence;
        self.sum_sq += silence * silence;
    }

    /// Watchdog-clock nanoseconds at which the last heartbeat would have
    /// arrived with the least delay seen.
    fn expected_arrival(&self) -> Option<i64> {
        let sent = self.last_sent? as i64;
        Some(sent.saturating_add(self.offsets.front()?.1))
    }

    fn silence_at(&self, now_ns: i64) -> Option<f64> {
        Some((now_ns - self.expected_arrival()?) as f64 / 1e9)
    }

    /// How long the host has been silent at `now` (zero before any heartbeat).
    pub fn silence(&self, now: Duration) -> Duration {
        Duration::from_secs_f64(self.silence_at(nanos(now)).unwrap_or(0.0).max(0.0))
    }

    /// Mean (acceptable pause included) and standard deviation, seconds.
    fn distribution(&self) -> (f64, f64) {
        let n = self.silences.len() as f64;
        let mean = self.sum / n;
        let variance = (self.sum_sq / n - mean * mean).max(0.0);
        let sd = variance
            .sqrt()
            .max(self.params.min_std_deviation.as_secs_f64());
        (mean + self.params.acceptable_pause.as_secs_f64(), sd)
    }

    /// Phi at `now`: minus log10 of the chance that a live host stays
    /// silent this long.
    pub fn phi(&self, now: Duration) -> f64 {
        let Some(silence) = self.silence_at(nanos(now)) else {
            return 0.0;
        };
        let (mean, sd) = self.distribution();
        phi_of_score((silence - mean) / sd)
    }

    /// The verdict at `now`.
    pub fn verdict(&self, now: Duration) -> Verdict {
        match self.deadlines() {
            Some((_, failed)) if now >= failed => Verdict::Failed,
            Some((suspect, _)) if now >= suspect => Verdict::Suspect,
            _ => Verdict::Alive,
        }
    }

    /// When the host becomes suspect and when failed if nothing more
    /// arrives (watchdog clock); None before the first heartbeat. Phi grows
    /// with silence, so each threshold is crossed at one silence:
    /// mean + score * sd, clamped between the minimum silence and the hard
    /// timeout for failure.
    pub fn deadlines(&self) -> Option<(Duration, Duration)> {
        let expected = self.expected_arrival()?;
        let (mean, sd) = self.distribution();
        let failed_after = (mean + self.failure_score * sd).clamp(
            self.params.min_silence.as_secs_f64(),
            self.params.hard_timeout.as_secs_f64(),
        );
        let suspect_after = (mean + self.suspect_score * sd).min(failed_after);
        let at = |after: f64| {
            let ns = expected.saturating_add((after * 1e9) as i64);
            Duration::from_nanos(ns.max(0) as u64)
        };
        Some((at(suspect_after), at(failed_after)))
    }
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// Phi of a standard score, with the logistic approximation of the normal
/// tail Akka uses (error under 0.01 %), computed in log space so large
/// scores give large finite phis instead of infinity.
fn phi_of_score(y: f64) -> f64 {
    let k = y * (1.5976 + 0.070566 * y * y);
    // P(later) = e^-k / (1 + e^-k) = 1 / (1 + e^k)
    let ln_p = if k > 0.0 {
        -k - (-k).exp().ln_1p()
    } else {
        -(k.exp().ln_1p())
    };
    -ln_p / std::f64::consts::LN_10
}

/// The standard score whose phi is `phi` (phi is increasing in the score).
fn score_for_phi(phi: f64) -> f64 {
    let (mut lo, mut hi) = (-10.0_f64, 100.0_f64);
    for _ in 0..200 {
        let mid = (lo + hi) / 2.0;
        if phi_of_score(mid) < phi {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    (lo + hi) / 2.0
}

#[cfg(test)]
mod tests;
