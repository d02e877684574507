//! What a scenario is: a named recipe that turns (seed, config) into a plan and a checker.

use sim::{Outcome, Plan};

/// The checker of one run: reads the outcome and the scenario's own history, returns the
/// violations (empty when every invariant held).
pub type Check = Box<dyn FnOnce(&Outcome) -> Vec<String> + Send>;

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
