//! Benchmark figures for a run of seeds: simulated seconds per wall second, trace events per wall
//! second, peak RSS, and the percentiles of every metric the scenario's checker reported.
//!
//! Runs go one at a time so wall time is the engine's, not the scheduler's; figures are ratios
//! measured within one process run, as the machines here are noisy.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::runner::{run, RunReport, RunRequest};
use crate::scenario::Scenario;

pub struct Figures {
    pub scenario: String,
    pub engine: String,
    pub runs: usize,
    pub failed: usize,
    pub sim_s: f64,
    pub wall_s: f64,
    pub events: u64,
    pub peak_rss_mib: Option<f64>,
    /// Per metric: (p50, p99, mean) over the runs that reported it.
    pub metrics: BTreeMap<String, (f64, f64, f64)>,
}

pub fn measure(
    scenario: &'static Scenario,
    seeds: std::ops::Range<u64>,
    config: Option<&str>,
) -> std::io::Result<Figures> {
    let mut reports: Vec<RunReport> = Vec::new();
    for seed in seeds {
        let req = RunRequest::new(scenario, seed).with_config(config);
        reports.push(run(req)?);
    }
    Ok(figures(scenario.name, &reports))
}

pub fn figures(scenario: &str, reports: &[RunReport]) -> Figures {
    let mut by_metric: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for r in reports {
        for (k, v) in &r.metrics {
            by_metric.entry(k.clone()).or_default().push(*v);
        }
    }
    Figures {
        scenario: scenario.to_string(),
        engine: reports.first().map(|r| r.engine.to_string()).unwrap_or_default(),
        runs: reports.len(),
        failed: reports.iter().filter(|r| !r.passed).count(),
        sim_s: reports.iter().map(|r| r.sim_time_ms as f64 / 1000.0).sum(),
        wall_s: reports.iter().map(|r| r.wall_ms as f64 / 1000.0).sum(),
        events: reports.iter().map(|r| r.events).sum(),
        peak_rss_mib: peak_rss_mib(),
        metrics: by_metric.into_iter().map(|(k, v)| (k, summarize(v))).collect(),
    }
}

/// (p50, p99, mean) by the nearest-rank method.
pub fn summarize(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    let rank = |p: f64| {
        let i = ((p * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1;
        values[i]
    };
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    (rank(0.50), rank(0.99), mean)
}

/// The process's peak resident set (Linux `VmHWM`), if readable.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

impl Figures {
    pub fn render(&self) -> String {
        let mut out = String::new();
        let wall = self.wall_s.max(1e-9);
        let _ = writeln!(out, "{} on {}: {} runs ({} failed)", self.scenario, self.engine, self.runs, self.failed);
        let _ = writeln!(out, "  simulated seconds per wall second: {:.0}", self.sim_s / wall);
        let _ = writeln!(out, "  trace events per wall second:      {:.0}", self.events as f64 / wall);
        let _ = writeln!(
            out,
            "  wall time:                         {:.2} s for {:.0} simulated s",
            self.wall_s, self.sim_s
        );
        match self.peak_rss_mib {
            Some(m) => {
                let _ = writeln!(out, "  peak RSS:                          {m:.1} MiB");
            }
            None => {
                let _ = writeln!(out, "  peak RSS:                          unavailable");
            }
        }
        for (name, (p50, p99, mean)) in &self.metrics {
            let _ = writeln!(out, "  {name}: p50 {p50:.1}  p99 {p99:.1}  mean {mean:.1}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(summarize(v), (50.0, 99.0, 50.5));
        assert_eq!(summarize(vec![7.0]), (7.0, 7.0, 7.0));
    }
}
