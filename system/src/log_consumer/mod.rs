//! The log consumers: a Kafka consumer group over [`TOPIC`] whose members persist every
//! document update into the MongoDB-like store, and compact documents into snapshots.
//!
//! ```text
//!  doc-updates (keyed by document) ──fetch──▶ consumer-i ──w:majority──▶ crdt_ops, version_vectors
//!                                    ◀─commit─┘     └─lock+fence──▶ snapshots (compaction)
//! ```
//!
//! What it models (the design's "Kafka Consumer Service: offset tracking for recovery after
//! restarts" and "Consumer group rebalancing"):
//! - A member joins the group (eager rebalancing, [`crate::kafka::client::GroupMember`]),
//!   resumes each assigned partition from the group's committed offset (`auto.offset.reset =
//!   earliest` when none), fetches, and persists each fetched batch: per document, its
//!   operations (inserted by operation id, so a redelivered record is stored once) and its
//!   advanced version vector, in one `w:majority` write ([`persist`]).
//! - Offsets are committed (`commitSync`, `enable.auto.commit = false`) only after every record
//!   before them is persisted or, if invalid, skipped and reported: a crash between the two
//!   redelivers records already stored, never skips one. A write that fails is retried (with
//!   heartbeats in between) until it is acknowledged or the member loses the partition.
//! - Compaction into immutable snapshots under a fenced lock ([`compaction`]).
//! - Health on 8081: up while the member holds a generation.
//!
//! Left out: cooperative rebalancing, pausing partitions, and a heartbeat thread (heartbeats
//! are sent between batches and between retries, so the router's operation timeout is capped
//! below the group's session timeout).

pub mod compaction;
pub mod observe;
pub mod persist;

use std::collections::BTreeMap;
use std::time::Duration;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use sim::NodeCtx;

pub use compaction::{CompactionSettings, Compactor};
use observe::{OffsetCommitted, OpPersisted, RecordSkipped, Stored};
use persist::{by_doc, decode_record, Decoded, Persister};

use crate::doc_update::TOPIC;
use crate::docs::store::{DocStore, StoredOp};
use crate::http::health::{self, HealthFlag};
use crate::kafka::client::{Client, FetchError, GroupError, GroupMember};
use crate::kafka::protocol::CommittedOffset;
use crate::kafka::{ClientSettings, GroupSettings, TopicPartition};
use crate::mongo::{Router, RouterConfig};

/// The consumer group's name.
pub const GROUP: &str = "doc-persisters";
/// The longest a router operation of a consumer may take: under the group's session timeout,
/// so a member retrying a write through a MongoDB failover still heartbeats in time.
const MAX_ROUTER_OP_MS: u64 = 3_000;
const START: CommittedOffset = CommittedOffset { offset: 0, leader_epoch: None };

/// What a log consumer needs; the stack builder fills it from the cluster handles.
#[derive(Clone, Debug)]
pub struct ConsumerConfig {
    /// Kafka brokers to bootstrap from.
    pub kafka_bootstrap: Vec<String>,
    pub kafka_client: ClientSettings,
    pub group: String,
    pub topic: String,
    /// `rebalance.timeout.ms` (the coordinator's [`GroupSettings`] default).
    pub rebalance_timeout_ms: u64,
    pub mongo: RouterConfig,
    pub compaction: CompactionSettings,
    /// UNSAFE modes, planted to prove the durable-path checkers can fail; `Safe` in every real
    /// run.
    pub unsafe_mode: UnsafeConsumer,
}

/// Planted faults of the durable path (each breaks one of its promises on purpose).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UnsafeConsumer {
    #[default]
    Safe,
    /// Commit a fetched batch's offset before persisting it (`enable.auto.commit` done wrong):
    /// a member that loses its partitions or dies in between skips records for good.
    CommitBeforePersist,
    /// Insert every delivery of an operation under a fresh id (an auto-generated `_id`)
    /// instead of its operation id: a redelivered record is stored twice.
    FreshOpIds,
    /// Compaction rewrites the latest snapshot in place (an upsert of the same version)
    /// instead of writing the next version.
    OverwriteSnapshot,
}

impl ConsumerConfig {
    pub fn new(kafka_bootstrap: Vec<String>, kafka_client: ClientSettings, mongo: RouterConfig) -> Self {
        ConsumerConfig {
            kafka_bootstrap,
            kafka_client,
            group: GROUP.into(),
            topic: TOPIC.into(),
            rebalance_timeout_ms: GroupSettings::default().rebalance_timeout_ms,
            mongo,
            compaction: CompactionSettings::default(),
            unsafe_mode: UnsafeConsumer::Safe,
        }
    }
}

/// A log consumer node's main.
pub async fn run(mut ctx: NodeCtx, config: ConsumerConfig) {
    let flag = HealthFlag::new();
    tokio::spawn(health::serve(ctx.net.clone(), flag.clone()));
    let mut mongo = config.mongo.clone();
    mongo.settings.op_timeout_ms = mongo.settings.op_timeout_ms.min(MAX_ROUTER_OP_MS);
    let store = DocStore::new(Router::new(ctx.fork(), mongo));
    let mut compaction = config.compaction.clone();
    compaction.unsafe_overwrite = config.unsafe_mode == UnsafeConsumer::OverwriteSnapshot;
    let compactor = Compactor::new(ctx.fork(), store.clone(), compaction);
    let mut persister = Persister::new(store);
    if config.unsafe_mode == UnsafeConsumer::FreshOpIds {
        persister = persister.with_fresh_ids(&format!("{}.{}", ctx.name, ctx.incarnation));
    }
    let commit_first = config.unsafe_mode == UnsafeConsumer::CommitBeforePersist;
    let client = Client::new(&mut ctx, config.kafka_bootstrap.clone(), config.kafka_client.clone());
    let group =
        GroupMember::new(client, &config.group, &ctx.name, vec![config.topic.clone()], config.rebalance_timeout_ms);
    let rng = ctx.rng.clone();
    let mut member = Member {
        ctx,
        rng,
        group,
        persister,
        compactor,
        commit_first,
        positions: BTreeMap::new(),
        committed: BTreeMap::new(),
        next_heartbeat_ms: 0,
    };
    loop {
        flag.set(false);
        let assignment = match member.group.join(&mut member.rng).await {
            Ok(a) => a,
            Err(_) => {
                member.pause(100, 300).await;
                continue;
            }
        };
        member.ctx.trace(
            "durable.assigned",
            json!({ "generation": member.group.generation, "partitions": assignment.iter().map(|tp| tp.partition).collect::<Vec<_>>() }),
        );
        flag.set(true);
        if member.load_positions(assignment).await.is_ok() {
            member.consume().await;
        }
        // Another member may write these documents now: reload them when they come back.
        member.persister.evict_all();
    }
}

struct Member {
    ctx: NodeCtx,
    rng: ChaCha8Rng,
    group: GroupMember,
    persister: Persister,
    compactor: Compactor,
    /// The next offset to read, with the epoch of the record before it (KIP-320).
    positions: BTreeMap<TopicPartition, CommittedOffset>,
    committed: BTreeMap<TopicPartition, CommittedOffset>,
    next_heartbeat_ms: u64,
    /// UNSAFE ([`UnsafeConsumer::CommitBeforePersist`]).
    commit_first: bool,
}

/// The generation ended: rejoin.
struct Rejoin;

impl Member {
    async fn pause(&mut self, lo: u64, hi: u64) {
        sim::timer::sleep(Duration::from_millis(self.rng.gen_range(lo..hi))).await;
    }

    fn now(&self) -> u64 {
        self.ctx.clock.now_ms()
    }

    async fn load_positions(&mut self, assignment: Vec<TopicPartition>) -> Result<(), GroupError> {
        self.positions.clear();
        self.committed.clear();
        loop {
            match self.group.committed(&mut self.rng, assignment.clone()).await {
                Ok(offsets) => {
                    for (tp, c) in offsets {
                        let position = c.unwrap_or(START);
                        self.committed.insert(tp.clone(), position);
                        self.positions.insert(tp, position);
                    }
                    return Ok(());
                }
                Err(GroupError::CoordinatorLost) => self.pause(100, 300).await,
                Err(e) => return Err(e),
            }
        }
    }

    /// Heartbeats when one is due; Err when the generation is over.
    async fn heartbeat(&mut self) -> Result<(), Rejoin> {
        if self.now() < self.next_heartbeat_ms {
            return Ok(());
        }
        self.next_heartbeat_ms = self.now() + self.group.client.settings.heartbeat_interval_ms;
        match self.group.heartbeat(&mut self.rng).await {
            Err(GroupError::Rejoin | GroupError::UnknownMember) => Err(Rejoin),
            _ => Ok(()),
        }
    }

    async fn consume(&mut self) {
        let mut turn = 0usize;
        loop {
            if self.heartbeat().await.is_err() {
                // Eager rebalancing: what is persisted may still be committed while the group
                // prepares the next generation (the new owner then rereads less).
                let _ = self.commit().await;
                return;
            }
            let tps: Vec<TopicPartition> = self.positions.keys().cloned().collect();
            let Some(tp) = tps.get(turn % tps.len().max(1)).cloned() else {
                self.pause(150, 250).await;
                continue;
            };
            turn += 1;
            if self.fetch_and_persist(&tp).await.is_err() {
                return;
            }
            if self.commit().await.is_err() {
                return;
            }
        }
    }

    async fn fetch_and_persist(&mut self, tp: &TopicPartition) -> Result<(), Rejoin> {
        let pos = self.positions.get(tp).copied().unwrap_or(START);
        let resp = match self.group.fetch(&mut self.rng, tp, pos).await {
            Ok(resp) => resp,
            Err(FetchError::OutOfRange) => {
                self.ctx.trace("durable.offset_reset", json!({ "tp": tp.to_string(), "position": pos.offset }));
                self.positions.insert(tp.clone(), START);
                return Ok(());
            }
            Err(FetchError::NoLeader) => {
                self.pause(50, 150).await;
                return Ok(());
            }
        };
        let records: Vec<_> = resp.records.into_iter().filter(|r| r.offset >= pos.offset).collect();
        let Some(last) = records.last() else { return Ok(()) };
        let next = CommittedOffset { offset: last.offset + 1, leader_epoch: Some(last.leader_epoch) };
        let mut ops = Vec::new();
        for r in &records {
            match decode_record(tp.partition, r) {
                Decoded::Op(op) => ops.push(op),
                Decoded::Invalid(reason) => {
                    self.ctx.observe(&RecordSkipped {
                        topic: tp.topic.clone(),
                        partition: tp.partition,
                        offset: r.offset,
                        reason,
                    });
                    self.ctx.sometimes("durable.record_skipped");
                }
            }
        }
        if self.commit_first {
            self.positions.insert(tp.clone(), next);
            self.commit().await?;
        }
        for (doc, group) in by_doc(ops) {
            self.persist_until_acked(tp, &doc, &group).await?;
        }
        // Every record before `next` is persisted or skipped: it may be committed now.
        self.positions.insert(tp.clone(), next);
        Ok(())
    }

    async fn persist_until_acked(&mut self, tp: &TopicPartition, doc: &str, ops: &[StoredOp]) -> Result<(), Rejoin> {
        loop {
            match self.persister.persist(doc, ops).await {
                Ok((written, _)) => {
                    let n = ops.len() as u32;
                    let stored = if written.inserted == n {
                        Stored::New
                    } else if written.duplicates == n {
                        self.ctx.sometimes("durable.duplicate_op");
                        Stored::Duplicate
                    } else {
                        Stored::Mixed
                    };
                    for op in ops {
                        self.ctx.observe(&OpPersisted {
                            doc: doc.into(),
                            op_id: op.op_id.clone(),
                            topic: tp.topic.clone(),
                            partition: tp.partition,
                            offset: op.offset,
                            stored,
                        });
                    }
                    if self.persister.take_compaction_due(doc, self.compactor.settings().threshold_ops) {
                        self.compactor.spawn(doc.to_string());
                    }
                    return Ok(());
                }
                Err(e) => {
                    self.ctx.trace("durable.persist_failed", json!({ "doc": doc, "error": e.to_string() }));
                    self.heartbeat().await?;
                    self.pause(100, 300).await;
                }
            }
        }
    }

    /// Commits every position that moved (`commitSync`).
    async fn commit(&mut self) -> Result<(), Rejoin> {
        let moved: Vec<(TopicPartition, CommittedOffset)> = self
            .positions
            .iter()
            // Forward only: a position reset to the log start (`auto.offset.reset`) rereads
            // records already persisted and committed; committing it would move the group back.
            .filter(|(tp, o)| self.committed.get(*tp).is_none_or(|c| o.offset > c.offset))
            .map(|(tp, o)| (tp.clone(), *o))
            .collect();
        if moved.is_empty() {
            return Ok(());
        }
        match self.group.commit(&mut self.rng, moved.clone()).await {
            Ok(()) => {
                for (tp, o) in moved {
                    self.ctx.observe(&OffsetCommitted {
                        group: self.group.group.clone(),
                        topic: tp.topic.clone(),
                        partition: tp.partition,
                        offset: o.offset,
                    });
                    self.committed.insert(tp, o);
                }
                Ok(())
            }
            Err(GroupError::Rejoin | GroupError::UnknownMember) => Err(Rejoin),
            // The coordinator moved: the positions stay uncommitted and go with the next commit.
            Err(_) => Ok(()),
        }
    }
}
