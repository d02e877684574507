//! How often a sweep's runs reached what they exist to reach, and whether that is too rarely.
//!
//! A scenario names two kinds of requirements: records its sweep must reach at least once
//! (`sweep_must_reach`: the faults really fired) and window probes with a minimum rate (a
//! protected commit in flight at a failover, the Sentinels split...). Both are judged by one rule,
//! so that a small sweep never fails for bad luck and a large one never passes a dead probe:
//!
//! - A requirement has a minimum rate `r`: a window probe states it; a must-reach record takes
//!   the rate of a probe of the same name, or [`MUST_REACH_RATE`].
//! - A sweep of `n` runs judges it only if a probe working at rate `r` would miss every run with
//!   chance below [`MISS_CHANCE`]: `(1 − r)^n < 1/1000`. Smaller sweeps report the rate and say
//!   how many runs judging needs (66 at 1/10, 135 at 1/20, 1380 at 1/200).
//! - A judged requirement fails when its count `k` is one a probe working at rate `r` would fall
//!   to or below with chance under [`MISS_CHANCE`]: `P[Binomial(n, r) ≤ k] < 1/1000`.
//!
//! Only sweeps of a scenario's default config are judged: unsafe variants change what runs reach.
//! The arithmetic here is floating point; it judges a report and never feeds a simulation.

use serde::Serialize;

use scenarios::{RunReport, Scenario};

/// The chance of a false alarm the rule accepts: a requirement working at its minimum rate fails a
/// sweep at most once in a thousand sweeps.
pub const MISS_CHANCE: (u64, u64) = (1, 1000);

/// The rate a must-reach record is assumed to have when no probe of its name states one.
pub const MUST_REACH_RATE: (u32, u32) = (1, 10);

/// One requirement over one sweep.
#[derive(Clone, Debug, Serialize)]
pub struct ProbeRate {
    pub scenario: String,
    /// The "sometimes" record it counts.
    pub name: String,
    /// "window" for a window probe, "must_reach" for a record the sweep must reach.
    pub requirement: &'static str,
    /// Runs that reached it.
    pub reached: usize,
    pub runs: usize,
    /// `reached / runs`.
    pub rate: f64,
    /// The least rate a working probe has, as "num/den".
    pub min_rate: String,
    /// Runs a sweep needs before this requirement is judged.
    pub runs_to_judge: usize,
    /// Whether this sweep was large enough (and of the default config) to judge it.
    pub judged: bool,
    /// False only when judged and too rare.
    pub ok: bool,
}

impl ProbeRate {
    /// The line a sweep prints and a report lists.
    pub fn describe(&self) -> String {
        let verdict = match (self.judged, self.ok) {
            (false, _) => format!("not judged (needs {} runs)", self.runs_to_judge),
            (true, true) => "ok".to_string(),
            (true, false) => "TOO RARE".to_string(),
        };
        format!(
            "{} `{}`: {}/{} runs ({:.1}%), at least {}: {verdict}",
            self.scenario,
            self.name,
            self.reached,
            self.runs,
            100.0 * self.rate,
            self.min_rate
        )
    }
}

/// Every requirement of `scenario` over its runs in `runs`.
pub fn rates(scenario: &Scenario, runs: &[RunReport], default_config: bool) -> Vec<ProbeRate> {
    let mine: Vec<&RunReport> = runs.iter().filter(|r| r.scenario == scenario.name).collect();
    let reached = |name: &str| mine.iter().filter(|r| r.sometimes.get(name).copied().unwrap_or(0) > 0).count();
    let mut out = Vec::new();
    for p in scenario.window_probes {
        let rate = (p.min_rate.num, p.min_rate.den);
        out.push(judge(scenario.name, p.name, "window", rate, reached(p.name), mine.len(), default_config));
    }
    for must in scenario.sweep_must_reach {
        let stated = scenario.window_probes.iter().find(|p| p.name == *must);
        if stated.is_some() {
            continue; // already judged above, at its stated rate
        }
        out.push(judge(scenario.name, must, "must_reach", MUST_REACH_RATE, reached(must), mine.len(), default_config));
    }
    out
}

fn judge(
    scenario: &str,
    name: &str,
    requirement: &'static str,
    (num, den): (u32, u32),
    reached: usize,
    runs: usize,
    default_config: bool,
) -> ProbeRate {
    let r = f64::from(num) / f64::from(den);
    let runs_to_judge = runs_to_judge(r);
    let judged = default_config && runs >= runs_to_judge;
    let ok = !judged || lower_tail(runs, r, reached) >= miss_chance();
    ProbeRate {
        scenario: scenario.to_string(),
        name: name.to_string(),
        requirement,
        reached,
        runs,
        rate: if runs == 0 { 0.0 } else { reached as f64 / runs as f64 },
        min_rate: format!("{num}/{den}"),
        runs_to_judge,
        judged,
        ok,
    }
}

fn miss_chance() -> f64 {
    MISS_CHANCE.0 as f64 / MISS_CHANCE.1 as f64
}

/// The least `n` with `(1 − r)^n < MISS_CHANCE`; a rate of zero is never judged.
pub fn runs_to_judge(r: f64) -> usize {
    if r <= 0.0 {
        return usize::MAX;
    }
    if r >= 1.0 {
        return 1;
    }
    let n = miss_chance().ln() / (1.0 - r).ln();
    // The least integer strictly above n (equality would be a chance of exactly 1/1000).
    n.floor() as usize + 1
}

/// `P[Binomial(n, r) ≤ k]`, summed in log space so large sweeps do not underflow.
pub fn lower_tail(n: usize, r: f64, k: usize) -> f64 {
    if k >= n || r <= 0.0 {
        return 1.0;
    }
    if r >= 1.0 {
        return 0.0;
    }
    let (ln_p, ln_q) = (r.ln(), (1.0 - r).ln());
    let mut ln_term = n as f64 * ln_q; // i = 0
    let mut terms = vec![ln_term];
    for i in 0..k {
        ln_term += ((n - i) as f64).ln() - ((i + 1) as f64).ln() + ln_p - ln_q;
        terms.push(ln_term);
    }
    let top = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (top + terms.iter().map(|t| (t - top).exp()).sum::<f64>().ln()).exp().min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_needed_follow_the_stated_rule() {
        assert_eq!(runs_to_judge(0.1), 66);
        assert_eq!(runs_to_judge(0.05), 135);
        assert_eq!(runs_to_judge(1.0 / 200.0), 1379);
        assert_eq!(runs_to_judge(1.0), 1);
        assert_eq!(runs_to_judge(0.0), usize::MAX);
        // At the threshold, missing every run is just below the accepted chance.
        assert!(0.9_f64.powi(66) < 0.001 && 0.9_f64.powi(65) >= 0.001);
    }

    #[test]
    fn lower_tail_matches_the_binomial() {
        assert!((lower_tail(10, 0.5, 0) - 0.5_f64.powi(10)).abs() < 1e-12);
        let two = 0.5_f64.powi(10) * (1.0 + 10.0 + 45.0);
        assert!((lower_tail(10, 0.5, 2) - two).abs() < 1e-12);
        assert_eq!(lower_tail(10, 0.5, 10), 1.0);
        // Large sweeps: no underflow to zero where the true tail is large.
        assert!(lower_tail(2000, 0.5, 1000) > 0.5);
        assert!(lower_tail(2000, 0.5, 900) < 1e-5);
    }

    #[test]
    fn a_small_sweep_judges_nothing_and_a_large_one_catches_a_dead_probe() {
        let small = judge("s", "p", "window", (1, 10), 0, 40, true);
        assert!(!small.judged && small.ok, "{small:?}");
        let dead = judge("s", "p", "window", (1, 10), 0, 300, true);
        assert!(dead.judged && !dead.ok, "{dead:?}");
        let rare = judge("s", "p", "window", (1, 10), 10, 300, true);
        assert!(!rare.ok, "10 of 300 is far below 1 in 10: {rare:?}");
        let fine = judge("s", "p", "window", (1, 10), 25, 300, true);
        assert!(fine.ok, "25 of 300 is within chance of 1 in 10: {fine:?}");
        let variant = judge("s", "p", "window", (1, 10), 0, 300, false);
        assert!(!variant.judged && variant.ok, "unsafe variants are not judged: {variant:?}");
    }
}
