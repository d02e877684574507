//! A register workload on MongoDB: sessions upsert unique values into a few documents at the
//! cluster's write concern (`w:majority`) and read them back with `readConcern: majority`, all
//! through the app's router (mongos); [`crate::registers::LinearizabilityChecker`] judges the
//! history.
//!
//! `w:majority` with majority reads alone is not linearizable, in MongoDB as in this model: a
//! freshly elected primary serves majority reads from its own commit point, which can lag what
//! its predecessor acknowledged (seen here right after priority takeovers), and a deposed primary
//! that has not noticed yet serves its old snapshot. So a read here is fenced the way MongoDB's
//! `readConcern: "linearizable"` is, by the client: a majority no-op write to the register's shard
//! before the read and one after, and the read counts only if one primary acknowledged both in
//! one term ([`fenced_read`]). Left out: the router does not say which member served the find,
//! so a read sent to another member between the fences is trusted too.
//! A write whose reply was lost (or whose write concern timed out) is of unknown outcome; the
//! router's retry of it is part of the same operation.
//!
//! The unsafe `mongo-local-reads` config reads with `readConcern: local` and no fences: a primary
//! about to be deposed serves writes no majority holds, which the next primary does not have,
//! and the checker must say the history is not linearizable.

use std::time::Duration;

use rand::Rng;
use serde_json::json;
use sim::{node_main, NodeCtx, Plan};
use system::mongo::{MongoCluster, ReadConcern, RouteError, Router, WriteConcern, WriteOp};

use super::{READ, WRITE};
use crate::availability::op_since;
use crate::registers::{Call, Completion, LinearizabilityChecker, Recorder};

/// The register client's node.
pub const NODE: &str = "app-registers";
/// The unsafe config: reads at `readConcern: local`.
pub const LOCAL_READS: &str = "mongo-local-reads";
/// The registers' collection.
const NS: &str = "app.registers";
/// The no-op writes that fence a read (one document per register and session).
const FENCES_NS: &str = "app.register_fences";
const SESSIONS: usize = 3;
const KEYS: u32 = 4;
const MAX_STATES: u64 = 200_000;

/// The verifier reading every register back after the ending's power loss.
pub const VERIFIER: &str = "verify-registers";

/// Adds the register client to `plan`, in `zone` of `region`. When the plan already has an
/// ending, a verifier reads every register (majority reads) once recovery starts: those reads
/// join the history, so an acknowledged write the final power loss took is a stale read.
pub fn add(plan: &mut Plan, mongo: &MongoCluster, zone: &str, region: &str, local_reads: bool) {
    plan.topology.add(NODE, zone, region);
    let cluster = mongo.clone();
    plan.client(NODE, node_main(move |ctx| run(ctx, cluster.clone(), local_reads)));
    if plan.ending.is_some() {
        plan.topology.add(VERIFIER, zone, region);
        let mongo = mongo.clone();
        plan.verifier(VERIFIER, node_main(move |ctx| verify(ctx, mongo.clone())));
    }
}

/// Reads each register at `readConcern: majority`, retrying until the shard answers.
async fn verify(mut ctx: NodeCtx, mongo: MongoCluster) {
    let router = mongo.router(ctx.fork());
    let mut rec = Recorder::new(&ctx, &store(&mongo), 0);
    for k in 0..KEYS {
        let key = format!("reg-{k}");
        loop {
            let op = rec.invoke(&ctx, &key, Call::Read);
            let completion = fenced_read(&router, &key, 0).await;
            let done = matches!(completion, Completion::Ok { .. });
            rec.complete(&ctx, op, completion);
            if done {
                break;
            }
            sim::timer::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// A majority read between two majority no-op writes to the register's shard, trusted only
/// if one primary acknowledged both in one term: MongoDB's `readConcern: "linearizable"` done
/// by the client. The first write moves the primary's commit point into its own term (a freshly
/// elected primary's majority snapshot may still miss what its predecessor acknowledged); the
/// second proves it was still primary after the read. Otherwise the read fails (says nothing).
async fn fenced_read(router: &Router, key: &str, session: usize) -> Completion {
    let noop = |n: u64| WriteOp::Upsert {
        ns: FENCES_NS.into(),
        id: format!("{key}/{session}"),
        doc: json!({ "n": n }).into(),
    };
    let before = match router.write(key, vec![noop(1)], WriteConcern::Majority, None).await {
        Ok(w) => w,
        Err(e) => return Completion::Fail { reason: format!("fence before the read: {e}") },
    };
    let read = read(router, key, ReadConcern::Majority).await;
    if !matches!(read, Completion::Ok { .. }) {
        return read;
    }
    match router.write(key, vec![noop(2)], WriteConcern::Majority, None).await {
        Ok(after) if after.primary == before.primary && after.optime.term == before.optime.term => read,
        Ok(after) => Completion::Fail {
            reason: format!(
                "primary changed across the read: {} term {} then {} term {}",
                before.primary, before.optime.term, after.primary, after.optime.term
            ),
        },
        Err(e) => Completion::Fail { reason: format!("fence after the read: {e}") },
    }
}

async fn read(router: &Router, key: &str, concern: ReadConcern) -> Completion {
    match router.find(key, NS, key, concern).await {
        Ok(docs) => {
            let doc = docs.into_iter().find(|d| d.id == key);
            let value = doc.and_then(|d| d.doc.get("v").and_then(|v| v.as_str()).map(str::to_string));
            Completion::Ok { read: value, by: "router".into() }
        }
        Err(e) => Completion::Fail { reason: e.to_string() },
    }
}

/// The checker of the register histories on `mongo`.
pub fn checker(mongo: &MongoCluster) -> LinearizabilityChecker {
    LinearizabilityChecker { store: store(mongo), max_states: MAX_STATES }
}

fn store(mongo: &MongoCluster) -> String {
    mongo.config_set().to_string()
}

async fn run(mut ctx: NodeCtx, mongo: MongoCluster, local_reads: bool) {
    let router = mongo.router(ctx.fork());
    for session in 1..SESSIONS {
        tokio::spawn(session_loop(ctx.fork(), mongo.clone(), router.clone(), session, local_reads));
    }
    // A node's spawned tasks live only while its main does.
    session_loop(ctx, mongo, router, 0, local_reads).await;
}

async fn session_loop(mut ctx: NodeCtx, mongo: MongoCluster, router: Router, session: usize, local_reads: bool) {
    let mut rec = Recorder::new(&ctx, &store(&mongo), session);
    let concern = mongo.write_concern();
    loop {
        let key = format!("reg-{}", ctx.rng.gen_range(0..KEYS));
        if ctx.rng.gen_ratio(1, 2) {
            let value = rec.unique_value();
            let op = rec.invoke(&ctx, &key, Call::Write(value.clone()));
            let write = WriteOp::Upsert { ns: NS.into(), id: key.clone(), doc: json!({ "v": value }).into() };
            let invoked_ms = ctx.clock.now_ms();
            let completion = match router.write(&key, vec![write], concern, None).await {
                Ok(w) => Completion::Ok { read: None, by: w.primary },
                // Nothing was sent before the shard map loaded.
                Err(e @ RouteError::NoShardMap) => Completion::Fail { reason: e.to_string() },
                // A timed-out attempt may have landed (the router retries it): unknown.
                Err(e) => Completion::Unknown { reason: e.to_string() },
            };
            op_since(&ctx, WRITE, matches!(completion, Completion::Ok { .. }), invoked_ms);
            rec.complete(&ctx, op, completion);
        } else {
            let op = rec.invoke(&ctx, &key, Call::Read);
            let invoked_ms = ctx.clock.now_ms();
            let completion = if local_reads {
                read(&router, &key, ReadConcern::Local).await
            } else {
                fenced_read(&router, &key, session).await
            };
            op_since(&ctx, READ, matches!(completion, Completion::Ok { .. }), invoked_ms);
            rec.complete(&ctx, op, completion);
        }
        sim::timer::sleep(Duration::from_millis(ctx.rng.gen_range(10..60))).await;
    }
}
