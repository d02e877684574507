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
use system::redis::RedisClusterSpec;

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
    draw: |seed, config| schedule::draw(seed, &spec(config).names()),
    build,
};

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

/// The cache under test: three members and three Sentinels (quorum 2), one of each per zone.
fn spec(_config: Option<&str>) -> RedisClusterSpec {
    RedisClusterSpec::new("redis", "region-1", ZONES.map(String::from).to_vec())
}

fn build(_seed: u64, config: Option<&str>, schedule: Vec<sim::Scheduled>) -> Built {
    let history = Arc::new(Mutex::new(History::default()));
    let mut plan = Plan::new(Topology::new(), DURATION_MS);
    let mut spec = spec(config);
    spec.observer = Some(Arc::new(Recorder(history.clone())));
    let redis = spec.add_to(&mut plan);
    plan.topology.add(CLIENT, ZONES[0], "region-1");
    let (h, client) = (history.clone(), redis.client_config());
    plan.node(CLIENT, node_main(move |ctx| workload::run(ctx, client.clone(), h.clone())));
    plan.schedule = schedule;
    let initial = redis.initial_master().to_string();
    let check = move |outcome: &sim::Outcome, verdict: &mut crate::Verdict| {
        let (fault_at_ms, fault) =
            outcome.observations(|o| o.faults().next().map(|f| (f.t_ms, f.value.fault.kind()))).unwrap_or((0, "none"));
        let h = history.lock().unwrap_or_else(|e| e.into_inner());
        let v = checker::check(outcome, &h, &initial, fault_at_ms, fault);
        verdict.violations.extend(v.violations);
        verdict.metrics.extend(v.metrics);
    };
    Built::new(plan).checker(check)
}
