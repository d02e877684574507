//! `redis-failover`: a Redis-like master with two asynchronous replicas (one per zone) and three
//! Sentinels (quorum 2), used as a cache by the document service, while the master is killed,
//! isolated, partitioned from the Sentinels and replicas (clients still reach it: the classic
//! split brain) or paused at a seeded moment.
//!
//! Checked: the Sentinels fail over within [`FAILOVER_BOUND_MS`] and clients follow; once the
//! faults have healed and [`FOLLOW_BOUND_MS`] has passed no client write is acknowledged by a
//! demoted master; the cache never serves wrong or expired data (so losing entries loses nothing
//! that matters: a miss is refilled from the source). Recorded: how many acknowledged writes the
//! cache lost.

mod checker;
mod history;
mod schedule;
mod workload;

use std::sync::{Arc, Mutex};

use sim::{node_main, Plan, Topology};
use system::redis::sentinel::SentinelConfig;
use system::redis::RedisConfig;

use crate::scenario::{Built, Scenario};
use history::{History, Recorder};

pub static SCENARIO: Scenario = Scenario {
    name: "redis-failover",
    about: "Redis-like cache with three Sentinels: kill, isolate, partition or pause the master under cache traffic",
    configs: &[],
    sweep_must_reach: &[
        "fault.kill",
        "fault.isolate",
        "fault.partition",
        "fault.pause",
        "sentinel.switch_master",
        "sentinel.+convert-to-slave",
        "redis.full_resync",
        "redis.partial_resync",
        "redis.cache_lost_writes",
        "redis.writes_to_demoted_master",
        "redis.cache_miss_refilled",
    ],
    draw: |seed, _config| schedule::draw(seed).schedule,
    build,
};

pub const REDIS: [&str; 3] = ["redis-1", "redis-2", "redis-3"];
pub const SENTINELS: [&str; 3] = ["sentinel-1", "sentinel-2", "sentinel-3"];
pub const ZONES: [&str; 3] = ["az-1", "az-2", "az-3"];
pub const CLIENT: &str = "app-1";
pub const HEAL_AT_MS: u64 = 26_000;
/// After the heal, this long is allowed for the old master to be turned into a replica and for
/// clients to leave it.
pub const FOLLOW_BOUND_MS: u64 = 6_000;
pub const READBACK_AT_MS: u64 = 34_000;
pub const DURATION_MS: u64 = 36_000;
/// The Sentinels must have promoted a new master within this long of the fault.
pub const FAILOVER_BOUND_MS: u64 = 15_000;

fn build(seed: u64, _config: Option<&str>, schedule: Vec<sim::Scheduled>) -> Built {
    let mut topology = Topology::new();
    for (i, zone) in ZONES.iter().enumerate() {
        topology.add(REDIS[i], zone, "region-1");
        topology.add(SENTINELS[i], zone, "region-1");
    }
    topology.add(CLIENT, "az-1", "region-1");
    let history = Arc::new(Mutex::new(History::default()));
    let observer = Arc::new(Recorder(history.clone()));
    let mut plan = Plan::new(topology, DURATION_MS);
    for name in REDIS {
        let replica_of = (name != REDIS[0]).then(|| REDIS[0].to_string());
        let config = RedisConfig { replica_of, priority: 100, observer: Some(observer.clone()) };
        plan.node(name, node_main(move |ctx| system::redis::run(ctx, config.clone())));
    }
    let instances: Vec<String> = REDIS.iter().map(|s| s.to_string()).collect();
    for name in SENTINELS {
        let peers = SENTINELS.iter().filter(|p| **p != name).map(|p| p.to_string()).collect();
        let config = SentinelConfig::simulation(name, peers, instances.clone(), REDIS[0]);
        let observer: Arc<dyn system::redis::Observer> = observer.clone();
        plan.node(name, node_main(move |ctx| system::redis::sentinel_node::run(ctx, config.clone(), Some(observer.clone()))));
    }
    let h = history.clone();
    plan.node(CLIENT, node_main(move |ctx| workload::run(ctx, h.clone())));
    let drawn = schedule::draw(seed);
    plan.schedule = schedule;
    let (fault_at_ms, fault) = (drawn.fault_at_ms, drawn.fault);
    let check = move |outcome: &sim::Outcome, verdict: &mut crate::Verdict| {
        let h = history.lock().unwrap_or_else(|e| e.into_inner());
        let v = checker::check(outcome, &h, fault_at_ms, fault);
        verdict.violations.extend(v.violations);
        verdict.metrics.extend(v.metrics);
    };
    Built::new(plan).checker(check)
}
