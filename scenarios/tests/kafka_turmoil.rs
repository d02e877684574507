//! `kafka-partition` on the turmoil engine, in plain `cargo test`: seeded runs of the default
//! configuration pass, a seed replays to the same trace hash, and the unsafe configuration
//! (`acks=1` with unclean leader election) loses acknowledged records on some seed.
#![cfg(not(madsim))]

use scenarios::{RunReport, RunRequest};

fn run(seed: u64, config: Option<&str>) -> RunReport {
    let scenario = scenarios::find("kafka-partition").expect("kafka-partition is registered");
    let report = scenarios::run(RunRequest::new(scenario, seed).with_config(config))
    .expect("run starts");
    scenarios::ledger::record(&report);
    report
}

#[test]
fn kafka_seeds_pass_on_turmoil() {
    for seed in 0..2 {
        let r = run(seed, None);
        assert!(
            r.passed,
            "seed {seed}: {:?}\nreplay: {}",
            r.violations,
            r.replay_command()
        );
        assert!(
            r.metrics.get("produced_per_sim_s").is_some_and(|v| *v > 10.0),
            "seed {seed}: {:?}",
            r.metrics
        );
    }
}

/// Set in a child process: run this seed once and print its trace hash.
const CHILD_SEED_ENV: &str = "KAFKA_TURMOIL_HASH_SEED";

/// Does nothing unless a parent test set [`CHILD_SEED_ENV`].
#[test]
fn kafka_hash_child() {
    let Some(seed) = std::env::var(CHILD_SEED_ENV).ok().and_then(|s| s.parse().ok()) else {
        return;
    };
    let r = run(seed, None);
    println!("HASH {} {}", r.trace_hash, r.events);
}

/// The same seed gives the same trace in two processes. (Two runs inside one process can
/// differ on turmoil after a crash: the crashed host's runtime drops its tasks in tokio
/// task-id order, ids come from a process-global counter, and each dropped stream's FIN draws
/// its latency from turmoil's RNG in that order. That is the engine's, not the store's.)
#[test]
fn kafka_same_seed_same_hash_across_processes_on_turmoil() {
    let hash = || {
        let exe = std::env::current_exe().expect("test binary");
        let out = std::process::Command::new(exe)
            .args(["--exact", "kafka_hash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_SEED_ENV, "7")
            .output()
            .expect("child runs");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        stdout
            .lines()
            .find_map(|l| l.split_once("HASH ").map(|(_, h)| h.to_string()))
            .unwrap_or_else(|| panic!("no hash in {stdout}"))
    };
    assert_eq!(hash(), hash());
}

#[test]
fn kafka_acks1_unclean_loses_acknowledged_records_on_turmoil() {
    let lost = (0..4)
        .map(|seed| run(seed, Some("kafka-acks1-unclean")))
        .find(|r| r.violations.iter().any(|v| v.kind == "lost record"));
    assert!(
        lost.is_some(),
        "acks=1 with unclean election lost nothing in seeds 0..4"
    );
}
