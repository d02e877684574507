//! `mongo-failover`: a MongoDB-like sharded cluster (two shards and a config server replica set,
//! three members each, one per zone) under load from two app nodes, while a seeded schedule
//! kills, partitions, isolates or pauses a replica set's primary, sometimes pauses an app while
//! its compactor holds a lock, and sometimes steps the config primary's clock; then everything
//! heals.
//!
//! Checked: no write the stack relied on is lost once acknowledged; no two primaries of one set
//! in one term; majority reads never return rolled-back data; each lock token has one holder and
//! every shard accepts a lock's fenced writes in token order; after the heal every app's router
//! reaches every shard again, and the config servers grant locks again, within
//! [`RECOVERY_BOUND_MS`]. Metrics: `election_ms` (first fault on a primary to the new primary,
//! which accepts writes at once), `router_recovery_ms`, rollbacks, and more.
//!
//! `--config mongo-w1` makes the apps write at `w:1`: a deposed primary's unreplicated writes
//! are rolled back when it rejoins, and the lost-write checker must catch it.

mod checker;
mod elections;
mod fencing;
mod history;
mod lost_writes;
mod schedule;
mod workload;

use std::sync::Arc;

use sim::{node_main, Plan, Topology};
use system::mongo::{self, ClusterRole, MemberConfig, MongodConfig, Observer, SetConfig, ShardMap, WriteConcern};

use crate::scenario::{Built, Scenario};
use history::Shared;

pub static SCENARIO: Scenario = Scenario {
    name: "mongo-failover",
    about: "MongoDB-like sharded replica sets: kill, partition, isolate or pause a primary under load; w:majority survives, one primary per term, routers recover, fencing tokens order lock holders",
    configs: &[("mongo-w1", "unsafe: the apps write at w:1, so rolled-back writes are lost (the lost-write checker must fire)")],
    sweep_must_reach: &[
        "fault.kill",
        "fault.partition",
        "fault.isolate",
        "fault.pause",
        "fault.clock_step",
        "mongo.election",
        "mongo.election.priority_takeover",
        "mongo.stepdown",
        "mongo.rollback",
        "mongo.router_rediscovered",
        "mongo.lock_busy",
        "mongo.fence_rejected_stale",
    ],
    draw: |seed, _config| schedule::draw(seed).schedule,
    build,
};

pub const SHARDS: [&str; 2] = ["shard-a", "shard-b"];
pub const CONFIG_SET: &str = "config";
pub const ZONES: [&str; 3] = ["az-1", "az-2", "az-3"];
pub const APPS: [&str; 2] = ["app-1", "app-2"];
/// The collaborative documents the editors write to (spread over both shards by hash).
pub const DOCS: [&str; 8] = ["doc-0", "doc-1", "doc-2", "doc-3", "doc-4", "doc-5", "doc-6", "doc-7"];
/// Faults stop and everything heals here; the rest of the run proves recovery.
pub const HEAL_AT_MS: u64 = 40_000;
pub const DURATION_MS: u64 = 60_000;
/// After the heal, routers and lock grants must work again within this bound (a new election
/// may still be needed then: election timeout plus its offset, plus margin).
pub const RECOVERY_BOUND_MS: u64 = 15_000;

/// The member hosts of a replica set: "<set>-1" ... "<set>-3".
pub fn members(set: &str) -> Vec<String> {
    (1..=3).map(|i| format!("{set}-{i}")).collect()
}

pub fn config_hosts() -> Vec<String> {
    members(CONFIG_SET)
}

/// Member 0 has priority 2: it is initiated first and takes the primary back after it returns.
fn set_config(set: &str) -> SetConfig {
    let members = members(set)
        .into_iter()
        .enumerate()
        .map(|(i, host)| MemberConfig { host, priority: if i == 0 { 2 } else { 1 } })
        .collect();
    SetConfig { name: set.into(), members }
}

fn build(seed: u64, config: Option<&str>, schedule: Vec<sim::Scheduled>) -> Built {
    let sets: Vec<&str> = SHARDS.iter().copied().chain([CONFIG_SET]).collect();
    let mut topology = Topology::new();
    for (k, set) in sets.iter().enumerate() {
        for (i, host) in members(set).iter().enumerate() {
            // Rotate so that the three sets' priority members sit in different zones.
            topology.add(host, ZONES[(i + k) % ZONES.len()], "region-1");
        }
    }
    for (i, app) in APPS.iter().enumerate() {
        topology.add(app, ZONES[i], "region-1");
    }
    let history = Shared::default();
    let mut plan = Plan::new(topology, DURATION_MS);
    let shard_map = ShardMap::hashed(&SHARDS.iter().map(|s| (s.to_string(), members(s))).collect::<Vec<_>>(), 4);
    for set in &sets {
        let role = if *set == CONFIG_SET {
            ClusterRole::ConfigServer { shard_map: shard_map.clone() }
        } else {
            ClusterRole::ShardServer
        };
        for (i, host) in members(set).iter().enumerate() {
            let mongod = MongodConfig::new(set_config(set), i, role.clone());
            let observer: Arc<dyn Observer> = Arc::new(history.clone());
            plan.node(host, node_main(move |ctx| mongo::run_mongod(ctx, mongod.clone(), observer.clone())));
        }
    }
    let concern = if config == Some("mongo-w1") { WriteConcern::W1 } else { WriteConcern::Majority };
    for app in APPS {
        let h = history.clone();
        plan.node(app, node_main(move |ctx| workload::run(ctx, h.clone(), workload::Load { concern })));
    }
    let drawn = schedule::draw(seed);
    plan.schedule = schedule;
    history.lock().faults = drawn.faults;
    Built::new(plan).checker(move |outcome: &sim::Outcome, verdict: &mut crate::Verdict| {
        let v = checker::check(outcome, &history.lock());
        verdict.violations.extend(v.violations);
        verdict.metrics.extend(v.metrics);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_spread_over_both_shards() {
        let map = ShardMap::hashed(&SHARDS.iter().map(|s| (s.to_string(), members(s))).collect::<Vec<_>>(), 4);
        for shard in SHARDS {
            let n = DOCS.iter().filter(|d| map.shard_for(d) == Some(shard)).count();
            assert!(n >= 2, "only {n} documents on {shard}");
        }
    }
}
