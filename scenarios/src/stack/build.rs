//! One full-stack run from a [`StackSpec`]: stores, services, users, the snapshot watcher
//! `watch-1` (a client in zone `clients`, [`super::durable_read::watch`]), the verifier, the
//! ending, the schedule, and the checkers every full-stack scenario applies.

use sim::{Plan, Scheduled, Topology};

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

pub fn build(seed: u64, spec: &StackSpec, schedule: Vec<Scheduled>) -> (Built, Stack) {
    let mut plan = Plan::new(Topology::new(), spec.duration_ms);
    let (pg, mongo, redis, kafka) = add_stores(spec, &mut plan);
    let names = services::names(spec, &mut plan);
    services::add_balancers(&mut plan, &names);
    services::add_auth(&mut plan, &names, &pg);
    services::add_collab(&mut plan, &names, spec, &pg, &kafka);
    services::add_docs(&mut plan, &names, &mongo, &redis);
    services::add_consumers(&mut plan, &names, spec, &kafka, &mongo);
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
