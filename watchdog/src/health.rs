//! A host's health state and its transitions: a pure function of the
//! detector's verdict and time, so every path is tested without a clock.

use std::time::Duration;

use serde::Serialize;

use crate::detector::Verdict;

/// What the watchdog believes about a host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HostState {
    /// Heartbeats arrive as expected.
    Healthy,
    /// Heartbeats are overdue; not yet failed.
    Suspect,
    /// Silent past the detector's thresholds: treat it as down.
    Failed,
    /// Came back after a failure; healthy again after a calm period.
    Recovered,
}

impl HostState {
    /// Every state, for metrics by state.
    pub const ALL: [HostState; 4] = [
        HostState::Healthy,
        HostState::Suspect,
        HostState::Failed,
        HostState::Recovered,
    ];

    /// The lowercase name used in metrics and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            HostState::Healthy => "healthy",
            HostState::Suspect => "suspect",
            HostState::Failed => "failed",
            HostState::Recovered => "recovered",
        }
    }
}

/// A host's state with what the transitions need to remember.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Health {
    pub state: HostState,
    /// Since when a recovered host has been calm (watchdog clock).
    recovering_since: Option<Duration>,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            state: HostState::Healthy,
            recovering_since: None,
        }
    }
}

impl Health {
    /// Applies the verdict at `now`; returns the new state when it changed.
    /// `recovery` is the calm time a recovered host needs to be healthy.
    pub fn apply(
        &mut self,
        verdict: Verdict,
        now: Duration,
        recovery: Duration,
    ) -> Option<HostState> {
        let before = self.state;
        self.state = match (self.state, verdict) {
            (_, Verdict::Failed) => {
                self.recovering_since = None;
                HostState::Failed
            }
            (HostState::Failed, Verdict::Suspect) => HostState::Failed,
            (_, Verdict::Suspect) => HostState::Suspect,
            (HostState::Failed, Verdict::Alive) => {
                self.recovering_since = Some(now);
                HostState::Recovered
            }
            (HostState::Suspect, Verdict::Alive) => match self.recovering_since {
                // Suspicion during recovery restarts the calm period.
                Some(_) => {
                    self.recovering_since = Some(now);
                    HostState::Recovered
                }
                None => HostState::Healthy,
            },
            (HostState::Recovered, Verdict::Alive) => match self.recovering_since {
                Some(since) if now.saturating_sub(since) >= recovery => {
                    self.recovering_since = None;
                    HostState::Healthy
                }
                _ => HostState::Recovered,
            },
            (HostState::Healthy, Verdict::Alive) => HostState::Healthy,
        };
        (self.state != before).then_some(self.state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECOVERY: Duration = Duration::from_secs(10);

    fn at(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn healthy_suspect_healthy() {
        let mut h = Health::default();
        assert_eq!(h.apply(Verdict::Alive, at(1), RECOVERY), None);
        assert_eq!(
            h.apply(Verdict::Suspect, at(2), RECOVERY),
            Some(HostState::Suspect)
        );
        assert_eq!(h.apply(Verdict::Suspect, at(3), RECOVERY), None);
        assert_eq!(
            h.apply(Verdict::Alive, at(3), RECOVERY),
            Some(HostState::Healthy)
        );
    }

    #[test]
    fn failed_recovered_then_healthy_after_calm() {
        let mut h = Health::default();
        assert_eq!(
            h.apply(Verdict::Failed, at(5), RECOVERY),
            Some(HostState::Failed)
        );
        assert_eq!(
            h.apply(Verdict::Suspect, at(6), RECOVERY),
            None,
            "failed stays failed"
        );
        assert_eq!(
            h.apply(Verdict::Alive, at(20), RECOVERY),
            Some(HostState::Recovered)
        );
        assert_eq!(h.apply(Verdict::Alive, at(29), RECOVERY), None);
        assert_eq!(
            h.apply(Verdict::Alive, at(30), RECOVERY),
            Some(HostState::Healthy)
        );
    }

    #[test]
    fn suspicion_while_recovering_restarts_the_calm_period() {
        let mut h = Health::default();
        h.apply(Verdict::Failed, at(0), RECOVERY);
        h.apply(Verdict::Alive, at(1), RECOVERY);
        assert_eq!(
            h.apply(Verdict::Suspect, at(5), RECOVERY),
            Some(HostState::Suspect)
        );
        assert_eq!(
            h.apply(Verdict::Alive, at(6), RECOVERY),
            Some(HostState::Recovered)
        );
        assert_eq!(h.apply(Verdict::Alive, at(12), RECOVERY), None);
        assert_eq!(
            h.apply(Verdict::Alive, at(16), RECOVERY),
            Some(HostState::Healthy)
        );
    }
}
