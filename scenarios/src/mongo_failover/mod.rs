//! `mongo-failover`: a MongoDB-like sharded cluster (two shards and a config server replica set,
//! three members each, one per zone, built by [`MongoClusterSpec`]) under load from two app
//! nodes, while a seeded schedule kills, partitions, isolates or pauses a replica set's primary,
//! sometimes pauses an app while its compactor holds a lock, and sometimes steps the config
//! primary's clock; then everything heals.
//!
//! Checked, each by its own checker built from the cluster handle: no write the stack relied on
//! is lost once acknowledged, judged from the members' disks at the end
//! ([`lost_writes::DurabilityChecker`], which also checks that majority reads never return
//! rolled-back data); no two primaries of one set in one term ([`elections::ElectionChecker`]);
//! each lock token has one holder and every shard's surviving oplog takes a lock's fenced writes
//! in token order ([`fencing::FencingChecker`]); after the last heal (or last fault) every app's
//! router reaches every shard again, and the config servers grant locks again, within
//! [`RECOVERY_BOUND_MS`] ([`recovery::RecoveryChecker`]). Fault times come from the
//! observations, so any schedule (the seed's, a file's, a shrunk one, none) is judged the same
//! way. Metrics: `election_ms` (first fault on a primary to the next primary of its set, which
//! accepts writes at once), `router_recovery_ms`, rollbacks, and more.
//!
//! `--config mongo-w1` makes the apps write at `w:1`: a deposed primary's unreplicated writes
//! are rolled back when it rejoins, and the lost-write checker must catch it.

pub mod elections;
pub mod fencing;
pub mod lost_writes;
pub mod on_disk;
pub mod recovery;
pub mod registers;
mod schedule;
pub mod workload;

use sim::{node_main, Plan, Topology};
use system::mongo::{MongoClusterSpec, WriteConcern};

use crate::scenario::{Built, Scenario};

pub static SCENARIO: Scenario = Scenario {
    name: "mongo-failover",
    about: "MongoDB-like sharded replica sets: kill, partition, isolate or pause a primary under load; w:majority survives, one primary per term, routers recover, fencing tokens order lock holders",
    configs: &[
        ("mongo-w1", "unsafe: the apps write at w:1, so rolled-back writes are lost (the lost-write checker must fire)"),
        (registers::LOCAL_READS, "unsafe: register reads at readConcern local see writes a failover rolls back (not linearizable)"),
    ],
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
    window_probes: &[],
    draw: |seed, _config| schedule::draw(seed),
    build,
};

/// The cluster's name prefix: replica sets `mongo-shard-a`, `mongo-shard-b`, `mongo-config`.
pub const PREFIX: &str = "mongo";
pub const ZONES: [&str; 3] = ["az-1", "az-2", "az-3"];
pub const REGION: &str = "region-1";
pub const APPS: [&str; 2] = ["app-1", "app-2"];
/// The collaborative documents the editors write to (spread over both shards by hash).
pub const DOCS: [&str; 8] = ["doc-0", "doc-1", "doc-2", "doc-3", "doc-4", "doc-5", "doc-6", "doc-7"];
/// The drawn schedule's faults stop and everything heals here; the rest of the run proves
/// recovery. Only the draw uses it: checkers read the heal time from the observations.
pub const HEAL_AT_MS: u64 = 40_000;
pub const DURATION_MS: u64 = 60_000;
/// After the heal, routers and lock grants must work again within this bound (a new election
/// may still be needed then: election timeout plus its offset, plus margin).
pub const RECOVERY_BOUND_MS: u64 = 15_000;

/// The cluster a config runs: `mongo-w1` has the apps rely on `w:1` writes.
pub fn spec(config: Option<&str>) -> MongoClusterSpec {
    let mut spec = MongoClusterSpec::new(PREFIX, &ZONES, REGION);
    if config == Some("mongo-w1") {
        spec.write_concern = WriteConcern::W1;
    }
    spec
}

fn build(_seed: u64, config: Option<&str>, schedule: Vec<sim::Scheduled>) -> Built {
    let mut plan = Plan::new(Topology::new(), DURATION_MS);
    let mongo = spec(config).add_to(&mut plan);
    for (app, zone) in APPS.iter().zip(ZONES) {
        plan.topology.add(app, zone, REGION);
        let cluster = mongo.clone();
        plan.node(app, node_main(move |ctx| workload::run(ctx, cluster.clone())));
    }
    plan.schedule = schedule;
    registers::add(&mut plan, &mongo, ZONES[2], REGION, config == Some(registers::LOCAL_READS));
    let registers = registers::checker(&mongo);
    let recovery = recovery::RecoveryChecker {
        apps: APPS.iter().map(|a| a.to_string()).collect(),
        cluster: mongo.clone(),
        bound_ms: RECOVERY_BOUND_MS,
    };
    Built::new(plan)
        .checker(elections::ElectionChecker { cluster: mongo.clone() })
        .checker(lost_writes::DurabilityChecker { cluster: mongo.clone() })
        .checker(fencing::FencingChecker { cluster: mongo })
        .checker(recovery)
        .checker(registers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use system::mongo::ShardMap;

    #[test]
    fn documents_spread_over_both_shards() {
        let mongo = spec(None).handle();
        let shards: Vec<(String, Vec<String>)> =
            mongo.shard_sets().iter().map(|s| (s.to_string(), mongo.members(s))).collect();
        let map = ShardMap::hashed(&shards, 4);
        for (shard, _) in &shards {
            let n = DOCS.iter().filter(|d| map.shard_for(d) == Some(shard.as_str())).count();
            assert!(n >= 2, "only {n} documents on {shard}");
        }
    }
}
