//! A register workload on MongoDB: sessions upsert unique values into a few documents at the
//! cluster's write concern (`w:majority`) and read them back with `readConcern: majority`, all
//! through the app's router (mongos); [`crate::registers::LinearizabilityChecker`] judges the
//! history.
//!
//! `w:majority` with majority reads promises that an acknowledged write is never rolled back and
//! that a read returns only majority-committed data; the checker holds the history to the
//! stronger promise of linearizability, which this model keeps because a deposed primary steps
//! down before a new one is elected and a read goes to the newest primary the router finds.
//! A write whose reply was lost (or whose write concern timed out) is of unknown outcome; the
//! router's retry of it is part of the same operation.
//!
//! The unsafe `mongo-local-reads` config reads with `readConcern: local`: a primary about to be
//! deposed serves writes no majority holds, which the next primary does not have, and the
//! checker must say the history is not linearizable.

use std::time::Duration;

use rand::Rng;
use serde_json::json;
use sim::{node_main, NodeCtx, Plan};
use system::mongo::{MongoCluster, ReadConcern, RouteError, Router, WriteOp};

use crate::registers::{Call, Completion, LinearizabilityChecker, Recorder};

/// The register client's node.
pub const NODE: &str = "app-registers";
/// The unsafe config: reads at `readConcern: local`.
pub const LOCAL_READS: &str = "mongo-local-reads";
/// The registers' collection.
const NS: &str = "app.registers";
const SESSIONS: usize = 3;
const KEYS: u32 = 4;
const MAX_STATES: u64 = 200_000;

/// Adds the register client to `plan`, in `zone` of `region`.
pub fn add(plan: &mut Plan, mongo: &MongoCluster, zone: &str, region: &str, local_reads: bool) {
    plan.topology.add(NODE, zone, region);
    let mongo = mongo.clone();
    plan.node(NODE, node_main(move |ctx| run(ctx, mongo.clone(), local_reads)));
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
    let read_concern = if local_reads { ReadConcern::Local } else { ReadConcern::Majority };
    loop {
        let key = format!("reg-{}", ctx.rng.gen_range(0..KEYS));
        if ctx.rng.gen_ratio(1, 2) {
            let value = rec.unique_value();
            let op = rec.invoke(&ctx, &key, Call::Write(value.clone()));
            let write = WriteOp::Upsert { ns: NS.into(), id: key.clone(), doc: json!({ "v": value }) };
            let completion = match router.write(&key, vec![write], concern, None).await {
                Ok(w) => Completion::Ok { read: None, by: w.primary },
                // Nothing was sent before the shard map loaded.
                Err(e @ RouteError::NoShardMap) => Completion::Fail { reason: e.to_string() },
                // A timed-out attempt may have landed (the router retries it): unknown.
                Err(e) => Completion::Unknown { reason: e.to_string() },
            };
            rec.complete(&ctx, op, completion);
        } else {
            let op = rec.invoke(&ctx, &key, Call::Read);
            let completion = match router.find(&key, NS, &key, read_concern).await {
                Ok(docs) => {
                    let doc = docs.into_iter().find(|d| d.id == key);
                    let value = doc.and_then(|d| d.doc.get("v").and_then(|v| v.as_str()).map(str::to_string));
                    Completion::Ok { read: value, by: "router".into() }
                }
                Err(e) => Completion::Fail { reason: e.to_string() },
            };
            rec.complete(&ctx, op, completion);
        }
        tokio::time::sleep(Duration::from_millis(ctx.rng.gen_range(10..60))).await;
    }
}
