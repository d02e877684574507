//! `mongo-failover` on the turmoil engine, in plain `cargo test`: seeded runs pass, the same
//! seed gives the same trace hash, and the unsafe `mongo-w1` config loses writes the checker
//! catches.
#![cfg(not(madsim))]

use scenarios::{RunReport, RunRequest};

fn run(seed: u64, config: Option<&str>) -> RunReport {
    let scenario = scenarios::find("mongo-failover").expect("mongo-failover is registered");
    let report = scenarios::run(RunRequest::new(scenario, seed).with_config(config))
        .expect("run starts");
    scenarios::ledger::record(&report);
    report
}

#[test]
fn mongo_failover_seeds_pass_on_turmoil() {
    for seed in 0..2 {
        let r = run(seed, None);
        assert!(r.passed, "seed {seed}: {:?}\nreplay: {}", r.violations, r.replay_command());
        assert!(r.sometimes.contains_key("mongo.election"), "seed {seed} elected no primary");
        assert!(r.metrics.contains_key("election_ms"), "seed {seed} measured no failover: {:?}", r.metrics);
    }
}

#[test]
fn mongo_failover_same_seed_same_hash_on_turmoil() {
    let (a, b) = (run(7, None), run(7, None));
    assert_eq!(a.trace_hash, b.trace_hash);
}

/// Seed 10's schedule partitions a shard primary from its set while the routers still reach it:
/// it keeps acknowledging w:1 writes until it steps down, and they are rolled back when it
/// rejoins.
#[test]
fn mongo_w1_loses_acknowledged_writes_on_turmoil() {
    let r = run(W1_SEED, Some("mongo-w1"));
    assert!(!r.passed, "w:1 writes should have been lost: {:?}", r.metrics);
    assert!(r.violations.iter().all(|v| v.kind == "lost write"), "{:?}", r.violations);
}

const W1_SEED: u64 = 10;
