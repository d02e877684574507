//! The command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "chaos",
    version,
    about = "Deterministic simulation and chaos testing of the collaborative editor's backend"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// List the scenarios and their configs.
    List {
        /// Print one JSON document for tools: scenarios, configs (with `unsafe`), must-reach
        /// records and window probes with their minimum rates.
        #[arg(long)]
        json: bool,
    },
    /// Run one seed of a scenario.
    Run {
        #[command(flatten)]
        one: OneRun,
        /// Write the trace as JSON Lines to this file.
        #[arg(long)]
        trace: Option<PathBuf>,
        /// Print the result as one JSON object (with the schedule it ran).
        #[arg(long)]
        json: bool,
    },
    /// Run a range of seeds of a scenario (or `all`), writing DIR/summary.json.
    Sweep {
        #[arg(long)]
        scenario: String,
        /// Seeds as A..B (B excluded).
        #[arg(long)]
        seeds: String,
        #[arg(long)]
        config: Option<String>,
        /// Runs in parallel.
        #[arg(long, default_value_t = 1)]
        jobs: usize,
        /// Where to write summary.json and report.md (default: target/chaos/sweep).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print one JSON object per run.
        #[arg(long)]
        json: bool,
        /// Run only the I-th of N interleaved slices of the seed range (I from 0), for a CI
        /// matrix or a job array; `merge` joins the slices.
        #[arg(long)]
        shard: Option<String>,
        /// The availability objective of the report, in percent.
        #[arg(long, default_value_t = 99.9)]
        slo: f64,
    },
    /// Join the output directories of a sweep's shards into one summary and report in --out.
    Merge {
        /// The shards' output directories.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        #[arg(long)]
        out: PathBuf,
        /// The availability objective of the report, in percent.
        #[arg(long, default_value_t = 99.9)]
        slo: f64,
    },
    /// Build report.json, report.md, report.html and junit.xml from a sweep's output directory.
    Report {
        dir: PathBuf,
        /// The availability objective, in percent.
        #[arg(long, default_value_t = 99.9)]
        slo: f64,
        /// The seed whose timeline the charts draw (default: the first failing seed, else the first).
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Re-run one seed with the simulation's log on stderr (simulated time and node per line).
    Replay {
        #[command(flatten)]
        one: OneRun,
        /// Log filter (tracing's EnvFilter syntax).
        #[arg(long, default_value = "debug,madsim=info")]
        log: String,
    },
    /// Cut a failing run's fault schedule down to a minimal one that still fails with the same
    /// kind of violation; print it and write it to a file that `run --schedule` replays.
    Shrink {
        #[command(flatten)]
        one: OneRun,
        /// The violation kind to keep (default: the first the run fails with).
        #[arg(long)]
        kind: Option<String>,
        /// At most this many runs.
        #[arg(long, default_value_t = 300)]
        max_runs: usize,
        /// Where to write the shrunk schedule (default: target/chaos/shrink/SCENARIO[-CONFIG]-SEED.json).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Benchmark scenarios over seeds, one run at a time: simulated seconds per wall second,
    /// events per wall second, seeds per hour, peak RSS and the p50/p99 of the scenario's
    /// metrics, then a markdown table of them all.
    Bench {
        /// A scenario, several separated by commas (`steady,kill-az`), or `all`.
        #[arg(long)]
        scenario: String,
        #[arg(long, default_value = "0..100")]
        seeds: String,
        #[arg(long)]
        config: Option<String>,
        /// Also write the figures as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Figures of the other engine, as JSON (`cargo bench -p scenarios --bench turmoil_engine
        /// -- SCENARIOS SEEDS --json FILE`): their rows join the table, with madsim's speed
        /// over turmoil's.
        #[arg(long)]
        against: Option<PathBuf>,
    },
    /// Run each seed twice in fresh runtimes and compare trace hashes.
    CheckDeterminism {
        #[arg(long)]
        scenario: String,
        #[arg(long)]
        seeds: String,
        #[arg(long)]
        config: Option<String>,
        #[arg(long, default_value_t = 1)]
        jobs: usize,
    },
}

/// One run: a scenario, a seed, a config and, optionally, a schedule to run instead of the
/// seed's.
#[derive(Args)]
pub struct OneRun {
    #[arg(long)]
    pub scenario: String,
    #[arg(long)]
    pub seed: String,
    /// A named variant of the scenario (see `list`).
    #[arg(long)]
    pub config: Option<String>,
    /// Run this fault schedule (JSON: a list of `{at_ms, fault}`, or a `run --json` object)
    /// instead of the one the seed draws.
    #[arg(long)]
    pub schedule: Option<PathBuf>,
}
