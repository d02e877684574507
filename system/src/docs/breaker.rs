//! A circuit breaker, sans-IO: after `failures_to_open` consecutive failures of a dependency
//! the circuit opens and calls are skipped outright for `open_ms`; then one probe call is let
//! through (half-open): its success closes the circuit, its failure opens it again.
//!
//! The document service puts one in front of the Redis-like cache, so a dead or unreachable
//! cache costs each request nothing (the breaker answers "skip" without a network call) rather
//! than a connect timeout, and the service degrades to MongoDB as the design's "graceful
//! degradation" asks. The names follow the usual pattern (Nygard's, Resilience4j's
//! `failureRateThreshold`/`waitDurationInOpenState`), simplified to a consecutive count.

/// The breaker's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerSettings {
    pub failures_to_open: u32,
    /// How long an open circuit skips calls before a probe.
    pub open_ms: u64,
    /// How long a probe may stay unanswered before another may be let through (a probe whose
    /// caller was cancelled never reports back).
    pub probe_timeout_ms: u64,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        BreakerSettings { failures_to_open: 3, open_ms: 5_000, probe_timeout_ms: 3_000 }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Closed {
        failures: u32,
    },
    Open {
        until_ms: u64,
    },
    /// One probe is out since `since_ms`.
    HalfOpen {
        since_ms: u64,
    },
}

/// What the breaker says about a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permit {
    /// Make the call and report its outcome.
    Call,
    /// Make the call as the half-open probe and report its outcome.
    Probe,
    /// Do not call.
    Skip,
}

/// What a report changed, for traces and observations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    None,
    Opened,
    Closed,
}

#[derive(Clone, Debug)]
pub struct Breaker {
    settings: BreakerSettings,
    state: State,
}

impl Breaker {
    pub fn new(settings: BreakerSettings) -> Self {
        Breaker { settings, state: State::Closed { failures: 0 } }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// Whether a call may go out at `now_ms`.
    pub fn permit(&mut self, now_ms: u64) -> Permit {
        match self.state {
            State::Closed { .. } => Permit::Call,
            State::Open { until_ms } if now_ms < until_ms => Permit::Skip,
            State::HalfOpen { since_ms } if now_ms < since_ms + self.settings.probe_timeout_ms => Permit::Skip,
            State::Open { .. } | State::HalfOpen { .. } => {
                self.state = State::HalfOpen { since_ms: now_ms };
                Permit::Probe
            }
        }
    }

    /// Reports a call's outcome.
    pub fn report(&mut self, now_ms: u64, ok: bool) -> Transition {
        let was_closed = matches!(self.state, State::Closed { .. });
        match (self.state, ok) {
            (_, true) => {
                self.state = State::Closed { failures: 0 };
                if was_closed {
                    Transition::None
                } else {
                    Transition::Closed
                }
            }
            (State::Closed { failures }, false) if failures + 1 < self.settings.failures_to_open => {
                self.state = State::Closed { failures: failures + 1 };
                Transition::None
            }
            (State::Open { .. }, false) => Transition::None,
            (_, false) => {
                self.state = State::Open { until_ms: now_ms + self.settings.open_ms };
                Transition::Opened
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Breaker {
        Breaker::new(BreakerSettings { failures_to_open: 3, open_ms: 1_000, probe_timeout_ms: 500 })
    }

    #[test]
    fn opens_after_consecutive_failures_and_skips_until_the_probe() {
        let mut b = breaker();
        for t in 0..2 {
            assert_eq!(b.permit(t), Permit::Call);
            assert_eq!(b.report(t, false), Transition::None);
        }
        assert_eq!(b.report(2, true), Transition::None, "a success resets the count");
        for t in 3..5 {
            b.report(t, false);
        }
        assert_eq!(b.report(5, false), Transition::Opened);
        assert_eq!(b.permit(100), Permit::Skip);
        assert_eq!(b.permit(1_004), Permit::Skip);
        assert_eq!(b.permit(1_005), Permit::Probe);
        assert_eq!(b.permit(1_006), Permit::Skip, "one probe at a time");
        assert_eq!(b.report(1_010, true), Transition::Closed);
        assert_eq!(b.permit(1_011), Permit::Call);
    }

    #[test]
    fn a_failed_probe_reopens_and_a_lost_probe_is_replaced() {
        let mut b = breaker();
        for t in 0..3 {
            b.report(t, false);
        }
        assert_eq!(b.permit(1_002), Permit::Probe);
        assert_eq!(b.report(1_003, false), Transition::Opened);
        assert_eq!(b.permit(1_500), Permit::Skip);
        assert_eq!(b.permit(2_003), Permit::Probe);
        // The probe's caller vanished: after the probe timeout another probe goes out.
        assert_eq!(b.permit(2_400), Permit::Skip);
        assert_eq!(b.permit(2_503), Permit::Probe);
    }
}
