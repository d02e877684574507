//! Benchmark figures for a run of seeds: simulated seconds per wall second, trace events per wall
//! second, peak RSS, and the percentiles of every metric the scenario's checker reported.
//!
//! Runs go one at a time so wall time is the engine's, not the scheduler's; figures are ratios
//! measured within one process run, as the machines here are noisy.
//!
//! [`table`] puts the figures of several scenarios, and of both engines, side by side with
//! their ratio to the speed the simulator aims at ([`TARGET_SIM_RATE`]) and the least it should
//! reach ([`FLOOR_SIM_RATE`]); [`Figures::to_json`] and [`Figures::from_json`] carry one
//! engine's figures to the process that prints the table (each engine is its own build).

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Deserialize;

use crate::runner::{run, RunReport, RunRequest};
use crate::scenario::Scenario;

/// Simulated seconds per wall second the full stack should reach on madsim.
pub const TARGET_SIM_RATE: f64 = 1000.0;
/// Simulated seconds per wall second below which the full stack is too slow to sweep.
pub const FLOOR_SIM_RATE: f64 = 300.0;

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
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
    #[serde(default)]
    pub metrics: BTreeMap<String, (f64, f64, f64)>,
}

/// The JSON of [`Figures`]: the figures and the rates the table shows.
#[derive(serde::Serialize)]
struct FiguresJson<'a> {
    #[serde(flatten)]
    figures: &'a Figures,
    sim_s_per_wall_s: f64,
    events_per_wall_s: f64,
    seeds_per_hour: f64,
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
    /// Simulated seconds per wall second.
    pub fn sim_rate(&self) -> f64 {
        self.sim_s / self.wall_s.max(1e-9)
    }

    pub fn events_rate(&self) -> f64 {
        self.events as f64 / self.wall_s.max(1e-9)
    }

    /// Seeds one core runs in an hour, one after another.
    pub fn seeds_per_hour(&self) -> f64 {
        self.runs as f64 * 3600.0 / self.wall_s.max(1e-9)
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(FiguresJson {
            figures: self,
            sim_s_per_wall_s: self.sim_rate(),
            events_per_wall_s: self.events_rate(),
            seeds_per_hour: self.seeds_per_hour(),
        })
        .expect("figures serialize")
    }

    /// Figures as [`Figures::to_json`] wrote them (the rates are recomputed, not read).
    pub fn from_json(value: &serde_json::Value) -> Result<Figures, serde_json::Error> {
        Figures::deserialize(value)
    }

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

/// The figures as one markdown table: a row per scenario and engine, with the ratio of the
/// simulation speed to [`TARGET_SIM_RATE`] and [`FLOOR_SIM_RATE`] and, where both engines ran a
/// scenario, of madsim's speed to turmoil's. Peak RSS is the process's, so within one process
/// a later row's includes the earlier rows'.
pub fn table(rows: &[Figures]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| scenario | engine | seeds (failed) | simulated s per wall s | of target {TARGET_SIM_RATE:.0} | \
         of floor {FLOOR_SIM_RATE:.0} | trace events per wall s | seeds per hour, one core | peak RSS | madsim / turmoil |"
    );
    let _ = writeln!(out, "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for f in rows {
        let rate = f.sim_rate();
        let other = |engine: &str| rows.iter().find(|o| o.scenario == f.scenario && o.engine == engine);
        let versus = match (other("madsim"), other("turmoil")) {
            (Some(m), Some(t)) if f.engine == "madsim" => format!("{:.2}", m.sim_rate() / t.sim_rate().max(1e-9)),
            _ => String::new(),
        };
        let rss = f.peak_rss_mib.map_or("n/a".to_string(), |m| format!("{m:.0} MiB"));
        let _ = writeln!(
            out,
            "| {} | {} | {} ({}) | {} | {:.3} | {:.3} | {:.0} | {:.0} | {} | {} |",
            f.scenario,
            f.engine,
            f.runs,
            f.failed,
            figure(rate),
            rate / TARGET_SIM_RATE,
            rate / FLOOR_SIM_RATE,
            f.events_rate(),
            f.seeds_per_hour(),
            rss,
            versus
        );
    }
    out
}

/// A rate with the digits that matter: turmoil runs the stack at one or two simulated seconds
/// per wall second.
fn figure(x: f64) -> String {
    if x < 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(scenario: &str, engine: &str, sim_s: f64, wall_s: f64) -> Figures {
        Figures {
            scenario: scenario.into(),
            engine: engine.into(),
            runs: 2,
            failed: 0,
            sim_s,
            wall_s,
            events: 1_000,
            peak_rss_mib: Some(100.0),
            metrics: BTreeMap::new(),
        }
    }

    #[test]
    fn table_rates_and_ratios() {
        let rows = [figures("steady", "madsim", 1_200.0, 4.0), figures("steady", "turmoil", 1_200.0, 12.0)];
        let t = table(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4);
        // 300 simulated s per wall s: 0.30 of the target, 1.00 of the floor, 3x turmoil's 100.
        assert_eq!(lines[2], "| steady | madsim | 2 (0) | 300 | 0.300 | 1.000 | 250 | 1800 | 100 MiB | 3.00 |");
        assert_eq!(lines[3], "| steady | turmoil | 2 (0) | 100 | 0.100 | 0.333 | 83 | 600 | 100 MiB |  |");
        let slow = table(&[figures("kill-az", "turmoil", 680.0, 400.0)]);
        assert!(slow.contains("| kill-az | turmoil | 2 (0) | 1.7 | 0.002 | 0.006 |"), "{slow}");
    }

    #[test]
    fn json_round_trip() {
        let f = figures("kill-az", "turmoil", 680.0, 17.0);
        let json = f.to_json();
        assert_eq!(json["sim_s_per_wall_s"], 40.0);
        let back = Figures::from_json(&json).unwrap();
        assert_eq!((back.scenario.as_str(), back.runs, back.sim_s, back.wall_s), ("kill-az", 2, 680.0, 17.0));
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(summarize(v), (50.0, 99.0, 50.5));
        assert_eq!(summarize(vec![7.0]), (7.0, 7.0, 7.0));
    }
}
