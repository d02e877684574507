//! The availability report of a sweep: `report.json` (schema in `docs/report-schema.md`),
//! `report.md`, `report.html` and `junit.xml`, built from a [`Summary`] (a sweep's, a merge of
//! shards', or one read back by `cargo chaos report DIR`).
//!
//! Per scenario and configuration it gives runs and failures (each with its replay and shrink
//! commands), invariants (each violation kind that failed, with its seeds; every other invariant
//! held), "sometimes" coverage, window probes, and, where the scenario's clients record
//! [`sim::observation::OpOutcome`]s: availability per operation class against an SLO with the
//! error budget burned, latency percentiles from merged `hdrhistogram`s, recovery time per fault
//! kind, and the acknowledged data lost. A figure a scenario does not measure is `null` in JSON
//! and "not measured" in text, never a flattering zero; a measured zero is printed as zero.
//!
//! Recovery time of a fault: from the fault to the start of the first second of invocation time,
//! after the first second below the SLO, whose availability (all classes together) is back at or
//! above it. A fault after which no second falls below the SLO (before its window ended plus
//! [`RECOVERY_GRACE_MS`]) recovered in 0 ms; one never back above the SLO before the workload
//! ended is counted as unrecovered. The arithmetic here is floating point; it judges a report
//! and never feeds a simulation.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use hdrhistogram::Histogram;
use scenarios::availability::{add_buckets, histogram, Availability};
use scenarios::RunReport;
use serde::Serialize;

use crate::probes::ProbeRate;
use crate::Summary;

/// `report.json`'s schema version; bumped when a field changes meaning or goes away (new fields
/// may appear without a bump).
pub const SCHEMA_VERSION: u32 = 1;

/// How long after a fault window ends an outage that starts is still charged to that fault.
pub const RECOVERY_GRACE_MS: u64 = 10_000;

/// Report settings.
#[derive(Clone, Debug)]
pub struct Options {
    /// The availability objective, in percent (99.9 by default).
    pub slo_percent: f64,
    /// The seed whose timeline the charts draw (default: the first failing run with figures,
    /// else the first with figures).
    pub seed: Option<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Options { slo_percent: 99.9, seed: None }
    }
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub version: u32,
    pub scenarios: Vec<String>,
    pub config: Option<String>,
    pub seeds: String,
    pub shard: Option<String>,
    pub engine: String,
    pub slo_percent: f64,
    /// True when every run passed and every judged requirement held.
    pub ok: bool,
    /// True when no run of a safe configuration (the default or one not flagged unsafe) failed
    /// and every judged requirement held: what a nightly job fails on.
    pub safe_ok: bool,
    pub total: usize,
    pub passed: usize,
    pub failed: usize,
    pub sweep_violations: Vec<String>,
    pub groups: Vec<Group>,
    /// The run the charts draw over time, if any run has figures.
    pub timeline: Option<TimelineRef>,
}

/// One scenario under one configuration.
#[derive(Debug, Serialize)]
pub struct Group {
    pub scenario: String,
    /// `null` for the default configuration.
    pub config: Option<String>,
    #[serde(rename = "unsafe")]
    pub is_unsafe: bool,
    pub runs: usize,
    pub passed: usize,
    pub failed: usize,
    pub failures: Vec<Failure>,
    /// Each violation kind that failed some run; every invariant not listed held in every run.
    pub invariants: Vec<Invariant>,
    /// Each "sometimes" record seen or required, with the runs it fired in.
    pub sometimes: Vec<Sometimes>,
    pub probes: Vec<ProbeRate>,
    /// `null` when the scenario's clients record no operations.
    pub availability: Option<BTreeMap<String, ClassReport>>,
    /// Per fault kind; `null` when not measured.
    pub recovery_ms: Option<BTreeMap<String, RecoveryReport>>,
    /// `null` when not measured.
    pub data_lost: Option<DataLost>,
}

#[derive(Debug, Serialize)]
pub struct Failure {
    pub seed: u64,
    pub violations: Vec<scenarios::Violation>,
    pub replay: String,
    pub shrink: String,
}

#[derive(Debug, Serialize)]
pub struct Invariant {
    pub kind: String,
    pub failed_runs: usize,
    pub seeds: Vec<u64>,
    /// The replay command of its first failing seed.
    pub replay: String,
}

#[derive(Debug, Serialize)]
pub struct Sometimes {
    pub name: String,
    pub runs_fired: usize,
    pub runs: usize,
    /// A must-reach record or a window probe of the scenario.
    pub required: bool,
}

#[derive(Debug, Serialize)]
pub struct ClassReport {
    pub attempted: u64,
    pub ok: u64,
    /// `ok / attempted`, in percent.
    pub availability_percent: f64,
    pub slo_percent: f64,
    pub meets_slo: bool,
    /// The share of the error budget `(100 − slo)` the failures used, in percent (over 100: blown).
    pub error_budget_burned_percent: f64,
    /// Of successful operations, from the merged histogram (ms).
    pub latency_ms: Option<Percentiles>,
}

#[derive(Debug, PartialEq, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

#[derive(Debug, Serialize)]
pub struct RecoveryReport {
    pub faults: usize,
    /// Faults after which availability came back above the SLO before the workload ended.
    pub recovered: usize,
    pub p50: Option<u64>,
    pub p99: Option<u64>,
    pub max: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct DataLost {
    /// Acknowledged items lost, over all runs (0 when none).
    pub count: usize,
    pub runs_with_loss: usize,
    /// Per kind of item (`append`, `commit`...).
    pub by_what: BTreeMap<String, usize>,
    /// The span of acknowledgement times of lost items (ms of simulated time, within their runs).
    pub first_acked_ms: Option<u64>,
    pub last_acked_ms: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct TimelineRef {
    pub scenario: String,
    pub config: Option<String>,
    pub seed: u64,
}

impl Report {
    pub fn build(s: &Summary, options: &Options) -> Report {
        let slo = options.slo_percent;
        let mut keys: Vec<(String, Option<String>)> = Vec::new();
        for r in &s.runs {
            let k = (r.scenario.clone(), r.config.clone());
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        let groups: Vec<Group> = keys
            .into_iter()
            .map(|(scenario, config)| {
                let runs: Vec<&RunReport> =
                    s.runs.iter().filter(|r| r.scenario == scenario && r.config == config).collect();
                group(s, scenario, config, &runs, slo)
            })
            .collect();
        let safe_ok = s.sweep_violations.is_empty() && groups.iter().all(|g| g.is_unsafe || g.failed == 0);
        let timeline = timeline_run(s, options.seed).map(|r| TimelineRef {
            scenario: r.scenario.clone(),
            config: r.config.clone(),
            seed: r.seed,
        });
        Report {
            schema: "chaos-report",
            version: SCHEMA_VERSION,
            scenarios: s.scenarios.clone(),
            config: s.config.clone(),
            seeds: s.seeds.clone(),
            shard: s.shard.clone(),
            engine: s.engine.clone(),
            slo_percent: slo,
            ok: s.ok(),
            safe_ok,
            total: s.total,
            passed: s.passed,
            failed: s.failed,
            sweep_violations: s.sweep_violations.clone(),
            groups,
            timeline,
        }
    }
}

/// The run whose timeline the charts draw.
pub fn timeline_run(s: &Summary, seed: Option<u64>) -> Option<&RunReport> {
    let with = |r: &&RunReport| r.availability.is_some();
    match seed {
        Some(seed) => s.runs.iter().filter(with).find(|r| r.seed == seed),
        None => s.runs.iter().filter(with).find(|r| !r.passed).or_else(|| s.runs.iter().find(with)),
    }
}

fn group(s: &Summary, scenario: String, config: Option<String>, runs: &[&RunReport], slo: f64) -> Group {
    let known = scenarios::all().iter().find(|x| x.name == scenario);
    let is_unsafe = known.is_some_and(|k| crate::catalog::config_is_unsafe(k, config.as_deref()));
    let failures: Vec<Failure> = runs
        .iter()
        .filter(|r| !r.passed)
        .map(|r| Failure {
            seed: r.seed,
            violations: r.violations.clone(),
            replay: r.replay_command(),
            shrink: r.shrink_command(),
        })
        .collect();
    let mut invariants: BTreeMap<String, Invariant> = BTreeMap::new();
    for r in runs.iter().filter(|r| !r.passed) {
        for kind in r.violation_kinds() {
            let inv = invariants.entry(kind.to_string()).or_insert_with(|| Invariant {
                kind: kind.to_string(),
                failed_runs: 0,
                seeds: Vec::new(),
                replay: r.replay_command(),
            });
            inv.failed_runs += 1;
            inv.seeds.push(r.seed);
        }
    }
    let mut fired: BTreeMap<String, usize> = BTreeMap::new();
    for r in runs {
        for (k, v) in &r.sometimes {
            if *v > 0 {
                *fired.entry(k.clone()).or_default() += 1;
            }
        }
    }
    let required: Vec<&str> = known
        .map(|k| k.sweep_must_reach.iter().copied().chain(k.window_probes.iter().map(|p| p.name)).collect())
        .unwrap_or_default();
    for name in &required {
        fired.entry(name.to_string()).or_default();
    }
    let sometimes = fired
        .into_iter()
        .map(|(name, n)| Sometimes {
            required: required.contains(&name.as_str()),
            name,
            runs_fired: n,
            runs: runs.len(),
        })
        .collect();
    let probes = s.probes.iter().filter(|p| p.scenario == scenario && config == s.config).cloned().collect();
    let figures: Vec<&Availability> = runs.iter().filter_map(|r| r.availability.as_ref()).collect();
    let measured = !figures.is_empty();
    Group {
        passed: runs.len() - failures.len(),
        failed: failures.len(),
        runs: runs.len(),
        scenario,
        config,
        is_unsafe,
        failures,
        invariants: invariants.into_values().collect(),
        sometimes,
        probes,
        availability: measured.then(|| classes(&figures, slo)),
        recovery_ms: measured.then(|| recovery(&figures, slo)),
        data_lost: measured.then(|| data_lost(&figures)),
    }
}

fn classes(figures: &[&Availability], slo: f64) -> BTreeMap<String, ClassReport> {
    let mut acc: BTreeMap<&str, (u64, u64, Histogram<u64>)> = BTreeMap::new();
    for a in figures {
        for (class, c) in &a.classes {
            let e = acc.entry(class.as_str()).or_insert_with(|| (0, 0, histogram()));
            e.0 += c.attempted;
            e.1 += c.ok;
            add_buckets(&mut e.2, &c.latency_ms);
        }
    }
    acc.into_iter()
        .map(|(class, (attempted, ok, h))| {
            let availability = if attempted == 0 { 100.0 } else { 100.0 * ok as f64 / attempted as f64 };
            let budget = 100.0 - slo;
            let report = ClassReport {
                attempted,
                ok,
                availability_percent: availability,
                slo_percent: slo,
                meets_slo: availability >= slo,
                error_budget_burned_percent: 100.0 * (100.0 - availability) / budget,
                latency_ms: percentiles(&h),
            };
            (class.to_string(), report)
        })
        .collect()
}

/// p50, p90, p99, p99.9 and max of a histogram, `None` when it is empty.
pub fn percentiles(h: &Histogram<u64>) -> Option<Percentiles> {
    if h.is_empty() {
        return None;
    }
    let q = |q: f64| h.value_at_quantile(q);
    Some(Percentiles { count: h.len(), p50: q(0.5), p90: q(0.9), p99: q(0.99), p999: q(0.999), max: h.max() })
}

/// Availability per second of invocation time, all classes together: `(t_s, attempted, ok)`.
pub fn seconds(a: &Availability) -> BTreeMap<u64, (u64, u64)> {
    let mut out: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for c in a.classes.values() {
        for b in &c.timeline {
            let e = out.entry(b.t_s).or_default();
            e.0 += b.attempted;
            e.1 += b.ok;
        }
    }
    out
}

/// Each fault of a run with its recovery time (`None`: not back above the SLO before the end).
pub fn recoveries(a: &Availability, slo: f64) -> Vec<(String, Option<u64>)> {
    let secs = seconds(a);
    let below = |(att, ok): (u64, u64)| att > 0 && 100.0 * ok as f64 / (att as f64) < slo;
    a.faults
        .iter()
        .map(|f| {
            let from_s = f.start_ms / 1000;
            let charge_until_s = (f.end_ms + RECOVERY_GRACE_MS) / 1000;
            let outage = secs.range(from_s..=charge_until_s).find(|(_, v)| below(**v)).map(|(t, _)| *t);
            let recovered = match outage {
                None => Some(0),
                Some(t) => secs
                    .range(t + 1..)
                    .find(|(_, v)| v.0 > 0 && !below(**v))
                    .map(|(back_s, _)| (back_s * 1000).saturating_sub(f.start_ms)),
            };
            (f.kind.clone(), recovered)
        })
        .collect()
}

fn recovery(figures: &[&Availability], slo: f64) -> BTreeMap<String, RecoveryReport> {
    let mut by: BTreeMap<String, Vec<Option<u64>>> = BTreeMap::new();
    for a in figures {
        for (kind, t) in recoveries(a, slo) {
            by.entry(kind).or_default().push(t);
        }
    }
    by.into_iter()
        .map(|(kind, times)| {
            let mut done: Vec<u64> = times.iter().flatten().copied().collect();
            done.sort_unstable();
            let r = RecoveryReport {
                faults: times.len(),
                recovered: done.len(),
                p50: nearest_rank(&done, 0.5),
                p99: nearest_rank(&done, 0.99),
                max: done.last().copied(),
            };
            (kind, r)
        })
        .collect()
}

/// The nearest-rank quantile of sorted values (exact: recovery times are few per sweep, one per
/// fault, so they are kept rather than bucketed).
fn nearest_rank(sorted: &[u64], q: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

fn data_lost(figures: &[&Availability]) -> DataLost {
    let mut by_what: BTreeMap<String, usize> = BTreeMap::new();
    let mut times: Vec<u64> = Vec::new();
    for a in figures {
        for l in &a.lost {
            *by_what.entry(l.what.clone()).or_default() += 1;
            times.push(l.acked_at_ms);
        }
    }
    DataLost {
        count: times.len(),
        runs_with_loss: figures.iter().filter(|a| !a.lost.is_empty()).count(),
        by_what,
        first_acked_ms: times.iter().min().copied(),
        last_acked_ms: times.iter().max().copied(),
    }
}

/// Writes `report.json`, `report.md`, `report.html` and `junit.xml` into `dir`.
pub fn write(s: &Summary, dir: &Path, options: &Options) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let report = Report::build(s, options);
    std::fs::write(dir.join("report.json"), serde_json::to_string_pretty(&report).expect("reports serialize"))?;
    std::fs::write(dir.join("report.md"), crate::render::markdown(s, &report))?;
    std::fs::write(dir.join("junit.xml"), crate::render::junit(s))?;
    std::fs::write(dir.join("report.html"), crate::html::html(s, &report, options))?;
    Ok(())
}
