//! `mongo-failover` on the turmoil engine, in plain `cargo test`: seeded runs pass, the same
//! seed gives the same trace hash, the unsafe `mongo-w1` config loses writes the checker
//! catches, and two clusters of different prefixes work side by side in one world.
#![cfg(not(madsim))]

use scenarios::mongo_failover::{elections, lost_writes, workload};
mod common;

use scenarios::{Checker, RunReport, Verdict};
use sim::{node_main, Plan, RunOptions, Topology};
use system::mongo::{MemberEvent, MongoCluster, MongoClusterSpec, WriteAcked};

fn run(seed: u64, config: Option<&str>) -> RunReport {
    common::run("mongo-failover", seed, config)
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

/// The child-process entry point of `common::hash_in_child` (run by it with `--ignored`).
#[test]
#[ignore = "a child-process entry point: the cross-process hash tests run it"]
fn hash_child() {
    common::hash_child();
}

/// The same seed gives the same trace in two processes (see `common` for why not in one).
#[test]
fn mongo_failover_same_seed_same_hash_across_processes_on_turmoil() {
    let hash = || common::hash_in_child("mongo-failover", 7, None);
    assert_eq!(hash(), hash());
}

/// Seeds searched for a run that loses a `w:1` write. About one seed in four partitions or
/// pauses a shard primary the routers still reach: it keeps acknowledging `w:1` writes until it
/// steps down, and they are rolled back when it rejoins.
const W1_SEEDS: std::ops::Range<u64> = 0..20;

#[test]
fn mongo_w1_loses_acknowledged_writes_on_turmoil() {
    // The register workload writes at the cluster's concern too, so a run may also (or only)
    // stop being linearizable: the search is for a lost write, and nothing else may break.
    let lost =
        W1_SEEDS.map(|seed| run(seed, Some("mongo-w1"))).find(|r| r.violations.iter().any(|v| v.kind == "lost write"));
    let r = lost.unwrap_or_else(|| panic!("no seed of {W1_SEEDS:?} lost a w:1 write"));
    let expected = |kind: &str| kind == "lost write" || kind == "not linearizable";
    assert!(r.violations.iter().all(|v| expected(&v.kind)), "seed {}: {:?}", r.seed, r.violations);
}

/// Two clusters, prefixes `mongo` and `mongob`, one app each, in one world with no faults: each
/// app's writes land on its own cluster's shards, each cluster's primaries are its own members
/// (by their claims and by the roles the world resolves), and each cluster's checkers pass
/// while ignoring the other's observations.
#[test]
fn two_mongo_clusters_work_side_by_side_on_turmoil() {
    let zones = ["az-1", "az-2", "az-3"];
    let mut plan = Plan::new(Topology::new(), 20_000);
    let clusters: Vec<(String, MongoCluster)> = ["mongo", "mongob"]
        .iter()
        .map(|prefix| (format!("{prefix}-app"), MongoClusterSpec::new(prefix, &zones, "region-1").add_to(&mut plan)))
        .collect();
    for (app, cluster) in &clusters {
        plan.topology.add(app, "az-1", "region-1");
        let cluster = cluster.clone();
        plan.node(app, node_main(move |ctx| workload::run(ctx, cluster.clone())));
    }
    let outcome = sim::engine::run(plan, RunOptions { seed: 5, ..RunOptions::default() });
    for (app, cluster) in &clusters {
        let (acks, primaries) = outcome.observations(|o| {
            let acks: Vec<(String, WriteAcked)> = o.of::<WriteAcked>().map(|a| (a.node.to_string(), a.value)).collect();
            let primaries: Vec<(String, String)> = o
                .of::<MemberEvent>()
                .filter_map(|e| match e.value {
                    MemberEvent::BecamePrimary { set, .. } => Some((e.node.to_string(), set)),
                    _ => None,
                })
                .collect();
            (acks, primaries)
        });
        for set in cluster.shard_sets() {
            let served = acks.iter().filter(|(n, a)| n == app && a.set == set).count();
            assert!(served > 0, "{app} got no write acknowledged by {set}");
            let holders = outcome.world.holders_of(&cluster.role_primary(set));
            assert!(
                !holders.is_empty() && holders.iter().all(|h| cluster.set_of(h) == Some(set)),
                "{} resolves to {holders:?}",
                cluster.role_primary(set)
            );
        }
        let strays: Vec<_> =
            acks.iter().filter(|(n, a)| n == app && !cluster.sets().contains(&a.set.as_str())).collect();
        assert!(strays.is_empty(), "{app} was acknowledged by another cluster: {strays:?}");
        for (node, set) in primaries.iter().filter(|(n, _)| cluster.set_of(n).is_some()) {
            assert_eq!(cluster.set_of(node), Some(set.as_str()), "{node} claimed to be primary of {set}");
        }
        let mut verdict = Verdict::default();
        elections::ElectionChecker { cluster: cluster.clone() }.check(&outcome, &mut verdict);
        lost_writes::DurabilityChecker { cluster: cluster.clone() }.check(&outcome, &mut verdict);
        assert!(verdict.violations.is_empty(), "{app}'s cluster: {:?}", verdict.violations);
        let own = acks.iter().filter(|(_, a)| cluster.sets().contains(&a.set.as_str())).count();
        let counted = verdict.metrics["acked_writes_per_sim_s"] * outcome.sim_time_ms as f64 / 1000.0;
        assert_eq!(counted.round() as usize, own, "{app}'s cluster counted another cluster's acks");
    }
}
