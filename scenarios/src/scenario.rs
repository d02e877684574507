//! What a scenario is: a named recipe that draws a fault schedule from a seed, and turns (seed,
//! config, schedule) into a plan and the checkers that judge it.
//!
//! The schedule is an input: a run normally takes the one its seed draws, but can be given any
//! other (a file, or a shrinker's candidate), and the checkers must judge it by what the
//! observations say happened, never by what the draw intended.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use sim::{Outcome, Plan, Scheduled};

/// A broken invariant: its kind (`lost commit`, `split brain`, `liveness`...) and what broke.
/// The kind is what a shrinker holds on to and what reports group by.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    pub kind: String,
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

/// What the checkers conclude about one run.
#[derive(Debug, Default)]
pub struct Verdict {
    /// One entry per broken invariant; empty when every invariant held.
    pub violations: Vec<Violation>,
    /// Measurements of the run (e.g. `failover_ms`, `commits_per_sim_s`) that benchmarks and
    /// reports aggregate over seeds. Units last in names.
    pub metrics: BTreeMap<String, f64>,
    /// Acknowledged data the checkers found lost, one entry per lost item: what it was (`append`,
    /// `commit`, `edit`) and when it was acknowledged. Reports print the count (zero as zero)
    /// and the window it spans. A loss that breaks a promise is also a violation.
    pub lost: Vec<Lost>,
}

/// One acknowledged item that did not survive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lost {
    pub what: String,
    pub acked_at_ms: u64,
}

impl Verdict {
    /// Records one acknowledged item lost (see [`Verdict::lost`]).
    pub fn data_lost(&mut self, what: &str, acked_at_ms: u64) {
        self.lost.push(Lost { what: what.to_string(), acked_at_ms });
    }

    pub fn violation(&mut self, kind: &str, message: impl Into<String>) {
        self.violations.push(Violation { kind: kind.to_string(), message: message.into() });
    }

    /// Lists at most `at_most` violations of `kind`, then one saying how many more there were.
    pub fn violations_upto(&mut self, kind: &str, mut messages: Vec<String>, at_most: usize) {
        let more = messages.len().saturating_sub(at_most);
        messages.truncate(at_most);
        for m in messages {
            self.violation(kind, m);
        }
        if more > 0 {
            self.violation(kind, format!("{more} more"));
        }
    }

    pub fn metric(&mut self, name: &str, value: f64) {
        self.metrics.insert(name.to_string(), value);
    }
}

/// Judges a finished run from its observations and the final world (the members' disks), and
/// adds what it finds to the verdict. A checker reads nothing from the scenario that built it
/// beyond what it was constructed with (node names, bounds), so scenarios can combine any of
/// them.
pub trait Checker: Send {
    fn check(&self, outcome: &Outcome, verdict: &mut Verdict);
}

/// A built run: what to simulate and the checkers that judge it.
pub struct Built {
    pub plan: Plan,
    pub checkers: Vec<Box<dyn Checker>>,
}

impl Built {
    pub fn new(plan: Plan) -> Self {
        Built { plan, checkers: Vec::new() }
    }

    pub fn checker(mut self, checker: impl Checker + 'static) -> Self {
        self.checkers.push(Box::new(checker));
        self
    }
}

/// A window a sweep must show it reaches, in at least `min_rate` of its runs.
#[derive(Clone, Copy, Debug)]
pub struct WindowProbe {
    /// The "sometimes" name a run records when it is inside the window.
    pub name: &'static str,
    pub min_rate: sim::ratio::Ratio,
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
    /// Deciding windows (a protected commit in flight at a failover, the Sentinels split...)
    /// the scenario's faults exist to reach, each with the least share of runs that must reach
    /// it. A run reaches a probe when it records the probe's name as a "sometimes".
    pub window_probes: &'static [WindowProbe],
    /// The fault schedule a seed draws (what a run uses unless it is given one).
    pub draw: fn(seed: u64, config: Option<&str>) -> Vec<Scheduled>,
    /// The run for a seed and config, under the given schedule.
    pub build: fn(seed: u64, config: Option<&str>, schedule: Vec<Scheduled>) -> Built,
}

impl Scenario {
    pub fn has_config(&self, config: &str) -> bool {
        self.configs.iter().any(|(c, _)| *c == config)
    }
}

/// A checker written as a function of the outcome.
impl<F> Checker for F
where
    F: Fn(&Outcome, &mut Verdict) + Send,
{
    fn check(&self, outcome: &Outcome, verdict: &mut Verdict) {
        self(outcome, verdict)
    }
}
