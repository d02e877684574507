//! What the turmoil test files share: a run of a registered scenario (recorded in the ledger),
//! and the trace hash of one seed from a fresh child process.
//!
//! Why a child process: since every run ends with a power loss of every server, two runs of one
//! seed inside one busy test process can differ on turmoil. The crashed hosts' runtimes drop their
//! tasks in tokio task-id order, ids come from a process-wide counter (shared with every test
//! running in parallel), and each dropped stream's FIN draws its latency from turmoil's RNG in that
//! order. That is the engine's nondeterminism, not the stores': a fresh process running nothing
//! else gives every seed one trace.
//!
//! Each test file that compares hashes declares the child's entry point:
//!
//! ```ignore
//! #[test]
//! #[ignore = "a child-process entry point: the cross-process hash tests run it"]
//! fn hash_child() {
//!     common::hash_child();
//! }
//! ```
#![allow(dead_code)]

use scenarios::{RunReport, RunRequest};

/// Set in a child process: `scenario seed [config]`, the run whose hash it prints.
const CHILD_ENV: &str = "CHAOS_TURMOIL_HASH_CHILD";
/// The name every test file gives its child-process entry point.
const CHILD_TEST: &str = "hash_child";

/// Runs `seed` of `scenario` (under `config`) on turmoil and records it in the ledger.
pub fn run(scenario: &str, seed: u64, config: Option<&str>) -> RunReport {
    let found = scenarios::find(scenario).unwrap_or_else(|| panic!("{scenario} is not registered"));
    let report = scenarios::run(RunRequest::new(found, seed).with_config(config)).expect("run starts");
    scenarios::ledger::record(&report);
    report
}

/// The child-process entry point's body: runs the run [`CHILD_ENV`] names and prints its trace
/// hash, event count and verdict (does nothing without it, as when the ignored tests are run by
/// hand).
pub fn hash_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else { return };
    let mut words = spec.split_whitespace();
    let scenario = words.next().expect("a scenario");
    let seed = words.next().and_then(|s| s.parse().ok()).expect("a seed");
    let config = words.next();
    let r = run(scenario, seed, config);
    let verdict = if r.passed { "passed".to_string() } else { format!("failed {:?}", r.violation_kinds()) };
    for v in &r.violations {
        eprintln!("violation {}: {}", v.kind, v.message);
    }
    println!("HASH {} {} {verdict}", r.trace_hash, r.events);
}

/// The trace hash (event count and verdict) of `seed` of `scenario` under `config`, from a fresh process
/// running nothing else: this test binary re-run with only its [`CHILD_TEST`].
pub fn hash_in_child(scenario: &str, seed: u64, config: Option<&str>) -> String {
    let exe = std::env::current_exe().expect("test binary");
    let spec = format!("{scenario} {seed} {}", config.unwrap_or_default());
    let out = std::process::Command::new(exe)
        .args(["--exact", CHILD_TEST, "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, spec.trim())
        .output()
        .expect("child runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    stdout.lines().find_map(|l| l.split_once("HASH ").map(|(_, h)| h.trim().to_string())).unwrap_or_else(|| {
        panic!("no hash from the child of {spec}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr))
    })
}
