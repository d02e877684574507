//! `smoke` on the turmoil engine, in plain `cargo test`: seeded runs pass, the same seed gives
//! the same trace hash, and the planted leak is caught.
#![cfg(not(madsim))]

mod common;

use scenarios::RunReport;

fn run(seed: u64, config: Option<&str>) -> RunReport {
    common::run("smoke", seed, config)
}

#[test]
fn smoke_seeds_pass_on_turmoil() {
    for seed in 0..6 {
        let r = run(seed, None);
        assert!(r.passed, "seed {seed}: {:?}\nreplay: {}", r.violations, r.replay_command());
        assert!(r.events > 100, "seed {seed} recorded only {} events", r.events);
    }
}

/// The child-process entry point of `common::hash_in_child` (run by it with `--ignored`).
#[test]
#[ignore = "a child-process entry point: the cross-process hash tests run it"]
fn hash_child() {
    common::hash_child();
}

#[test]
fn same_seed_same_hash_other_seed_other_hash_across_processes_on_turmoil() {
    let hash = |seed| common::hash_in_child("smoke", seed, None);
    let (a, b, c) = (hash(11), hash(11), hash(12));
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn planted_leak_changes_the_hash_on_turmoil() {
    let (a, b) = (run(5, Some("planted-leak")), run(5, Some("planted-leak")));
    assert_ne!(a.trace_hash, b.trace_hash, "the leak must show in the trace hash");
}
