//! The subcommands.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};
use scenarios::{RunReport, RunRequest, Scenario};

use crate::args::{Command, OneRun};
use crate::seeds::{parse_range, parse_seed};

pub enum Failure {
    /// Bad input: exit 2 with one line.
    Usage(String),
    Other(anyhow::Error),
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Other(e.into())
    }
}

fn usage(msg: String) -> Failure {
    Failure::Usage(msg)
}

pub fn dispatch(command: Command) -> Result<ExitCode, Failure> {
    match command {
        Command::List { json } => Ok(list(json)),
        Command::Run { one, trace, json } => {
            let mut req = one_run(one)?;
            req.trace = trace;
            run(req, json)
        }
        Command::Sweep { scenario, seeds, config, jobs, out, json, shard, slo } => {
            let scenarios = scenario_set(&scenario, config.as_deref())?;
            let range = parse_range(&seeds).map_err(usage)?;
            let jobs = check_jobs(jobs)?;
            let shard = shard.map(|s| reports::shard::Shard::parse(&s)).transpose().map_err(usage)?;
            let options = report_options(slo, None)?;
            let out = out.unwrap_or_else(|| PathBuf::from("target/chaos/sweep"));
            let plan = SweepPlan { range, seeds: &seeds, config, shard, jobs, json };
            sweep(&scenarios, plan, &out, &options)
        }
        Command::Merge { dirs, out, slo } => {
            let options = report_options(slo, None)?;
            let files = dirs.iter().map(|d| reports::shard::ShardFile::read(d)).collect::<Result<Vec<_>, _>>();
            let merged = reports::shard::merge(files.map_err(usage)?, scenarios::all()).map_err(usage)?;
            let summary = reports::Summary::new(&merged.scenarios, merged.config, merged.seeds, merged.runs);
            finish(&summary, &out, &options)
        }
        Command::Report { dir, slo, seed } => {
            let options = report_options(slo, seed)?;
            let mut file = reports::shard::ShardFile::read(&dir).map_err(usage)?;
            // One shard's report is that shard's: not an incomplete merge.
            let shard = file.shard.take();
            let merged = reports::shard::merge(vec![file], scenarios::all()).map_err(usage)?;
            let summary =
                reports::Summary::new(&merged.scenarios, merged.config, merged.seeds, merged.runs).with_shard(shard);
            finish(&summary, &dir, &options)
        }
        Command::Replay { one, log } => {
            let req = one_run(one)?;
            crate::logging::init(&log).map_err(usage)?;
            run(req, false)
        }
        Command::Shrink { one, kind, max_runs, out } => {
            if max_runs == 0 {
                return Err(usage("--max-runs must be at least 1".into()));
            }
            let req = one_run(one)?;
            let out = out.unwrap_or_else(|| {
                let config = req.config.as_ref().map(|c| format!("-{c}")).unwrap_or_default();
                PathBuf::from(format!("target/chaos/shrink/{}{config}-{}.json", req.scenario.name, req.seed))
            });
            shrink(req, kind, max_runs, &out)
        }
        Command::Bench { scenario, seeds, config, json, against } => {
            let scenarios = scenario_list(&scenario, config.as_deref())?;
            let range = parse_range(&seeds).map_err(usage)?;
            let mut others = match &against {
                Some(path) => read_figures(path)?,
                None => Vec::new(),
            };
            let mut rows = Vec::new();
            for s in scenarios {
                let figures = scenarios::bench::measure(s, range.clone(), config.as_deref())?;
                print!("{}", figures.render());
                rows.push(figures);
            }
            if let Some(path) = &json {
                let all: Vec<serde_json::Value> = rows.iter().map(|f| f.to_json()).collect();
                std::fs::write(path, serde_json::to_string_pretty(&all).expect("figures serialize") + "\n")
                    .map_err(|e| Failure::Other(anyhow::anyhow!("writing {}: {e}", path.display())))?;
            }
            rows.append(&mut others);
            println!();
            print!("{}", scenarios::bench::table(&rows));
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckDeterminism { scenario, seeds, config, jobs } => {
            let scenarios = scenario_set(&scenario, config.as_deref())?;
            let range = parse_range(&seeds).map_err(usage)?;
            check_determinism(&scenarios, range, config, check_jobs(jobs)?)
        }
    }
}

fn check_jobs(jobs: usize) -> Result<usize, Failure> {
    if jobs == 0 {
        return Err(usage("--jobs must be at least 1".into()));
    }
    Ok(jobs)
}

fn one_scenario(name: &str, config: Option<&str>) -> Result<&'static Scenario, Failure> {
    let known = || scenarios::all().iter().map(|s| s.name).collect::<Vec<_>>().join(", ");
    let s = scenarios::find(name).ok_or_else(|| usage(format!("unknown scenario `{name}` (known: {})", known())))?;
    if let Some(c) = config {
        if !s.has_config(c) {
            let configs: Vec<&str> = s.configs.iter().map(|(c, _)| *c).collect();
            return Err(usage(format!("scenario `{name}` has no config `{c}` (configs: {})", configs.join(", "))));
        }
    }
    Ok(s)
}

fn scenario_set(name: &str, config: Option<&str>) -> Result<Vec<&'static Scenario>, Failure> {
    if name == "all" {
        if config.is_some() {
            return Err(usage("--config needs one --scenario, not `all`".into()));
        }
        return Ok(scenarios::all().to_vec());
    }
    Ok(vec![one_scenario(name, config)?])
}

/// `all`, one scenario, or several separated by commas.
fn scenario_list(names: &str, config: Option<&str>) -> Result<Vec<&'static Scenario>, Failure> {
    if names == "all" || !names.contains(',') {
        return scenario_set(names, config);
    }
    if config.is_some() {
        return Err(usage("--config needs one --scenario, not a list".into()));
    }
    names.split(',').map(|n| one_scenario(n.trim(), None)).collect()
}

/// Benchmark figures as `bench --json` (or the turmoil bench's `--json`) wrote them.
fn read_figures(path: &std::path::Path) -> Result<Vec<scenarios::bench::Figures>, Failure> {
    let bad = |e: String| usage(format!("--against {}: {e}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let items = value.as_array().ok_or_else(|| bad("expected a JSON array of figures".into()))?;
    items.iter().map(|v| scenarios::bench::Figures::from_json(v).map_err(|e| bad(e.to_string()))).collect()
}

fn report_options(slo: f64, seed: Option<u64>) -> Result<reports::report::Options, Failure> {
    if !(slo > 0.0 && slo < 100.0) {
        return Err(usage(format!("--slo {slo}: expected a percentage strictly between 0 and 100, e.g. 99.9")));
    }
    Ok(reports::report::Options { slo_percent: slo, seed })
}

fn list(json: bool) -> ExitCode {
    if json {
        let catalog = reports::catalog::describe(scenarios::all());
        println!("{}", serde_json::to_string_pretty(&catalog).expect("the catalog serializes"));
        return ExitCode::SUCCESS;
    }
    for s in scenarios::all() {
        println!("{:<20} {}", s.name, s.about);
        for (c, about) in s.configs {
            println!("{:<20}   --config {c}: {about}", "");
        }
    }
    ExitCode::SUCCESS
}

fn request(scenario: &'static Scenario, seed: u64, config: Option<String>, trace: Option<PathBuf>) -> RunRequest {
    let mut req = RunRequest::new(scenario, seed).with_config(config.as_deref());
    req.trace = trace;
    req
}

/// The request for one run: a known scenario and config, a well-formed seed, and the schedule
/// file, if any, read (a bad file is a usage error).
fn one_run(one: OneRun) -> Result<RunRequest, Failure> {
    let scenario = one_scenario(&one.scenario, one.config.as_deref())?;
    let seed = parse_seed(&one.seed).map_err(usage)?;
    let mut req = request(scenario, seed, one.config, None);
    if let Some(file) = one.schedule {
        req.schedule = Some(scenarios::schedule_file::read(&file).map_err(|e| usage(e.to_string()))?);
        req.schedule_file = Some(file);
    }
    Ok(req)
}

fn execute(req: RunRequest) -> Result<RunReport, Failure> {
    let report = scenarios::run(req)?;
    scenarios::ledger::record(&report);
    Ok(report)
}

fn run(req: RunRequest, json: bool) -> Result<ExitCode, Failure> {
    let report = execute(req)?;
    if json {
        println!("{}", serde_json::to_string(&report).expect("reports serialize"));
    } else {
        print_human(&report);
    }
    Ok(if report.passed { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn print_human(r: &RunReport) {
    let verdict = if r.passed { "passed" } else { "FAILED" };
    println!(
        "{} seed {} {verdict}: trace {} , {} events, {} ms simulated in {} ms",
        r.scenario, r.seed, r.trace_hash, r.events, r.sim_time_ms, r.wall_ms
    );
    for v in &r.violations {
        println!("  violation: {v}");
    }
    if !r.passed {
        println!("  replay: {}", r.replay_command());
        println!("  shrink: {}", r.shrink_command());
    }
}

fn shrink(req: RunRequest, kind: Option<String>, max_runs: usize, out: &std::path::Path) -> Result<ExitCode, Failure> {
    use scenarios::shrink::{Progress, ShrinkError};
    let bar = progress(max_runs, "shrink");
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:40}] {pos}/{len} runs {elapsed_precise} {msg}")
            .expect("static template")
            .progress_chars("=> "),
    );
    let mut phase = String::new();
    let mut on_progress = |p: Progress| match p {
        Progress::Phase(name) => phase = name.to_string(),
        Progress::Ran { runs, smallest, .. } => {
            bar.set_position(runs as u64);
            bar.set_message(format!("{phase}: smallest failing schedule {smallest} faults"));
        }
    };
    let shrunk = match scenarios::shrink::shrink(req.clone(), kind, max_runs, &mut on_progress) {
        Ok(s) => s,
        Err(ShrinkError::Io(e)) => return Err(e.into()),
        Err(e) => return Err(usage(e.to_string())),
    };
    bar.finish_and_clear();
    scenarios::schedule_file::write(out, &shrunk.schedule).map_err(|e| Failure::Other(e.into()))?;
    println!(
        "{} seed {}: `{}` still fails with {} of {} faults ({} runs{})",
        req.scenario.name,
        req.seed,
        shrunk.kind,
        shrunk.schedule.len(),
        shrunk.original.len(),
        shrunk.runs,
        if shrunk.bounded { ", stopped at the run bound" } else { "" }
    );
    println!("{}", serde_json::to_string_pretty(&shrunk.schedule).expect("schedules serialize"));
    for v in shrunk.report.violations.iter().filter(|v| v.kind == shrunk.kind).take(3) {
        println!("  violation: {v}");
    }
    let config = req.config.as_ref().map(|c| format!(" --config {c}")).unwrap_or_default();
    println!(
        "written to {}; replay: cargo chaos run --scenario {}{config} --seed {} --schedule {}",
        out.display(),
        req.scenario.name,
        req.seed,
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Runs `requests` on `jobs` workers, each run on its own fresh thread, in request order.
fn run_all(requests: Vec<RunRequest>, jobs: usize, bar: &ProgressBar) -> Result<Vec<RunReport>, Failure> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<RunReport, String>>>> = Mutex::new(vec![None; requests.len()]);
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(requests.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(req) = requests.get(i) else { return };
                let outcome = execute(req.clone()).map_err(|e| match e {
                    Failure::Usage(m) => m,
                    Failure::Other(e) => e.to_string(),
                });
                if let Ok(r) = &outcome {
                    if !r.passed {
                        bar.println(format!(
                            "seed {} failed: {} (shrink: {})",
                            r.seed,
                            r.replay_command(),
                            r.shrink_command()
                        ));
                    }
                }
                bar.inc(1);
                results.lock().expect("results")[i] = Some(outcome);
            });
        }
    });
    let results = results.into_inner().expect("results");
    results.into_iter().map(|r| r.expect("every request ran").map_err(|e| Failure::Other(anyhow::anyhow!(e)))).collect()
}

fn progress(total: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total as u64);
    let style = ProgressStyle::with_template("{prefix} [{bar:40}] {pos}/{len} {elapsed_precise} eta {eta}")
        .expect("static template")
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(what.to_string());
    bar
}

/// What one sweep runs: the seeds (or one shard of them), the config, the parallelism.
struct SweepPlan<'a> {
    range: std::ops::Range<u64>,
    seeds: &'a str,
    config: Option<String>,
    shard: Option<reports::shard::Shard>,
    jobs: usize,
    json: bool,
}

fn sweep(
    scenarios: &[&'static Scenario],
    plan: SweepPlan<'_>,
    out: &std::path::Path,
    options: &reports::report::Options,
) -> Result<ExitCode, Failure> {
    let seeds: Vec<u64> = match plan.shard {
        Some(shard) => shard.seeds(plan.range.clone()),
        None => plan.range.clone().collect(),
    };
    if seeds.is_empty() {
        return Err(usage(format!(
            "shard {} of seeds {} holds no seed",
            plan.shard.map(|s| s.label()).unwrap_or_default(),
            plan.seeds
        )));
    }
    let requests: Vec<RunRequest> =
        scenarios.iter().flat_map(|s| seeds.iter().map(|seed| request(s, *seed, plan.config.clone(), None))).collect();
    let bar = progress(requests.len(), "sweep");
    let runs = run_all(requests, plan.jobs, &bar)?;
    bar.finish_and_clear();
    if plan.json {
        for r in &runs {
            println!("{}", serde_json::to_string(r).expect("reports serialize"));
        }
    }
    let summary = reports::Summary::new(scenarios, plan.config, plan.seeds.to_string(), runs)
        .with_shard(plan.shard.map(|s| s.label()));
    finish(&summary, out, options)
}

/// Writes the summary and every report into `out`, prints the verdict lines, and exits 1 unless
/// the sweep held.
fn finish(
    summary: &reports::Summary,
    out: &std::path::Path,
    options: &reports::report::Options,
) -> Result<ExitCode, Failure> {
    let cannot = |e: std::io::Error| Failure::Other(anyhow::anyhow!("cannot write {}: {e}", out.display()));
    summary.write(out).map_err(cannot)?;
    reports::report::write(summary, out, options).map_err(cannot)?;
    eprintln!(
        "{} runs: {} passed, {} failed; summary in {}, report in {}",
        summary.total,
        summary.passed,
        summary.failed,
        out.join("summary.json").display(),
        out.join("report.html").display()
    );
    for p in summary.probes.iter().filter(|p| p.requirement == "window") {
        eprintln!("probe {}", p.describe());
    }
    for v in &summary.sweep_violations {
        eprintln!("sweep violation: {v}");
    }
    for replay in &summary.replay {
        eprintln!("replay: {replay}");
    }
    Ok(if summary.ok() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn check_determinism(
    scenarios: &[&'static Scenario],
    range: std::ops::Range<u64>,
    config: Option<String>,
    jobs: usize,
) -> Result<ExitCode, Failure> {
    let requests: Vec<RunRequest> = scenarios
        .iter()
        .flat_map(|s| {
            range
                .clone()
                .flat_map(|seed| [request(s, seed, config.clone(), None), request(s, seed, config.clone(), None)])
        })
        .collect();
    let bar = progress(requests.len(), "determinism");
    let runs = run_all(requests, jobs, &bar)?;
    bar.finish_and_clear();
    let mut mismatches = 0;
    for pair in runs.chunks(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if a.trace_hash != b.trace_hash || a.events != b.events {
            mismatches += 1;
            println!(
                "nondeterministic: {} seed {}: trace {} ({} events) then {} ({} events); replay: {}",
                a.scenario,
                a.seed,
                a.trace_hash,
                a.events,
                b.trace_hash,
                b.events,
                a.replay_command()
            );
        }
    }
    println!("{} seeds checked, {mismatches} nondeterministic", runs.len() / 2);
    Ok(if mismatches == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
