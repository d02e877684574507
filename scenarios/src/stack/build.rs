//! One full-stack run from a [`StackSpec`]: stores, services, users, the snapshot watcher
//! `watch-1` (a client in zone `clients`, [`super::durable_read::watch`]), the verifier, the
//! ending, the schedule, and the checkers every full-stack scenario applies.

use sim::{Plan, Scheduled, Topology};
use system::kafka::KafkaCluster;
use system::mongo::MongoCluster;
use system::postgres::PgCluster;
use system::redis::RedisCluster;

use super::check::{
    convergence::ConvergenceChecker,
    durable_path::{OffsetChecker, OpsOnceChecker, SnapshotChecker},
    liveness::LivenessChecker,
    lost_edits::LostEditChecker,
    security::SecurityChecker,
};
use super::durable_read::WatchConfig;
use super::services;
use super::spec::{add_stores, add_users, Stack, StackSpec, REGION, REVOKE_DOC, USER_ZONE};
use super::verifier::VerifierConfig;
use crate::scenario::Built;

/// How long after the last heal logins, loads and acknowledged edits must work again.
pub const LIVENESS_BOUND_MS: u64 = 60_000;
/// How often (plus up to half as much jitter) the snapshot watcher lists every document's
/// snapshots.
pub const SNAPSHOT_WATCH_MS: u64 = 20_000;
/// How long after a revocation took effect the revoked user's writes may still land (the
/// auth slice's stated bound, which the collaboration service meets by re-checking).
pub const REVOCATION_BOUND_MS: u64 = system::auth::REVOCATION_BOUND_MS;

/// The server side of a stack: the store clusters and the service nodes.
#[derive(Clone)]
pub struct Servers {
    pub pg: PgCluster,
    pub mongo: MongoCluster,
    pub redis: RedisCluster,
    pub kafka: KafkaCluster,
    pub names: services::ServiceNames,
}

/// Adds the stores and the services, no users: what every stack runs, simulated or real.
pub fn add_servers(spec: &StackSpec, plan: &mut Plan) -> Servers {
    let (pg, mongo, redis, kafka) = add_stores(spec, plan);
    let names = services::names(spec, plan);
    services::add_balancers(plan, &names);
    services::add_auth(plan, &names, spec, &pg);
    services::add_collab(plan, &names, spec, &pg, &kafka);
    services::add_docs(plan, &names, &mongo, &redis);
    services::add_consumers(plan, &names, spec, &kafka, &mongo);
    Servers { pg, mongo, redis, kafka, names }
}

pub fn build(seed: u64, spec: &StackSpec, schedule: Vec<Scheduled>) -> (Built, Stack) {
    let mut plan = Plan::new(Topology::new(), spec.duration_ms);
    let Servers { pg, mongo, redis, kafka, names } = add_servers(spec, &mut plan);
    let verifier = VerifierConfig {
        balancers: Vec::new(),
        docs: Vec::new(),
        wait_ms: spec.ending.recover_ms / 2,
        read_window_ms: spec.ending.recover_ms / 2 - 5_000,
        mongo: Some(services::mongo_reader(&mongo)),
        durable: Some(services::durable_sources(&kafka, &mongo)),
    };
    let (editors, docs, expected) = add_users(spec, seed, &mut plan, &names.balancers, verifier);
    let watch = WatchConfig {
        mongo: mongo.router_config(),
        docs: docs.iter().cloned().chain([REVOKE_DOC.to_string()]).collect(),
        start_ms: 20_000,
        period_ms: SNAPSHOT_WATCH_MS,
    };
    plan.topology.add("watch-1", USER_ZONE, REGION);
    plan.client("watch-1", sim::node_main(move |ctx| super::durable_read::watch(ctx, watch.clone())));
    plan.ending = Some(spec.ending);
    plan.schedule = schedule;
    let stack = Stack {
        pg,
        mongo,
        redis,
        kafka,
        balancers: names.balancers,
        auth: names.auth,
        collab: names.collab,
        docs_nodes: names.docs,
        consumers: names.consumers,
        editors,
        docs: docs.clone(),
        expected: expected.clone(),
    };
    let built = Built::new(plan)
        .checker(ConvergenceChecker { docs, expected })
        .checker(LostEditChecker)
        .checker(OpsOnceChecker)
        .checker(OffsetChecker)
        .checker(SnapshotChecker)
        .checker(SecurityChecker {
            revocation_bound_ms: REVOCATION_BOUND_MS,
            collateral_window_ms: 2_000,
            quiet_ms: 30_000,
        })
        .checker(LivenessChecker {
            whats: &["login", "load", "edit"],
            bound_ms: LIVENESS_BOUND_MS,
            warmup_ms: 90_000,
            active_until_ms: spec.type_until_ms(),
        });
    (built, stack)
}
