//! Liveness: after the last heal (or from `warmup_ms` in a run without faults), each user-facing
//! capability (`login`, `load`, `edit`) worked again within `bound_ms`, judged only when the
//! users were still active that long after the heal.

use sim::Outcome;

use crate::scenario::{Checker, Verdict};
use crate::stack::observe::Live;

pub struct LivenessChecker {
    pub whats: &'static [&'static str],
    pub bound_ms: u64,
    pub warmup_ms: u64,
    /// When the users stop (after this nothing is expected).
    pub active_until_ms: u64,
}

impl Checker for LivenessChecker {
    fn check(&self, outcome: &Outcome, verdict: &mut Verdict) {
        outcome.observations(|o| {
            let from = o.last_heal_ms().unwrap_or(self.warmup_ms).max(self.warmup_ms);
            if from + self.bound_ms > self.active_until_ms {
                return;
            }
            for what in self.whats {
                let first_ok =
                    o.of::<Live>().find(|l| l.value.ok && l.value.what == *what && l.t_ms >= from).map(|l| l.t_ms);
                match first_ok {
                    Some(t) => {
                        verdict.metric(&format!("{what}_back_after_heal_ms"), (t - from) as f64);
                        if t > from + self.bound_ms {
                            verdict.violation(
                                "liveness",
                                format!("{what} back {} ms after {from} ms (bound {} ms)", t - from, self.bound_ms),
                            );
                        }
                    }
                    None => verdict.violation("liveness", format!("{what} never worked after {from} ms")),
                }
            }
        });
    }
}
