//! Reading the durable path straight from the stores, for the durable-path checkers
//! ([`super::check::durable_path`]): the consumer group's committed offsets and the update log
//! below them (Kafka), the stored operations and the snapshots (MongoDB, at majority, through a
//! router in the reading node). Nothing here asks a service what it stored.
//!
//! Two readers use it:
//! - the verifier, after the ending's power loss and recovery: offsets first, then the log
//!   below them, then every document's operations. The order matters: a consumer commits an
//!   offset only after persisting what is below it, and operations are never deleted, so
//!   whatever was below an offset when it was read must be in a later read of MongoDB, even
//!   while the (restarted) consumers keep going. Then every document's snapshots, listed and
//!   read whole ([`SnapshotsSeen`] with `final_read`).
//! - the snapshot watcher `watch-<n>` (a client in zone `clients`), during the run: every
//!   `period_ms` (with seeded jitter) it lists every document's snapshots from
//!   `snapshot_index` and reads one document's snapshots whole (a different one each round),
//!   so a snapshot that changes or vanishes after it was written is seen changing.

use std::collections::BTreeSet;
use std::time::Duration;

use rand::Rng;
use sim::NodeCtx;
use system::doc_update::{DocId, DocUpdate, TOPIC};
use system::docs::store::{ops_prefix, snapshot_from_json, snapshots_prefix, DocStore};
use system::docs::vector::digest;
use system::kafka::client::{Client, FetchError, GroupMember};
use system::kafka::protocol::CommittedOffset;
use system::kafka::{ClientSettings, TopicPartition};
use system::log_consumer::persist::{decode_record, Decoded};
use system::mongo::collections::{CRDT_OPS, SNAPSHOTS};
use system::mongo::{ReadConcern, Router, RouterConfig};

use super::observe::{CommittedLog, LogEntry, OpRow, SnapRow, SnapshotsSeen, StoredOps};

/// How a log read that ran out of time (not out of log) starts its error.
pub const READ_WINDOW_CLOSED: &str = "read window closed";

/// Where the durable path lives.
#[derive(Clone, Debug)]
pub struct DurableSources {
    pub mongo: RouterConfig,
    pub kafka_bootstrap: Vec<String>,
    pub kafka_client: ClientSettings,
    /// The partitions of `doc-updates`.
    pub partitions: Vec<TopicPartition>,
    /// The log consumers' group.
    pub group: String,
}

/// Reads offsets, log and operations (in that order) and then snapshots, recording each read;
/// every read is retried until it answers or `deadline_ms` (simulated) passes.
pub async fn verify(mut ctx: NodeCtx, src: DurableSources, docs: Vec<String>, deadline_ms: u64) {
    let logs = read_logs(&mut ctx, &src, deadline_ms).await;
    let mut all_docs: BTreeSet<String> = docs.into_iter().collect();
    for l in &logs {
        all_docs.extend(l.records.iter().map(|r| r.doc.clone()));
        ctx.observe(l);
    }
    let router = Router::new(ctx.fork(), src.mongo.clone());
    for doc in &all_docs {
        let ops = retry(&ctx, deadline_ms, || read_ops(&router, doc)).await;
        ctx.observe(&StoredOps { doc: doc.clone(), ops });
    }
    for doc in &all_docs {
        let read = retry(&ctx, deadline_ms, || read_snapshots(&router, doc, true)).await;
        ctx.observe(&SnapshotsSeen { doc: doc.clone(), final_read: true, read });
    }
}

async fn retry<T, F, Fut>(ctx: &NodeCtx, deadline_ms: u64, mut f: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let mut last = String::from("never tried");
    while ctx.clock.now_ms() < deadline_ms {
        match bounded(ctx, deadline_ms, f()).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => last = e,
            Err(e) => last = e,
        }
        sim::timer::sleep(Duration::from_millis(500)).await;
    }
    Err(last)
}

/// One call, given at most [`CALL_TIMEOUT_MS`] and never past `deadline_ms`: a request to a
/// member that went silent must not hold the whole read past its window.
async fn bounded<T>(ctx: &NodeCtx, deadline_ms: u64, call: impl std::future::Future<Output = T>) -> Result<T, String> {
    let left_ms = deadline_ms.saturating_sub(ctx.clock.now_ms()).min(CALL_TIMEOUT_MS);
    sim::timer::timeout(Duration::from_millis(left_ms), call).await.map_err(|_| format!("no answer in {left_ms} ms"))
}

/// The longest one read call may take before it is retried.
const CALL_TIMEOUT_MS: u64 = 5_000;

/// The group's committed offsets, then each partition's records below its offset.
async fn read_logs(ctx: &mut NodeCtx, src: &DurableSources, deadline_ms: u64) -> Vec<CommittedLog> {
    let client = Client::new(ctx, src.kafka_bootstrap.clone(), src.kafka_client.clone());
    // Never joins: OffsetFetch and Fetch need no membership.
    let mut group = GroupMember::new(client, &src.group, &ctx.name, vec![TOPIC.into()], 0);
    let mut rng = ctx.rng.clone();
    let mut committed: Result<Vec<(TopicPartition, Option<CommittedOffset>)>, String> = Err("never tried".into());
    while ctx.clock.now_ms() < deadline_ms {
        match bounded(ctx, deadline_ms, group.committed(&mut rng, src.partitions.clone())).await {
            Ok(Ok(c)) => {
                committed = Ok(c);
                break;
            }
            Ok(Err(e)) => committed = Err(format!("OffsetFetch: {e:?}")),
            Err(e) => committed = Err(format!("OffsetFetch: {e}")),
        }
        sim::timer::sleep(Duration::from_millis(500)).await;
    }
    let committed = match committed {
        Ok(c) => c,
        Err(e) => {
            return src
                .partitions
                .iter()
                .map(|tp| CommittedLog {
                    partition: tp.partition,
                    committed: Err(e.clone()),
                    high_watermark: 0,
                    records: vec![],
                    invalid: vec![],
                    read_error: None,
                })
                .collect()
        }
    };
    let mut out = Vec::new();
    for (tp, c) in committed {
        let mut log = CommittedLog {
            partition: tp.partition,
            committed: Ok(c.map(|c| c.offset)),
            high_watermark: 0,
            records: vec![],
            invalid: vec![],
            read_error: None,
        };
        let upto = c.map_or(0, |c| c.offset);
        let mut pos = 0;
        while pos < upto {
            if ctx.clock.now_ms() >= deadline_ms {
                log.read_error = Some(format!("{READ_WINDOW_CLOSED} at offset {pos}"));
                break;
            }
            let fetch = group.fetch(&mut rng, &tp, CommittedOffset { offset: pos, leader_epoch: None });
            let resp = match bounded(ctx, deadline_ms, fetch).await {
                Err(_) => continue,
                Ok(Ok(r)) => r,
                Ok(Err(FetchError::OutOfRange)) => {
                    log.read_error = Some(format!("offset {pos} out of range"));
                    break;
                }
                Ok(Err(FetchError::NoLeader)) => {
                    sim::timer::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            log.high_watermark = resp.high_watermark;
            let records: Vec<_> = resp.records.into_iter().filter(|r| r.offset >= pos && r.offset < upto).collect();
            let Some(last) = records.last().map(|r| r.offset) else {
                if resp.high_watermark <= pos {
                    log.read_error =
                        Some(format!("the log ends at {} below the committed offset", resp.high_watermark));
                    break;
                }
                continue;
            };
            for r in &records {
                match decode_record(tp.partition, r) {
                    Decoded::Op(op) => log.records.push(LogEntry { offset: r.offset, doc: op.doc, op_id: op.op_id }),
                    Decoded::Invalid(_) => log.invalid.push(r.offset),
                }
            }
            pos = last + 1;
        }
        out.push(log);
    }
    out
}

/// Every stored operation of `doc`, with whether its bytes hash to its id.
async fn read_ops(router: &Router, doc: &str) -> Result<Vec<OpRow>, String> {
    let found = router.find(doc, CRDT_OPS, &ops_prefix(doc), ReadConcern::Majority).await.map_err(|e| e.to_string())?;
    let id = DocId::parse(doc).map_err(|e| e.to_string())?;
    Ok(found
        .into_iter()
        .map(|d| {
            let op = system::docs::store::StoredOp::from_json(d.doc.value());
            let op_id = op.as_ref().map_or_else(String::new, |o| o.op_id.clone());
            let hash_ok = op.is_some_and(|o| DocUpdate::new(id.clone(), o.update).op_id == o.op_id);
            OpRow { key: d.id, op_id, hash_ok }
        })
        .collect())
}

/// `doc`'s head version and its snapshots: the index's rows and, when `whole`, the stored
/// snapshots' rows with digests computed here from their state bytes.
pub async fn read_snapshots(router: &Router, doc: &str, whole: bool) -> Result<(u64, Vec<SnapRow>), String> {
    let store = DocStore::new(router.clone());
    let head = store.latest_version(doc).await.map_err(|e| e.to_string())?;
    let mut rows: Vec<SnapRow> = store
        .history(doc)
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|m| m.doc == doc)
        .map(|m| SnapRow { version: m.version, token: m.token, digest: m.digest, from_state: false })
        .collect();
    if whole {
        let found = router
            .find(doc, SNAPSHOTS, &snapshots_prefix(doc), ReadConcern::Majority)
            .await
            .map_err(|e| e.to_string())?;
        for d in found {
            let s = snapshot_from_json(d.doc.value()).ok_or_else(|| format!("snapshot {} is malformed", d.id))?;
            if s.doc == doc {
                rows.push(SnapRow { version: s.version, token: s.token, digest: digest(&s.state), from_state: true });
            }
        }
    }
    Ok((head, rows))
}

/// The snapshot watcher's settings.
#[derive(Clone, Debug)]
pub struct WatchConfig {
    pub mongo: RouterConfig,
    pub docs: Vec<String>,
    pub start_ms: u64,
    pub period_ms: u64,
}

/// The snapshot watcher's main (a client: it stops with the other users).
pub async fn watch(mut ctx: NodeCtx, cfg: WatchConfig) {
    super::users::sleep_until_ms(&ctx.clock, cfg.start_ms).await;
    let router = Router::new(ctx.fork(), cfg.mongo.clone());
    let mut round = 0usize;
    loop {
        let whole = round % cfg.docs.len().max(1);
        for (i, doc) in cfg.docs.iter().enumerate() {
            // Reads fail while MongoDB fails over: only answers are recorded.
            if let Ok(read) = read_snapshots(&router, doc, i == whole).await {
                ctx.observe(&SnapshotsSeen { doc: doc.clone(), final_read: false, read: Ok(read) });
            }
        }
        round += 1;
        let jitter = ctx.rng.gen_range(0..cfg.period_ms / 2 + 1);
        sim::timer::sleep(Duration::from_millis(cfg.period_ms + jitter)).await;
    }
}
