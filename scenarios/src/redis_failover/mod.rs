//! `redis-failover`: a Redis-like master with two asynchronous replicas (one per zone) and three
//! Sentinels (quorum 2), used as a cache by the document service, while the master is killed,
//! isolated, partitioned from the Sentinels and replicas (clients still reach it: the classic
//! split brain) or paused, the Sentinels are split (some see the master, some do not), or a
//! Sentinel's disk fails, at a seeded moment ([`schedule`]). Half the seeds run the members with
//! `min-replicas-to-write 1` (`min-replicas-max-lag` 2 s); `--config redis-min-replicas` runs
//! every seed so.
//!
//! Checked, from the observations (faults included) and what the final master holds:
//! - [`elections`]: every failover was decided by a quorum that saw the master down and led by
//!   the Sentinel a majority durably voted for; one leader and one master per epoch; every vote
//!   a Sentinel released is in its `sentinel.conf`;
//! - [`registers`]: mutable keys (overwritten, deleted) are never read stale or resurrected
//!   from a master that acknowledged the newer write in the same tenure; writes lost to a
//!   failover (asynchronous replication) are counted with the failover that lost them;
//! - [`failover`]: a fault that silences the master the Sentinels name for
//!   [`FAILOVER_BOUND_MS`] is followed within that bound by a failover;
//! - [`follow`]: clients write to each new master, the final read-back comes from the master the
//!   Sentinels' durable configuration names, and no write a demoted master acknowledged more than
//!   [`FOLLOW_BOUND_MS`] after the Sentinels moved on is missing from the final master;
//! - [`cache`]: the cache never serves wrong or expired data (so losing entries loses nothing
//!   that matters: a miss is refilled from the source), and writes resume after the last fault.
//!
//! Recorded: how many acknowledged writes the cache lost, and how many a demoted master took.
//!
//! For the availability report every command of the cache sessions is recorded as it completes
//! (`sim::observation::OpOutcome`): class [`WRITE`] (`SET` of a rendered document or a session
//! key, `SET` or `DEL` of a register) and class [`READ`] (`GET` of a document, a session key or a
//! register), successful when a node answered it as asked, failed on an error, a refusal or no
//! answer. Data lost: each acknowledged cache write the final read-back (before the ending) no
//! longer holds though its TTL outlives it (`cache write`: a failover or a demoted master took
//! it), and each acknowledged register write a later read on another master or tenure missed
//! (`register write`). What the ending's power loss takes is not counted: the members run without
//! persistence, so it takes everything, by design.
//!
//! `--config redis-stale-client` is unsafe on purpose: one of the two cache sessions finds the
//! master once through the Sentinels and then keeps using it (a client configured with the
//! master's address, or a pool that never refreshes it). After a failover it keeps writing to the
//! old master whenever that node accepts writes: through a partition, after a pause or isolation
//! ends, or after a killed master restarts empty, until the Sentinels turn it into a replica and
//! its writes are thrown away by the full resynchronisation. [`follow`] catches those writes as
//! `write to demoted master` (most seeds of every fault kind; within the first few seeds).
//!
//! `--config redis-one-sentinel` is unsafe on purpose: every Sentinel fails over on its own
//! opinion (its own SDOWN is enough, its own vote elects it). [`elections`] catches it as
//! `failover without majority`.
//!
//! Four more unsafe configs plant one bug each ([`system::redis::planted`] and the client's
//! `follows`), each caught by the check that exists for it: `redis-get-seeks` (a `GET` that
//! misses answers the next key's value) as `cache served wrong data`; `redis-read-before-expire`
//! (a key past its TTL served once before lazy expiry deletes it) as `expired key served`;
//! `redis-no-follow` (sessions rediscover the master only after an error, so a replaced master
//! they still reach keeps their writes) as `clients did not follow`; `redis-elect-on-quorum`
//! (`quorum 1`, and the election counts votes against it: a Sentinel elects itself) as `failover
//! without majority` (with `quorum 1`, no failover lacks the quorum).
//!
//! Window probes: `redis.sentinels_split` (a partition left the master with some Sentinels but
//! not all), `redis.majority_switch_minority_saw_master` (a leader was elected during such a split
//! while a Sentinel still saw the master) and `redis.write_refused_min_replicas` (a master refused
//! a write for want of replicas).

mod cache;
mod checker;
mod elections;
mod failover;
mod follow;
mod history;
mod registers;
mod schedule;
mod workload;

use rand::Rng;
use sim::{node_main, Ending, Plan, Scheduled, Topology};
use system::redis::RedisClusterSpec;

use crate::scenario::{Built, Scenario, WindowProbe};
use sim::ratio::Ratio;

pub static SCENARIO: Scenario = Scenario {
    name: "redis-failover",
    about: "Redis-like cache with three Sentinels: kill, isolate, partition or pause the master under cache traffic",
    configs: &[
        (STALE_CLIENT, "one cache session pins the first master it finds and never follows Sentinel (unsafe)"),
        (ONE_SENTINEL, "every Sentinel fails over on its own opinion, ignoring quorum and majority (unsafe)"),
        (MIN_REPLICAS, "every seed runs the members with min-replicas-to-write 1 (min-replicas-max-lag 2 s)"),
        (STALE_CLIENT_MIN_REPLICAS, "the stale cache session of redis-stale-client, against members with min-replicas-to-write 1: refused, not lost"),
        (GET_SEEKS, "GET answers the first key at or after the one asked for, so a miss returns another key's value (unsafe)"),
        (READ_BEFORE_EXPIRE, "GET fetches the entry before lazy expiry deletes it, serving a key past its TTL once (unsafe)"),
        (NO_FOLLOW, "clients look for the master only after an error, never on a failover announcement (unsafe)"),
        (ELECT_ON_QUORUM, "quorum 1, and the leader election counts votes against the quorum, not a majority (unsafe)"),
    ],
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
        "redis.register_write_lost_at_failover",
        "sentinel.halted_on_save_error",
        "fault.disk",
    ],
    window_probes: &[
        WindowProbe { name: "redis.sentinels_split", min_rate: Ratio::new(1, 5) },
        WindowProbe { name: "redis.majority_switch_minority_saw_master", min_rate: Ratio::new(1, 20) },
        WindowProbe { name: "redis.write_refused_min_replicas", min_rate: Ratio::new(1, 10) },
    ],
    draw: |seed, config| schedule::draw(seed, &spec(config).names()),
    build,
};

/// The unsafe config: a client that never follows Sentinel.
pub const STALE_CLIENT: &str = "redis-stale-client";
/// The unsafe config: Sentinels that fail over on one Sentinel's opinion.
pub const ONE_SENTINEL: &str = "redis-one-sentinel";
/// The unsafe config: `GET` seeks ([`system::redis::planted`]'s `get_seeks`).
pub const GET_SEEKS: &str = "redis-get-seeks";
/// The unsafe config: `GET` reads before lazy expiry (`read_before_expire`).
pub const READ_BEFORE_EXPIRE: &str = "redis-read-before-expire";
/// The unsafe config: clients that do not follow failover announcements.
pub const NO_FOLLOW: &str = "redis-no-follow";
/// The unsafe config: `quorum 1` and an election that needs only the quorum (`elect_on_quorum`).
pub const ELECT_ON_QUORUM: &str = "redis-elect-on-quorum";
/// Every seed with `min-replicas-to-write 1`.
pub const MIN_REPLICAS: &str = "redis-min-replicas";
/// The stale client against members with `min-replicas-to-write 1`: safe, because a master cut
/// off from its replicas refuses the writes the stale client would otherwise lose.
pub const STALE_CLIENT_MIN_REPLICAS: &str = "redis-min-replicas-stale-client";
pub const ZONES: [&str; 3] = ["az-1", "az-2", "az-3"];
pub const CLIENT: &str = "app-1";
/// The availability report's class of a `SET` or `DEL`.
pub const WRITE: &str = "write";
/// The availability report's class of a `GET`.
pub const READ: &str = "read";
/// Reads the final state after the ending's power loss and restart.
pub const VERIFIER: &str = "verify-1";
/// The run's ending: two quiet seconds for replication to catch up, then every server loses
/// power at once and restarts; the verifier then has six seconds to find the master and read.
pub const ENDING: Ending = Ending { settle_ms: 2_000, recover_ms: 6_000 };
pub const HEAL_AT_MS: u64 = 26_000;
/// How long clients may keep writing to a master the Sentinels have replaced (they ask a
/// Sentinel about once a second; the Sentinels spread a new configuration within a hello period
/// or two).
pub const FOLLOW_BOUND_MS: u64 = 6_000;
pub const WORKLOAD: workload::Timing = workload::Timing { writers_stop_ms: 33_000, readback_at_ms: 34_000 };
pub const DURATION_MS: u64 = 36_000;
/// A master silenced this long must have been replaced this soon after the fault
/// (`down-after-milliseconds` 3 s, then election and promotion; about 4 s is typical).
pub const FAILOVER_BOUND_MS: u64 = 8_000;
/// The bound with one Sentinel halted: the two left may split their votes once, and retry only
/// after twice `failover-timeout` (6 s here).
pub const DEGRADED_FAILOVER_BOUND_MS: u64 = FAILOVER_BOUND_MS + 12_000;

/// The cache under test: three members and three Sentinels (quorum 2), one of each per zone.
/// Names do not depend on the seed or config (a schedule is drawn from them alone).
pub(crate) fn spec(config: Option<&str>) -> RedisClusterSpec {
    let mut spec = RedisClusterSpec::new("redis", "region-1", ZONES.map(String::from).to_vec());
    spec.sentinel_single_opinion = config == Some(ONE_SENTINEL);
    spec.planted.get_seeks = config == Some(GET_SEEKS);
    spec.planted.read_before_expire = config == Some(READ_BEFORE_EXPIRE);
    if config == Some(ELECT_ON_QUORUM) {
        spec.quorum = 1;
        spec.planted.elect_on_quorum = true;
    }
    spec
}

/// Whether the members run with `min-replicas-to-write 1`: always under [`MIN_REPLICAS`], never
/// with the stale client (whose writes it would refuse, hiding what that config exists to show),
/// otherwise every other seed.
fn min_replicas(seed: u64, config: Option<&str>) -> bool {
    match config {
        Some(MIN_REPLICAS | STALE_CLIENT_MIN_REPLICAS) => true,
        Some(STALE_CLIENT) => false,
        _ => sim::rng::derive(seed, "~redis-min-replicas", 0).gen_ratio(1, 2),
    }
}

fn build(seed: u64, config: Option<&str>, schedule: Vec<Scheduled>) -> Built {
    let mut plan = Plan::new(Topology::new(), DURATION_MS);
    let mut spec = spec(config);
    if min_replicas(seed, config) {
        spec.min_replicas_to_write = 1;
    }
    let redis = spec.add_to(&mut plan);
    plan.topology.add(CLIENT, ZONES[0], "region-1");
    let client = redis.client_config();
    let mut sessions = workload::sessions(&client);
    if matches!(config, Some(STALE_CLIENT | STALE_CLIENT_MIN_REPLICAS)) {
        sessions[0].pinned = true;
    }
    if config == Some(NO_FOLLOW) {
        sessions.iter_mut().for_each(|s| s.follows = false);
    }
    plan.client(CLIENT, node_main(move |ctx| workload::run(ctx, sessions.clone(), client.clone(), WORKLOAD)));
    plan.topology.add(VERIFIER, ZONES[1], "region-1");
    let verifier = redis.client_config();
    plan.verifier(VERIFIER, node_main(move |ctx| workload::verify(ctx, verifier.clone())));
    plan.ending = Some(ENDING);
    plan.schedule = schedule;
    Built::new(plan)
        .checker(failover::FailoverChecker {
            redis: redis.clone(),
            failover_bound_ms: FAILOVER_BOUND_MS,
            degraded_bound_ms: DEGRADED_FAILOVER_BOUND_MS,
        })
        .checker(follow::FollowChecker {
            redis: redis.clone(),
            follow_bound_ms: FOLLOW_BOUND_MS,
            writers_stop_ms: WORKLOAD.writers_stop_ms,
        })
        .checker(elections::ElectionChecker { redis: redis.clone() })
        .checker(registers::RegisterChecker { redis: redis.clone() })
        .checker(cache::CacheChecker { redis, writers_stop_ms: WORKLOAD.writers_stop_ms })
}
