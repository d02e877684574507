//! `mongo-failover`: a MongoDB-like sharded cluster (two shards and a config server replica set,
//! three members each, one per zone, built by [`MongoClusterSpec`]) under load from two app
//! nodes (clients), while a seeded schedule kills, partitions, isolates or pauses a replica set's
//! primary, sometimes pauses an app while its compactor holds a lock, sometimes steps the config
//! primary's clock, and on a set no primary fault touches may give one member a disk that returns
//! I/O errors or reads back damaged records; then everything heals. The run ends with the world's
//! ending ([`ENDING`]): the apps stop, every mongod loses power at once and restarts, and a
//! verifier reads every document back through a router.
//!
//! Checked, each by its own checker built from the cluster handle: no write the stack relied on
//! is lost once acknowledged, judged from the members' recovered disks
//! ([`lost_writes::DurabilityChecker`], which also checks that majority reads never return
//! rolled-back data and that no rollback undoes a majority-committed entry) and from what the
//! verifier reads back at majority after recovery ([`read_back::ReadBackChecker`]); no two
//! primaries of one set in one term ([`elections::ElectionChecker`]); each lock token has one
//! holder and every shard's surviving oplog takes a lock's fenced writes in token order
//! ([`fencing::FencingChecker`]); after the last heal (or last fault) every app's router reaches
//! every shard again, and the config servers grant locks again, within [`RECOVERY_BOUND_MS`]
//! ([`recovery::RecoveryChecker`]). Fault times come from the observations, so any schedule (the
//! seed's, a file's, a shrunk one, none) is judged the same way. Metrics: `election_ms` (first
//! fault on a primary to the next primary of its set, which accepts writes at once),
//! `router_recovery_ms`, rollbacks, `w1_acked_rolled_back`, and more.
//!
//! For the availability report every workload operation is recorded as it completes
//! (`sim::observation::OpOutcome`, with its simulated latency), in three classes: [`WRITE`] (each
//! attempt of an editor's batch of CRDT operations or consumer position, a compactor's snapshot,
//! a register write), [`READ`] (a majority read of a document's operations, a register read) and
//! [`LOCK`] (a compactor asking for a document's lock). An operation the store answered as
//! designed succeeded (a lock busy with another holder, a snapshot fenced out by a newer token
//! included); one that failed or went unanswered within the router's deadline failed. Data lost:
//! each document an acknowledged write the apps relied on created, not read back at majority after
//! the final power loss and recovery ([`read_back::ReadBackChecker`], `write`).
//!
//! Unsafe configs, each proving a checker can fail: `mongo-w1` (the apps write at `w:1`: a
//! deposed primary's unreplicated writes are rolled back, `lost write`), `mongo-ack-before-fsync`
//! (mongods count oplog writes durable without an fsync: the final power loss takes acknowledged
//! writes, `lost write`), `mongo-dry-run-elects` (a dry run's winner takes office without the
//! term bump, `split brain`), `mongo-ignore-fence` (shards never compare fencing tokens, `split lock`:
//! a stale holder's write must land after a newer holder's, which about one seed in twenty
//! reaches, 27 of 0..600; `ci/unsafe-check.sh` sweeps it over 0..200).

pub mod elections;
pub mod fencing;
pub mod lost_writes;
pub mod on_disk;
pub mod read_back;
pub mod recovery;
pub mod registers;
mod schedule;
pub mod verifier;
pub mod workload;

use sim::ratio::Ratio;
use sim::{node_main, Plan, Topology};
use system::mongo::{Flaw, MongoClusterSpec, WriteConcern};

use crate::scenario::{Built, Scenario, WindowProbe};

pub static SCENARIO: Scenario = Scenario {
    name: "mongo-failover",
    about: "MongoDB-like sharded replica sets: kill, partition, isolate or pause a primary under load; w:majority survives, one primary per term, routers recover, fencing tokens order lock holders",
    configs: &[
        ("mongo-w1", "unsafe: the apps write at w:1, so rolled-back writes are lost (the lost-write checker must fire)"),
        ("mongo-ack-before-fsync", "unsafe: mongods count oplog writes durable without an fsync, so a power loss takes acknowledged writes (`lost write`)"),
        ("mongo-dry-run-elects", "unsafe: a candidate that wins its dry run takes office without the term bump, so two primaries share a term (`split brain`)"),
        ("mongo-ignore-fence", "unsafe: shards never compare a lock's fencing token, so a stale holder's write lands after a newer one's (`split lock`)"),
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
        "fault.disk",
        "mongo.fail_stop",
        "mongo.damaged",
        "mongo.repaired",
    ],
    window_probes: &[
        // Measured over seeds 0..300: 7, 100 and 140 runs; each minimum is about half of that.
        WindowProbe { name: lost_writes::W1_ROLLED_BACK, min_rate: Ratio::new(1, 100) },
        WindowProbe { name: "mongo.damaged", min_rate: Ratio::new(1, 6) },
        WindowProbe { name: "mongo.write_in_flight_at_failover", min_rate: Ratio::new(1, 5) },
    ],
    draw: |seed, _config| schedule::draw(seed),
    build,
};

/// The cluster's name prefix: replica sets `mongo-shard-a`, `mongo-shard-b`, `mongo-config`.
pub const PREFIX: &str = "mongo";
pub const ZONES: [&str; 3] = ["az-1", "az-2", "az-3"];
pub const REGION: &str = "region-1";
pub const APPS: [&str; 2] = ["app-1", "app-2"];
/// The availability report's class of a write.
pub const WRITE: &str = "write";
/// The availability report's class of a read.
pub const READ: &str = "read";
/// The availability report's class of a lock request.
pub const LOCK: &str = "lock";
/// The collaborative documents the editors write to (spread over both shards by hash).
pub const DOCS: [&str; 8] = ["doc-0", "doc-1", "doc-2", "doc-3", "doc-4", "doc-5", "doc-6", "doc-7"];
/// The drawn schedule's faults stop and everything heals here; the rest of the run proves
/// recovery. Only the draw uses it: checkers read the heal time from the observations.
pub const HEAL_AT_MS: u64 = 40_000;
pub const DURATION_MS: u64 = 60_000;
/// Clients stop at [`DURATION_MS`]; then the run's ending. Recovery must hold an election in
/// every set (an election timeout of 10 s plus its offset) and commit in the new terms before
/// the verifier can read, hence 30 s.
pub const ENDING: sim::Ending = sim::Ending { settle_ms: 3_000, recover_ms: 30_000 };
/// Reads everything back through a router after the final power loss.
pub const VERIFIER: &str = "mongo-verifier";
/// After the heal, routers and lock grants must work again within this bound (a new election
/// may still be needed then: election timeout plus its offset, plus margin).
pub const RECOVERY_BOUND_MS: u64 = 15_000;

/// The cluster a config runs: `mongo-w1` has the apps rely on `w:1` writes.
pub fn spec(config: Option<&str>) -> MongoClusterSpec {
    let mut spec = MongoClusterSpec::new(PREFIX, &ZONES, REGION);
    match config {
        Some("mongo-w1") => spec.write_concern = WriteConcern::W1,
        Some("mongo-ack-before-fsync") => spec.flaw = Some(Flaw::AckBeforeFsync),
        Some("mongo-dry-run-elects") => spec.flaw = Some(Flaw::DryRunElects),
        Some("mongo-ignore-fence") => spec.flaw = Some(Flaw::IgnoreFence),
        _ => {}
    }
    spec
}

fn build(_seed: u64, config: Option<&str>, schedule: Vec<sim::Scheduled>) -> Built {
    let mut plan = Plan::new(Topology::new(), DURATION_MS);
    let mongo = spec(config).add_to(&mut plan);
    for (app, zone) in APPS.iter().zip(ZONES) {
        plan.topology.add(app, zone, REGION);
        let cluster = mongo.clone();
        plan.client(app, node_main(move |ctx| workload::run(ctx, cluster.clone())));
    }
    plan.topology.add(VERIFIER, ZONES[0], REGION);
    let cluster = mongo.clone();
    plan.verifier(VERIFIER, node_main(move |ctx| verifier::run(ctx, cluster.clone())));
    plan.schedule = schedule;
    plan.ending = Some(ENDING);
    // After the ending is set: the register verifier exists only in a plan that ends with recovery.
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
        .checker(read_back::ReadBackChecker { cluster: mongo.clone() })
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
