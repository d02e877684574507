//! `redis-failover` on the turmoil engine, in plain `cargo test`: seeded runs pass (the
//! Sentinels fail over and clients follow) and the same seed gives the same trace hash.
#![cfg(not(madsim))]

use scenarios::{RunReport, RunRequest};

fn run(seed: u64) -> RunReport {
    let scenario = scenarios::find("redis-failover").expect("redis-failover is registered");
    let report = scenarios::run(RunRequest::new(scenario, seed)).expect("run starts");
    scenarios::ledger::record(&report);
    report
}

#[test]
fn redis_failover_seeds_pass_on_turmoil() {
    for seed in 0..4 {
        let r = run(seed);
        assert!(r.passed, "seed {seed}: {:?}\nreplay: {}", r.violations, r.replay_command());
        assert!(r.metrics.contains_key("sentinel_failover_ms"), "seed {seed}: {:?}", r.metrics);
    }
}

#[test]
fn redis_failover_is_deterministic_on_turmoil() {
    let (a, b, c) = (run(9), run(9), run(10));
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_ne!(a.trace_hash, c.trace_hash);
}
