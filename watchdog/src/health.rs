//! A host's health state and its transitions: a pure function of the
//! detector's verdict and time, so every path is tested without a clock.
//! An agent's goodbye (a planned stop) sets a state no verdict changes; the
//! agent's next hello ends it.

use std::time::Duration;

use crate::detector::Verdict;

/// What the watchdog believes about a host: the same states the policies
/// read as `state = "host"`, so one type serves both.
pub use hyperwatch_policies::target::HostState;

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
            // Planned silence: only the next hello ends it (`resume`).
            (HostState::Stopped, _) => HostState::Stopped,
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

    /// The agent said goodbye; returns the new state when it changed.
    pub fn stop(&mut self) -> Option<HostState> {
        let before = self.state;
        self.state = HostState::Stopped;
        self.recovering_since = None;
        (self.state != before).then_some(self.state)
    }

    /// A hello after a goodbye: the agent is back as planned, so healthy at
    /// once (no recovery period: nothing failed). Any other state is left
    /// to the detector, as before; returns the new state when it changed.
    pub fn resume(&mut self) -> Option<HostState> {
        (self.state == HostState::Stopped).then(|| {
            self.state = HostState::Healthy;
            self.state
        })
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
    fn stopped_holds_against_every_verdict_until_resumed() {
        let mut h = Health::default();
        h.apply(Verdict::Suspect, at(1), RECOVERY);
        assert_eq!(h.stop(), Some(HostState::Stopped));
        assert_eq!(h.stop(), None);
        for v in [Verdict::Suspect, Verdict::Failed, Verdict::Alive] {
            assert_eq!(h.apply(v, at(100), RECOVERY), None, "{v:?}");
            assert_eq!(h.state, HostState::Stopped);
        }
        assert_eq!(h.resume(), Some(HostState::Healthy));
        assert_eq!(h.resume(), None, "only a stopped host resumes");
        assert_eq!(
            h.apply(Verdict::Failed, at(200), RECOVERY),
            Some(HostState::Failed),
            "after the hello the detector decides again"
        );
    }

    #[test]
    fn a_goodbye_ends_a_recovery_and_the_hello_does_not_restart_it() {
        let mut h = Health::default();
        h.apply(Verdict::Failed, at(0), RECOVERY);
        h.apply(Verdict::Alive, at(1), RECOVERY);
        assert_eq!(h.stop(), Some(HostState::Stopped));
        assert_eq!(h.resume(), Some(HostState::Healthy));
        assert_eq!(h.apply(Verdict::Alive, at(2), RECOVERY), None);
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
