//! `redis-failover` on the turmoil engine, in plain `cargo test`: seeded runs pass (the
//! Sentinels fail over and clients follow), the same seed gives the same trace hash, the unsafe
//! `redis-stale-client` config loses writes the checker catches, `redis-one-sentinel` fails over
//! without a quorum, and two clusters built from one
//! spec share a world without touching each other.
#![cfg(not(madsim))]

use std::time::Duration;

mod common;

use scenarios::RunReport;
use serde::{Deserialize, Serialize};
use sim::{node_main, Fault, Observation, Plan, RunOptions, Target, Topology};
use system::redis::protocol::{Command, Reply};
use system::redis::{RedisCluster, RedisClusterSpec};

fn run(seed: u64, config: Option<&str>) -> RunReport {
    common::run("redis-failover", seed, config)
}

#[test]
fn redis_failover_seeds_pass_on_turmoil() {
    let mut measured_failovers = 0;
    for seed in 0..4 {
        let r = run(seed, None);
        assert!(r.passed, "seed {seed}: {:?}\nreplay: {}", r.violations, r.replay_command());
        // Not every schedule hits the master (a Sentinel split may leave it in place).
        measured_failovers += usize::from(r.metrics.contains_key("sentinel_failover_ms"));
    }
    assert!(measured_failovers > 0, "no seed of 0..4 measured a failover");
}

/// The child-process entry point of `common::hash_in_child` (run by it with `--ignored`).
#[test]
#[ignore = "a child-process entry point: the cross-process hash tests run it"]
fn hash_child() {
    common::hash_child();
}

/// The same seed gives the same trace in two processes, another seed another (see `common` for
/// why not in one process).
#[test]
fn redis_failover_same_seed_same_hash_across_processes_on_turmoil() {
    let hash = |seed| common::hash_in_child("redis-failover", seed, None);
    let (a, b, c) = (hash(9), hash(9), hash(10));
    assert_eq!(a, b);
    assert_ne!(a, c);
}

/// A client that never follows Sentinel writes to the old master after a failover; those writes
/// vanish when it becomes a replica. About two seeds in three show it (every kill, isolation and
/// partition); stop at the first.
#[test]
fn redis_stale_client_loses_writes_on_turmoil() {
    let failed = (0..10)
        .map(|seed| run(seed, Some("redis-stale-client")))
        .find(|r| !r.passed)
        .expect("no seed lost a write to a demoted master");
    assert!(failed.violations.iter().all(|v| v.kind == "write to demoted master"), "{:?}", failed.violations);
}

/// Sentinels that fail over on one Sentinel's opinion start failovers no quorum agreed on.
#[test]
fn redis_one_sentinel_fails_over_without_quorum_on_turmoil() {
    let failed = (0..10)
        .map(|seed| run(seed, Some("redis-one-sentinel")))
        .find(|r| !r.passed)
        .expect("no seed failed over without a quorum");
    assert!(failed.violations.iter().any(|v| v.kind == "failover without quorum"), "{:?}", failed.violations);
}

/// A write one test client saw acknowledged.
#[derive(Serialize, Deserialize)]
struct Acked {
    node: String,
}

impl Observation for Acked {
    const KIND: &'static str = "test.redis_acked";
}

/// Writes through `cluster`'s Sentinels every 50 ms, observing who acknowledged each write.
fn writer(plan: &mut Plan, name: &str, cluster: &RedisCluster) {
    plan.topology.add(name, "az-1", "region-1");
    let cluster = cluster.clone();
    plan.node(
        name,
        node_main(move |mut ctx| {
            let mut client = cluster.client(&mut ctx);
            async move {
                for n in 0.. {
                    let cmd = Command::Set { key: format!("k{n}"), value: "v".into(), px: None };
                    if let Ok((node, Reply::Ok)) = client.call(&cmd).await {
                        ctx.observe(&Acked { node });
                    }
                    sim::timer::sleep(Duration::from_millis(50)).await;
                }
            }
        }),
    );
}

/// Two clusters from one spec under different prefixes: killing one's master (by its role)
/// fails over that cluster only, and each client is served by its own cluster's nodes.
#[test]
fn two_redis_clusters_share_a_world_on_turmoil() {
    let zones = ["az-1", "az-2", "az-3"].map(String::from).to_vec();
    let mut plan = Plan::new(Topology::new(), 14_000);
    let redis = RedisClusterSpec::new("redis", "region-1", zones.clone()).add_to(&mut plan);
    let cache = RedisClusterSpec::new("cache", "region-1", zones).add_to(&mut plan);
    writer(&mut plan, "app-redis", &redis);
    writer(&mut plan, "app-cache", &cache);
    plan.at(4_000, Fault::Kill(Target::role(&cache.role_master())));
    // A fresh thread per run, as the runner does (dependencies' thread-local RNGs start fresh).
    let outcome = std::thread::Builder::new()
        .spawn(move || sim::engine::run(plan, RunOptions { seed: 1, ..RunOptions::default() }))
        .expect("thread")
        .join()
        .expect("run completes");
    let (killed, redis_acks, cache_acks) = outcome.observations(|o| {
        let killed: Vec<String> = o.faults().flat_map(|f| f.value.nodes).collect();
        let acks = |app: &str| -> Vec<(u64, String)> {
            o.of::<Acked>().filter(|a| a.node == app).map(|a| (a.t_ms, a.value.node)).collect()
        };
        (killed, acks("app-redis"), acks("app-cache"))
    });
    assert_eq!(killed, ["cache-1"], "the role resolved to the cache cluster's master only");
    assert!(redis_acks.len() > 100 && redis_acks.iter().all(|(_, n)| n == "redis-1"), "{redis_acks:?}");
    assert!(cache_acks.iter().any(|(t, n)| *t < 4_000 && n == "cache-1"), "{cache_acks:?}");
    let after: Vec<&String> = cache_acks.iter().filter(|(t, _)| *t > 4_000).map(|(_, n)| n).collect();
    assert!(!after.is_empty() && after.iter().all(|n| *n != "cache-1" && cache.nodes().contains(n)), "{after:?}");
    assert_eq!(outcome.world.holders_of(&redis.role_master()), ["redis-1"]);
    assert_eq!(outcome.world.holders_of(&cache.role_master()), [after[0].clone()]);
}
