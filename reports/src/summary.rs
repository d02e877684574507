//! `summary.json`: one entry per run of a sweep, plus totals and the sweep-level verdicts.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use scenarios::{RunReport, Scenario};
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Summary {
    pub scenarios: Vec<String>,
    pub config: Option<String>,
    pub seeds: String,
    pub engine: String,
    pub total: usize,
    pub passed: usize,
    pub failed: usize,
    /// "Sometimes" records summed over the sweep, per scenario.
    pub sometimes: BTreeMap<String, BTreeMap<String, u64>>,
    /// Sweep-level failures: a scenario whose faults never fired is not testing anything.
    pub sweep_violations: Vec<String>,
    pub replay: Vec<String>,
    pub runs: Vec<RunReport>,
}

impl Summary {
    pub fn new(scenarios: &[&Scenario], config: Option<String>, seeds: String, runs: Vec<RunReport>) -> Self {
        let mut sometimes: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for r in &runs {
            let totals = sometimes.entry(r.scenario.clone()).or_default();
            for (k, v) in &r.sometimes {
                *totals.entry(k.clone()).or_default() += v;
            }
        }
        let mut run_counts: BTreeMap<&str, usize> = BTreeMap::new();
        for r in &runs {
            *run_counts.entry(r.scenario.as_str()).or_default() += 1;
        }
        let sweep_violations = unreached(scenarios, &sometimes, &run_counts, config.as_deref());
        let passed = runs.iter().filter(|r| r.passed).count();
        Summary {
            scenarios: scenarios.iter().map(|s| s.name.to_string()).collect(),
            config,
            seeds,
            engine: runs.first().map(|r| r.engine.to_string()).unwrap_or_default(),
            total: runs.len(),
            passed,
            failed: runs.len() - passed,
            sometimes,
            sweep_violations,
            replay: runs.iter().filter(|r| !r.passed).map(RunReport::replay_command).collect(),
            runs,
        }
    }

    /// True when every run passed and the sweep reached what it must.
    pub fn ok(&self) -> bool {
        self.failed == 0 && self.sweep_violations.is_empty()
    }

    pub fn write(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let json = serde_json::to_string_pretty(self).expect("summary serializes");
        std::fs::write(dir.join("summary.json"), json)?;
        std::fs::write(dir.join("report.md"), crate::chart::markdown(self))?;
        std::fs::write(dir.join("sim-time.svg"), crate::chart::sim_time_svg(self))?;
        if let Some(svg) = crate::chart::availability_svg(self) {
            std::fs::write(dir.join("availability.svg"), svg)?;
        }
        Ok(())
    }
}

/// Fewer runs than this are too few to expect every rare state.
pub const MIN_RUNS_FOR_SOMETIMES: usize = 10;

/// Sometimes records each scenario's sweep should have reached but did not. Only checked for
/// the default config over enough seeds to expect them.
fn unreached(
    scenarios: &[&Scenario],
    sometimes: &BTreeMap<String, BTreeMap<String, u64>>,
    run_counts: &BTreeMap<&str, usize>,
    config: Option<&str>,
) -> Vec<String> {
    let mut out = Vec::new();
    for s in scenarios {
        let runs = run_counts.get(s.name).copied().unwrap_or(0);
        if config.is_some() || runs < MIN_RUNS_FOR_SOMETIMES {
            continue;
        }
        let empty = BTreeMap::new();
        let seen = sometimes.get(s.name).unwrap_or(&empty);
        for must in s.sweep_must_reach {
            if seen.get(*must).copied().unwrap_or(0) == 0 {
                out.push(format!("{}: the sweep never reached `{must}`", s.name));
            }
        }
    }
    out
}
