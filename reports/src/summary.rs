//! `summary.json`: one entry per run of a sweep, plus totals and the sweep-level verdicts.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use scenarios::{RunReport, Scenario};
use serde::Serialize;

use crate::probes::ProbeRate;

#[derive(Debug, Serialize)]
pub struct Summary {
    pub scenarios: Vec<String>,
    pub config: Option<String>,
    pub seeds: String,
    /// The slice of `seeds` this sweep ran (`i/n`, see `shard`); absent for a whole sweep.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    pub engine: String,
    pub total: usize,
    pub passed: usize,
    pub failed: usize,
    /// "Sometimes" records summed over the sweep, per scenario.
    pub sometimes: BTreeMap<String, BTreeMap<String, u64>>,
    /// Each scenario's window probes and must-reach records: how many runs reached them, and
    /// whether the sweep was large enough to judge that (see `probes`).
    pub probes: Vec<ProbeRate>,
    /// Sweep-level failures: a scenario whose faults never fired, or that reached a deciding
    /// window too rarely, is not testing what it claims.
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
        let probes: Vec<ProbeRate> =
            scenarios.iter().flat_map(|s| crate::probes::rates(s, &runs, config.is_none())).collect();
        let sweep_violations = probes
            .iter()
            .filter(|p| !p.ok)
            .map(|p| format!("{}: the sweep reached `{}` too rarely: {}", p.scenario, p.name, p.describe()))
            .collect();
        let passed = runs.iter().filter(|r| r.passed).count();
        Summary {
            scenarios: scenarios.iter().map(|s| s.name.to_string()).collect(),
            config,
            seeds,
            shard: None,
            engine: runs.first().map(|r| r.engine.to_string()).unwrap_or_default(),
            total: runs.len(),
            passed,
            failed: runs.len() - passed,
            sometimes,
            probes,
            sweep_violations,
            replay: runs.iter().filter(|r| !r.passed).map(RunReport::replay_command).collect(),
            runs,
        }
    }

    /// The same summary, marked as shard `i/n` of its seed range.
    pub fn with_shard(mut self, shard: Option<String>) -> Self {
        self.shard = shard;
        self
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
