//! `smoke` on the turmoil engine, in plain `cargo test`: seeded runs pass, the same seed gives
//! the same trace hash, and the planted leak is caught.
#![cfg(not(madsim))]

use scenarios::{RunReport, RunRequest};

fn run(seed: u64, config: Option<&str>) -> RunReport {
    let scenario = scenarios::find("smoke").expect("smoke is registered");
    let report = scenarios::run(RunRequest { scenario, seed, config: config.map(String::from), trace: None })
        .expect("run starts");
    scenarios::ledger::record(&report);
    report
}

#[test]
fn smoke_seeds_pass_on_turmoil() {
    for seed in 0..4 {
        let r = run(seed, None);
        assert!(r.passed, "seed {seed}: {:?}\nreplay: {}", r.violations, r.replay_command());
        assert!(r.events > 100, "seed {seed} recorded only {} events", r.events);
    }
}

#[test]
fn same_seed_same_hash_other_seed_other_hash_on_turmoil() {
    let (a, b, c) = (run(11, None), run(11, None), run(12, None));
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_ne!(a.trace_hash, c.trace_hash);
}

#[test]
fn planted_leak_changes_the_hash_on_turmoil() {
    let (a, b) = (run(5, Some("planted-leak")), run(5, Some("planted-leak")));
    assert_ne!(a.trace_hash, b.trace_hash, "the leak must show in the trace hash");
}
