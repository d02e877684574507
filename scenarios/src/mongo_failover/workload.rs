//! The load on the cluster: each app node runs an editor writing CRDT operations (and bumping
//! version vectors, and recording consumer positions) and a compactor that takes a lock per
//! document, reads its operations and writes a fenced snapshot, as the stack's snapshot
//! compaction does.
//!
//! What the apps are told they record as observations ([`WriteAcked`] with the write concern
//! the acknowledgement carried, [`LockGranted`], [`MajorityRead`], [`FencedOut`]), for the
//! checkers; and every operation, as it completes, for the availability report (classes in
//! [`super`]).

use std::time::Duration;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use sim::NodeCtx;
use system::mongo::collections as coll;
use system::mongo::{
    Fence, FencedOut, LockGranted, MajorityRead, MongoCluster, ReadConcern, RouteError, Router, WriteAcked,
    WriteConcern, WriteOp, Written,
};

use super::{DOCS, LOCK, READ, WRITE};
use crate::availability::op_since;

/// How long a compactor's lock lease lasts.
const LEASE_MS: u64 = 4_000;
/// The first documents of [`DOCS`] are the ones compactors work on.
const HOT_DOCS: usize = 2;

/// Runs one app against `mongo`: an editor and a compactor, each with the app's router.
pub async fn run(mut ctx: NodeCtx, mongo: MongoCluster) {
    let router = mongo.router(ctx.fork());
    let concern = mongo.write_concern();
    let config_set = mongo.config_set().to_string();
    let compactor = Compactor { ctx: ctx.fork(), router: router.clone(), concern, config_set };
    tokio::spawn(compactor.run());
    Editor { ctx, router, concern }.run().await;
}

/// Records an acknowledgement for the checkers, with the documents the batch created.
fn acked(ctx: &NodeCtx, w: Written, what: String, concern: WriteConcern, relied: bool, writes: &[WriteOp]) {
    let Written { set, primary, optime, .. } = w;
    let created = writes
        .iter()
        .filter_map(|op| match op {
            WriteOp::Insert { ns, id, .. } => Some((ns.clone(), id.clone())),
            _ => None,
        })
        .collect();
    ctx.observe(&WriteAcked { set, primary, what, concern, relied, optime, created });
}

struct Editor {
    ctx: NodeCtx,
    router: Router,
    /// The write concern of writes the stack relies on (the cluster's default).
    concern: WriteConcern,
}

impl Editor {
    async fn run(mut self) {
        // A restarted app is a new client: its clock starts again, so its id must differ.
        let client = format!("{}.{}", self.ctx.name, self.ctx.incarnation);
        let mut clock = 0u64;
        loop {
            clock += 1;
            let doc = DOCS[self.ctx.rng.gen_range(0..DOCS.len())];
            let payload = json!({ "insert": self.ctx.rng.gen_range(0..1_000_000u32) });
            let writes = vec![
                coll::insert_crdt_op(doc, &client, clock, payload),
                coll::bump_version_vector(doc, &client, clock),
            ];
            let what = format!("crdt op {}", coll::crdt_op_id(doc, &client, clock));
            self.write_until_acked(doc, writes, self.concern, true, &what).await;
            if clock.is_multiple_of(10) {
                let partition = (clock / 10 % 4) as u32;
                let key = coll::consumer_key("collab-consumer", partition);
                let write = vec![coll::set_consumer_position("collab-consumer", partition, clock)];
                self.write_until_acked(
                    &key,
                    write,
                    WriteConcern::W1,
                    false,
                    &format!("consumer position {key}={clock}"),
                )
                .await;
            }
            if clock.is_multiple_of(15) {
                self.read_majority(doc).await;
            }
            sleep_ms(&mut self.ctx.rng, 20..60).await;
        }
    }

    /// Retries one (idempotent) batch until some primary acknowledges it.
    async fn write_until_acked(
        &mut self,
        route_key: &str,
        writes: Vec<WriteOp>,
        concern: WriteConcern,
        relied: bool,
        what: &str,
    ) {
        loop {
            let invoked_ms = self.ctx.clock.now_ms();
            let result = self.router.write(route_key, writes.clone(), concern, None).await;
            op_since(&self.ctx, WRITE, result.is_ok(), invoked_ms);
            match result {
                Ok(w) => {
                    acked(&self.ctx, w, what.into(), concern, relied, &writes);
                    return;
                }
                Err(e) => {
                    self.ctx.trace("app.write_failed", json!({ "what": what, "error": e.to_string() }));
                    sleep_ms(&mut self.ctx.rng, 100..300).await;
                }
            }
        }
    }

    async fn read_majority(&mut self, doc: &str) {
        let invoked_ms = self.ctx.clock.now_ms();
        let Ok(set) = self.router.shard_for(doc).await else {
            op_since(&self.ctx, READ, false, invoked_ms);
            return;
        };
        let found = self.router.find(doc, coll::CRDT_OPS, &coll::crdt_ops_prefix(doc), ReadConcern::Majority).await;
        op_since(&self.ctx, READ, found.is_ok(), invoked_ms);
        if let Ok(docs) = found {
            let mut seen: Vec<_> = docs.iter().map(|d| d.optime).collect();
            seen.sort();
            seen.dedup();
            self.ctx.observe(&MajorityRead { set, what: format!("{} of {doc}", coll::CRDT_OPS), seen });
        }
    }
}

struct Compactor {
    ctx: NodeCtx,
    router: Router,
    concern: WriteConcern,
    /// Where locks are granted, for the observations.
    config_set: String,
}

impl Compactor {
    async fn run(mut self) {
        let holder = format!("{}.{}", self.ctx.name, self.ctx.incarnation);
        loop {
            sleep_ms(&mut self.ctx.rng, 1_000..2_000).await;
            // Compaction targets the hot documents, so the two compactors contend for locks.
            let doc = DOCS[self.ctx.rng.gen_range(0..HOT_DOCS)];
            let lock = format!("compact/{doc}");
            let invoked_ms = self.ctx.clock.now_ms();
            let granted = self.router.acquire_lock(&lock, &holder, LEASE_MS).await;
            // Busy is an answer: the lock is another compactor's, as it should be.
            let answered = matches!(granted, Ok(_) | Err(RouteError::LockBusy { .. }));
            op_since(&self.ctx, LOCK, answered, invoked_ms);
            let Ok(grant) = granted else { continue };
            let (set, token) = (self.config_set.clone(), grant.token);
            self.ctx.observe(&LockGranted { set, lock: lock.clone(), holder: holder.clone(), token });
            self.compact(doc, &lock, grant.token).await;
            let _ = self.router.release_lock(&lock, &holder, grant.token).await;
        }
    }

    /// Reads the document's operations and writes a snapshot, fenced by the lock's token.
    async fn compact(&mut self, doc: &str, lock: &str, token: u64) {
        let prefix = coll::crdt_ops_prefix(doc);
        let invoked_ms = self.ctx.clock.now_ms();
        let found = self.router.find(doc, coll::CRDT_OPS, &prefix, ReadConcern::Majority).await;
        op_since(&self.ctx, READ, found.is_ok(), invoked_ms);
        let Ok(ops) = found else { return };
        // The work itself: long enough that a pause or a skewed lease can overtake it.
        sleep_ms(&mut self.ctx.rng, 500..2_500).await;
        let state = json!({ "ops": ops.len(), "compacted_by": token });
        let snapshot = coll::insert_snapshot(doc, ops.len() as u64, state);
        let fence = Fence { lock: lock.into(), token };
        let writes = vec![snapshot];
        let invoked_ms = self.ctx.clock.now_ms();
        let result = self.router.write(doc, writes.clone(), self.concern, Some(fence)).await;
        // Fenced out is an answer: a newer holder's token had reached the shard.
        op_since(&self.ctx, WRITE, matches!(result, Ok(_) | Err(RouteError::StaleFence { .. })), invoked_ms);
        match result {
            Ok(w) => {
                let what = format!("snapshot {} (token {token})", coll::snapshot_id(doc, ops.len() as u64));
                acked(&self.ctx, w, what, self.concern, true, &writes);
            }
            Err(RouteError::StaleFence { lock, token, highest }) => {
                // The map is loaded (the find above used it): no network, nothing can fail.
                let set = self.router.shard_for(doc).await.unwrap_or_default();
                self.ctx.observe(&FencedOut { set, lock, token, highest });
            }
            Err(_) => {}
        }
    }
}

async fn sleep_ms(rng: &mut ChaCha8Rng, range: std::ops::Range<u64>) {
    sim::timer::sleep(Duration::from_millis(rng.gen_range(range))).await;
}
