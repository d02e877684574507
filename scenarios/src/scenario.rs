//! What a scenario is: a named recipe that turns (seed, config) into a plan and a checker.

use std::collections::BTreeMap;

use sim::{Outcome, Plan};

/// The checker of one run: reads the outcome and the scenario's own history, returns the
/// verdict.
pub type Check = Box<dyn FnOnce(&Outcome) -> Verdict + Send>;

/// What a checker concludes about one run.
#[derive(Debug, Default)]
pub struct Verdict {
    /// One line per broken invariant, saying what broke; empty when every invariant held.
    pub violations: Vec<String>,
    /// Measurements of the run (e.g. `failover_ms`, `commits_per_sim_s`) that benchmarks and
    /// reports aggregate over seeds. Units last in names.
    pub metrics: BTreeMap<String, f64>,
}

impl Verdict {
    pub fn violation(&mut self, v: impl Into<String>) {
        self.violations.push(v.into());
    }

    pub fn metric(&mut self, name: &str, value: f64) {
        self.metrics.insert(name.to_string(), value);
    }
}

/// A built run: what to simulate and how to judge it.
pub struct Built {
    pub plan: Plan,
    pub check: Check,
}

/// A registered scenario.
pub struct Scenario {
    pub name: &'static str,
    pub about: &'static str,
    /// Named variants (`--config NAME`), each with a one-line description. Unsafe variants
    /// exist to prove the checkers can fail.
    pub configs: &'static [(&'static str, &'static str)],
    /// "Sometimes" records a sweep of this scenario must reach at least once, proving its
    /// faults really happened.
    pub sweep_must_reach: &'static [&'static str],
    pub build: fn(seed: u64, config: Option<&str>) -> Built,
}

impl Scenario {
    pub fn has_config(&self, config: &str) -> bool {
        self.configs.iter().any(|(c, _)| *c == config)
    }
}
