//! Runs one seed of one scenario on this build's engine and reports it.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;

use serde::Serialize;
use sim::{Engine, RunOptions};

use crate::scenario::Scenario;

/// What to run.
#[derive(Clone)]
pub struct RunRequest {
    pub scenario: &'static Scenario,
    pub seed: u64,
    pub config: Option<String>,
    /// Write the trace as JSON Lines here.
    pub trace: Option<PathBuf>,
}

/// The result of one run: the `--json` line and one entry of a sweep's summary.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    pub scenario: String,
    pub config: Option<String>,
    pub seed: u64,
    pub engine: Engine,
    pub passed: bool,
    pub trace_hash: String,
    pub sim_time_ms: u64,
    pub wall_ms: u64,
    pub events: u64,
    pub violations: Vec<String>,
    pub sometimes: BTreeMap<String, u64>,
    pub metrics: BTreeMap<String, f64>,
}

impl RunReport {
    /// The command that replays this run exactly.
    pub fn replay_command(&self) -> String {
        let config = self.config.as_ref().map(|c| format!(" --config {c}")).unwrap_or_default();
        format!("cargo chaos replay --scenario {}{config} --seed {}", self.scenario, self.seed)
    }
}

/// Runs the request on a fresh OS thread (thread-local RNGs of dependencies must start fresh
/// for every run), turning a panic anywhere in the run into a violation.
pub fn run(req: RunRequest) -> Result<RunReport, std::io::Error> {
    let sink = match &req.trace {
        Some(path) => {
            let file = File::create(path).map_err(|e| {
                std::io::Error::new(e.kind(), format!("cannot create trace file {}: {e}", path.display()))
            })?;
            Some(BufWriter::new(file))
        }
        None => None,
    };
    let thread = std::thread::Builder::new()
        .name(format!("{}-{}", req.scenario.name, req.seed))
        .stack_size(64 << 20)
        .spawn(move || run_here(req, sink))?;
    Ok(thread.join().expect("run_here catches panics"))
}

fn run_here(req: RunRequest, sink: Option<BufWriter<File>>) -> RunReport {
    let started = wall_clock_start();
    let scenario = req.scenario;
    let seed = req.seed;
    let config = req.config.clone();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let built = (scenario.build)(seed, config.as_deref());
        let options = RunOptions {
            seed,
            trace_sink: sink.map(|s| Box::new(s) as Box<dyn std::io::Write + Send>),
            keep_events: false,
        };
        let outcome = sim::engine::run(built.plan, options);
        let mut verdict = (built.check)(&outcome);
        let mut violations = outcome.world.failures();
        violations.append(&mut verdict.violations);
        let _ = outcome.world.with_trace(|t| t.flush());
        let sometimes = outcome.world.sometimes_counts();
        (outcome.trace_hash(), outcome.events(), outcome.sim_time_ms, sometimes, violations, verdict.metrics)
    }));
    let (trace_hash, events, sim_time_ms, sometimes, violations, metrics) = match result {
        Ok(r) => r,
        Err(panic) => {
            let msg = panic_message(&panic);
            (String::new(), 0, 0, BTreeMap::new(), vec![format!("panic: {msg}")], BTreeMap::new())
        }
    };
    RunReport {
        scenario: req.scenario.name.to_string(),
        config: req.config,
        seed: req.seed,
        engine: Engine::of_this_build(),
        passed: violations.is_empty(),
        trace_hash,
        sim_time_ms,
        wall_ms: started.elapsed().as_millis() as u64,
        events,
        violations,
        sometimes,
        metrics,
    }
}

#[allow(clippy::disallowed_methods, reason = "wall time of the run is measured outside the simulation")]
fn wall_clock_start() -> std::time::Instant {
    std::time::Instant::now()
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic".into()
    }
}
