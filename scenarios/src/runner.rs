//! Runs one seed of one scenario on this build's engine and reports it.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sim::{Engine, RunOptions, Scheduled};

use crate::scenario::{Built, Scenario, Verdict, Violation};

/// What to run.
#[derive(Clone)]
pub struct RunRequest {
    pub scenario: &'static Scenario,
    pub seed: u64,
    pub config: Option<String>,
    /// Write the trace as JSON Lines here.
    pub trace: Option<PathBuf>,
    /// Run this schedule instead of the one the seed draws.
    pub schedule: Option<Vec<Scheduled>>,
    /// Where a given schedule came from, for the replay line.
    pub schedule_file: Option<PathBuf>,
}

impl RunRequest {
    /// The seed's own run: its drawn schedule, the default config, no trace file.
    pub fn new(scenario: &'static Scenario, seed: u64) -> Self {
        RunRequest { scenario, seed, config: None, trace: None, schedule: None, schedule_file: None }
    }

    pub fn with_config(mut self, config: Option<&str>) -> Self {
        self.config = config.map(String::from);
        self
    }

    pub fn with_schedule(mut self, schedule: Vec<Scheduled>) -> Self {
        self.schedule = Some(schedule);
        self
    }
}

/// The result of one run: the `--json` line and one entry of a sweep's summary.
#[derive(Clone, Debug, Serialize, Deserialize)]
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
    pub violations: Vec<Violation>,
    pub sometimes: BTreeMap<String, u64>,
    pub metrics: BTreeMap<String, f64>,
    /// The fault schedule this run ran (the seed's draw unless one was given).
    pub schedule: Vec<Scheduled>,
    /// The file the schedule was read from, when it was given as one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule_file: Option<String>,
    /// What users saw (per operation class), the fault windows and the data lost: present when
    /// the scenario's clients record `OpOutcome`s (see `availability`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability: Option<crate::availability::Availability>,
}

impl RunReport {
    /// The command that replays this run exactly.
    pub fn replay_command(&self) -> String {
        format!("cargo chaos replay {}", self.run_args())
    }

    /// The command that cuts this run's schedule down to a minimal one that still fails.
    pub fn shrink_command(&self) -> String {
        format!("cargo chaos shrink {}", self.run_args())
    }

    fn run_args(&self) -> String {
        let config = self.config.as_ref().map(|c| format!(" --config {c}")).unwrap_or_default();
        let schedule = self.schedule_file.as_ref().map(|f| format!(" --schedule {f}")).unwrap_or_default();
        format!("--scenario {}{config} --seed {}{schedule}", self.scenario, self.seed)
    }

    /// The kinds of violation this run found, each once, in order of first appearance.
    pub fn violation_kinds(&self) -> Vec<&str> {
        let mut kinds: Vec<&str> = Vec::new();
        for v in &self.violations {
            if !kinds.contains(&v.kind.as_str()) {
                kinds.push(&v.kind);
            }
        }
        kinds
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
    let schedule = req.schedule.clone().unwrap_or_else(|| (scenario.draw)(seed, config.as_deref()));
    let ran = schedule.clone();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let Built { plan, checkers } = (scenario.build)(seed, config.as_deref(), schedule);
        let options = RunOptions {
            seed,
            trace_sink: sink.map(|s| Box::new(s) as Box<dyn std::io::Write + Send>),
            keep_events: false,
        };
        let outcome = sim::engine::run(plan, options);
        let mut verdict = Verdict::default();
        for checker in &checkers {
            checker.check(&outcome, &mut verdict);
        }
        let mut violations: Vec<Violation> = outcome
            .world
            .failures()
            .into_iter()
            .map(|message| Violation { kind: "node failure".into(), message })
            .collect();
        violations.append(&mut verdict.violations);
        let _ = outcome.world.with_trace(|t| t.flush());
        let sometimes = outcome.world.sometimes_counts();
        let availability = crate::availability::collect(&outcome, &verdict.lost);
        (
            outcome.trace_hash(),
            outcome.events(),
            outcome.sim_time_ms,
            sometimes,
            violations,
            verdict.metrics,
            availability,
        )
    }));
    let (trace_hash, events, sim_time_ms, sometimes, violations, metrics, availability) = match result {
        Ok(r) => r,
        Err(panic) => {
            let msg = panic_message(&panic);
            let panicked = Violation { kind: "panic".into(), message: msg };
            (String::new(), 0, 0, BTreeMap::new(), vec![panicked], BTreeMap::new(), None)
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
        schedule: ran,
        schedule_file: req.schedule_file.map(|p| p.display().to_string()),
        availability,
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
