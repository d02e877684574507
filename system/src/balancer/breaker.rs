//! A circuit breaker per upstream instance, sans-IO: closed, open, half-open.
//!
//! Health probes run every interval and need `fail_after` misses to remove an instance, so for
//! a few seconds after an instance dies the health table still lists it. The breaker is the
//! passive half: it watches the balancer's own connection attempts, and after `failure_threshold`
//! consecutive failures it **opens**, and the balancer stops sending new connections to that
//! instance at once. After `open_ms` it goes **half-open** and lets one trial connection through
//! (the others are still refused): success closes it, failure opens it for another `open_ms`.
//! A trial that never reports back (its task died) frees the slot after `open_ms`, so a lost
//! report cannot hold the breaker half-open for ever.
//!
//! This is the classic pattern (Nygard, *Release It!*; Hystrix, resilience4j's
//! `failureRateThreshold`/`waitDurationInOpenState`/`permittedNumberOfCallsInHalfOpenState`),
//! counting consecutive failures rather than a failure rate over a sliding window: the balancer
//! makes few connections per instance, and a window would need more traffic than a simulated
//! run offers to say anything.

/// The breaker's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BreakerConfig {
    /// Consecutive failed attempts that open the breaker.
    pub failure_threshold: u32,
    /// How long it stays open before letting a trial through.
    pub open_ms: u64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig { failure_threshold: 3, open_ms: 2_000 }
    }
}

/// Where the breaker is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Attempts go through; counts consecutive failures.
    Closed { failures: u32 },
    /// Attempts are refused until `until_ms`.
    Open { until_ms: u64 },
    /// One trial is out (since `trial_ms`); others are refused until it reports.
    HalfOpen { trial_ms: u64 },
}

/// What an attempt came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
}

/// A transition worth telling the operator about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    Opened,
    Closed,
}

#[derive(Clone, Debug)]
pub struct Breaker {
    config: BreakerConfig,
    state: State,
}

impl Breaker {
    pub fn new(config: BreakerConfig) -> Self {
        Breaker { config, state: State::Closed { failures: 0 } }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn config(&self) -> BreakerConfig {
        self.config
    }

    /// Whether an attempt may start at `now_ms`. Moving from open to half-open happens here, and
    /// a `true` from a half-open breaker hands out its one trial: the caller must report the
    /// attempt's outcome.
    pub fn allow(&mut self, now_ms: u64) -> bool {
        match self.state {
            State::Closed { .. } => true,
            State::Open { until_ms } if now_ms >= until_ms => {
                self.state = State::HalfOpen { trial_ms: now_ms };
                true
            }
            State::Open { .. } => false,
            State::HalfOpen { trial_ms } if now_ms >= trial_ms.saturating_add(self.config.open_ms) => {
                // The trial never reported: treat it as lost and hand out another.
                self.state = State::HalfOpen { trial_ms: now_ms };
                true
            }
            State::HalfOpen { .. } => false,
        }
    }

    /// Whether an attempt would be allowed at `now_ms`, without taking a trial.
    pub fn would_allow(&self, now_ms: u64) -> bool {
        self.clone().allow(now_ms)
    }

    /// Reports an attempt's outcome.
    pub fn record(&mut self, now_ms: u64, outcome: Outcome) -> Option<Transition> {
        let open = State::Open { until_ms: now_ms.saturating_add(self.config.open_ms) };
        match (self.state, outcome) {
            (State::Closed { .. }, Outcome::Success) => {
                self.state = State::Closed { failures: 0 };
                None
            }
            (State::Closed { failures }, Outcome::Failure) => {
                let failures = failures.saturating_add(1);
                if failures >= self.config.failure_threshold.max(1) {
                    self.state = open;
                    Some(Transition::Opened)
                } else {
                    self.state = State::Closed { failures };
                    None
                }
            }
            (State::HalfOpen { .. }, Outcome::Success) => {
                self.state = State::Closed { failures: 0 };
                Some(Transition::Closed)
            }
            (State::HalfOpen { .. }, Outcome::Failure) => {
                self.state = open;
                Some(Transition::Opened)
            }
            // Late reports of attempts that started before the breaker opened: the breaker
            // already decided on fresher evidence.
            (State::Open { .. }, _) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Outcome::{Failure as F, Success as S};
    use super::*;

    fn breaker() -> Breaker {
        Breaker::new(BreakerConfig { failure_threshold: 3, open_ms: 1_000 })
    }

    #[test]
    fn opens_after_consecutive_failures_and_a_success_resets_the_count() {
        let mut b = breaker();
        assert_eq!(b.record(0, F), None);
        assert_eq!(b.record(1, F), None);
        assert_eq!(b.record(2, S), None);
        assert_eq!(b.record(3, F), None);
        assert_eq!(b.record(4, F), None);
        assert!(b.allow(5));
        assert_eq!(b.record(5, F), Some(Transition::Opened));
        assert_eq!(b.state(), State::Open { until_ms: 1_005 });
        assert!(!b.allow(6) && !b.allow(1_004));
    }

    #[test]
    fn half_open_lets_one_trial_through_and_its_outcome_decides() {
        let mut b = breaker();
        for t in 0..3 {
            b.record(t, F);
        }
        assert!(!b.would_allow(1_001));
        assert!(b.would_allow(1_002) && b.would_allow(1_002), "would_allow takes no trial");
        assert!(b.allow(1_002), "the trial");
        assert!(!b.allow(1_003), "only one trial at a time");
        assert_eq!(b.record(1_010, F), Some(Transition::Opened), "the trial failed");
        assert!(!b.allow(2_009));
        assert!(b.allow(2_010));
        assert_eq!(b.record(2_020, S), Some(Transition::Closed));
        assert!(b.allow(2_021) && b.allow(2_021));
        assert_eq!(b.state(), State::Closed { failures: 0 });
    }

    #[test]
    fn a_lost_trial_frees_its_slot_after_open_ms() {
        let mut b = breaker();
        for t in 0..3 {
            b.record(t, F);
        }
        assert!(b.allow(1_002));
        assert!(!b.allow(2_001));
        assert!(b.allow(2_002), "the first trial never reported");
    }

    #[test]
    fn late_reports_do_not_move_an_open_breaker() {
        let mut b = breaker();
        for t in 0..3 {
            b.record(t, F);
        }
        assert_eq!(b.record(10, S), None);
        assert_eq!(b.record(11, F), None);
        assert_eq!(b.state(), State::Open { until_ms: 1_002 });
    }
}
