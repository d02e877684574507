//! The run ledger: when `CHAOS_RUN_LEDGER` names a file, every simulation run appends one line
//! `engine scenario seed passed|failed config` to it (config `-` for the default; runs of unsafe
//! variants fail on purpose, and the tests that make them assert that). The test command tallies it to report how many
//! runs passed on each engine, across test binaries and the CLI alike.

use std::io::Write;

use crate::runner::RunReport;

pub const ENV: &str = "CHAOS_RUN_LEDGER";

pub fn record(report: &RunReport) {
    let Some(path) = std::env::var_os(ENV) else { return };
    let line = format!(
        "{} {} {} {} {}\n",
        report.engine,
        report.scenario,
        report.seed,
        if report.passed { "passed" } else { "failed" },
        report.config.as_deref().unwrap_or("-")
    );
    // One short write per line with O_APPEND keeps lines whole across parallel writers.
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = f.write_all(line.as_bytes());
    }
}
