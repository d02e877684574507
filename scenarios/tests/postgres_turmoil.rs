//! `postgres-failover` and `postgres-pitr` on the turmoil engine, in plain `cargo test`: seeded
//! runs pass, the same seed gives the same trace hash, and the unsafe variant loses commits the
//! checker reports.
#![cfg(not(madsim))]

use scenarios::{RunReport, RunRequest};


fn run(scenario: &str, seed: u64, config: Option<&str>) -> RunReport {
    let scenario = scenarios::find(scenario).expect("scenario is registered");
    let report = scenarios::run(RunRequest::new(scenario, seed).with_config(config))
        .expect("run starts");
    scenarios::ledger::record(&report);
    report
}

#[test]
fn postgres_failover_seeds_pass_on_turmoil() {
    for seed in 0..3 {
        let r = run("postgres-failover", seed, None);
        assert!(r.passed, "seed {seed}: {:?}\nreplay: {}", r.violations, r.replay_command());
        assert!(r.metrics.contains_key("failover_ms"), "seed {seed} had no failover: {:?}", r.metrics);
    }
}

#[test]
fn postgres_failover_is_deterministic_on_turmoil() {
    let (a, b) = (run("postgres-failover", 7, None), run("postgres-failover", 7, None));
    assert_eq!(a.trace_hash, b.trace_hash);
}

#[test]
fn async_credentials_lose_commits_on_turmoil() {
    // About two seeds in five lose a sign-up; stop at the first that does.
    let failed = (0..10)
        .map(|seed| run("postgres-failover", seed, Some("async-credentials")))
        .find(|r| !r.passed)
        .expect("no seed lost an asynchronously committed credential");
    assert!(failed.violations.iter().all(|v| v.kind == "lost commit"), "{:?}", failed.violations);
}

#[test]
fn postgres_pitr_seeds_pass_on_turmoil() {
    for seed in 0..2 {
        let r = run("postgres-pitr", seed, None);
        assert!(r.passed, "seed {seed}: {:?}\nreplay: {}", r.violations, r.replay_command());
    }
}

