//! The consumer workload: a member of the group that joins, reads its partitions from their
//! committed offsets (`auto.offset.reset=earliest` when none), processes every record, commits
//! its positions every second (as `enable.auto.commit` does, scaled) and before it rejoins
//! (eager rebalancing's revocation), heartbeats, and once per run may leave and come back.
//! Each fetch (`consume`) and offset commit (`commit`) is an operation for the availability
//! report; joining, syncing and heartbeats are the group protocol's, not the user's.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use sim::NodeCtx;
use system::kafka::client::{FetchError, GroupError, GroupMember};
use system::kafka::observations::{ConsumerEvent, ConsumerObserved};
use system::kafka::protocol::CommittedOffset;
use system::kafka::{GroupSettings, KafkaCluster, TopicPartition};

use super::{COMMIT, CONSUME, GROUP, TOPIC};
use crate::availability::op_since;

/// `auto.commit.interval.ms`: 5000 in Kafka, 1000 here.
const COMMIT_INTERVAL_MS: u64 = 1_000;
/// Where a partition without a committed offset starts (`auto.offset.reset=earliest`).
const START: CommittedOffset = CommittedOffset { offset: 0, leader_epoch: None };

struct Member {
    ctx: NodeCtx,
    rng: ChaCha8Rng,
    group: GroupMember,
    /// The cluster's name, for the observations.
    cluster: String,
    /// Next offset to consume, with the leader epoch of the record before it (KIP-320).
    positions: BTreeMap<TopicPartition, CommittedOffset>,
    committed: BTreeMap<TopicPartition, CommittedOffset>,
    bounce_at: Option<u64>,
}

/// Why a generation ended for this member.
enum End {
    Rejoin,
    Bounced,
}

pub async fn run(mut ctx: NodeCtx, kafka: KafkaCluster, bounce_at: Option<u64>) {
    let client = kafka.client(&mut ctx);
    let client_id = ctx.name.clone();
    let group = GroupMember::new(
        client,
        GROUP,
        &client_id,
        vec![TOPIC.to_string()],
        GroupSettings::default().rebalance_timeout_ms,
    );
    let rng = ctx.rng.clone();
    // Only the first life bounces; a restarted consumer just rejoins.
    let bounce_at = bounce_at.filter(|_| ctx.incarnation == 1);
    let mut m = Member {
        ctx,
        rng,
        group,
        cluster: kafka.prefix().to_string(),
        positions: BTreeMap::new(),
        committed: BTreeMap::new(),
        bounce_at,
    };
    loop {
        let assignment = match m.group.join(&mut m.rng).await {
            Ok(a) => a,
            Err(_) => {
                m.pause(100, 300).await;
                continue;
            }
        };
        let generation = m.group.generation;
        m.observe(ConsumerEvent::Assigned { generation, partitions: assignment.clone() });
        m.ctx.sometimes("workload.rebalance");
        let end = match m.load_positions(assignment).await {
            Ok(()) => m.consume().await,
            Err(_) => End::Rejoin,
        };
        let left = matches!(end, End::Bounced);
        m.observe(ConsumerEvent::Revoked { left });
        if left {
            m.pause(1_000, 3_000).await;
        }
    }
}

impl Member {
    async fn pause(&mut self, lo: u64, hi: u64) {
        sim::timer::sleep(Duration::from_millis(self.rng.gen_range(lo..hi))).await;
    }

    fn now(&self) -> u64 {
        self.ctx.clock.now_ms()
    }

    fn observe(&self, event: ConsumerEvent) {
        self.ctx.observe(&ConsumerObserved { cluster: self.cluster.clone(), group: GROUP.to_string(), event });
    }

    /// Reads the group's committed offsets for the new assignment.
    async fn load_positions(&mut self, assignment: Vec<TopicPartition>) -> Result<(), GroupError> {
        self.positions.clear();
        self.committed.clear();
        loop {
            let sent_ms = self.now();
            match self.group.committed(&mut self.rng, assignment.clone()).await {
                Ok(offsets) => {
                    let read = offsets.iter().map(|(tp, c)| (tp.clone(), c.map(|c| c.offset))).collect();
                    self.observe(ConsumerEvent::OffsetsRead { sent_ms, offsets: read });
                    for (tp, committed) in offsets {
                        if committed.is_some_and(|c| c.offset > 0) {
                            self.ctx.sometimes("workload.resumed_from_commit");
                        }
                        let position = committed.unwrap_or(START);
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

    /// Heartbeats, fetches one partition per turn, commits; returns when the generation ends.
    async fn consume(&mut self) -> End {
        let interval = self.group.client.settings.heartbeat_interval_ms;
        let mut next_heartbeat = self.now() + interval;
        let mut next_commit = self.now() + COMMIT_INTERVAL_MS;
        let mut turn = 0usize;
        loop {
            if self.bounce_at.is_some_and(|b| self.now() >= b) {
                self.bounce_at = None;
                let _ = self.commit().await;
                self.group.leave(&mut self.rng).await;
                self.ctx.sometimes("workload.consumer_left");
                return End::Bounced;
            }
            if self.now() >= next_heartbeat {
                next_heartbeat = self.now() + interval;
                if let Err(e @ (GroupError::Rejoin | GroupError::UnknownMember)) =
                    self.group.heartbeat(&mut self.rng).await
                {
                    return self.revoke(e).await;
                }
            }
            let tps: Vec<TopicPartition> = self.positions.keys().cloned().collect();
            match tps.get(turn % tps.len().max(1)) {
                Some(tp) => self.fetch(tp).await,
                None => self.pause(150, 250).await,
            }
            turn += 1;
            if self.now() >= next_commit {
                next_commit = self.now() + COMMIT_INTERVAL_MS;
                if let Err(e @ (GroupError::Rejoin | GroupError::UnknownMember)) = self.commit().await {
                    return self.revoke(e).await;
                }
            }
        }
    }

    /// Eager rebalancing: commit what was processed (still allowed while the group prepares
    /// the next generation), then give up every partition.
    async fn revoke(&mut self, why: GroupError) -> End {
        if why == GroupError::Rejoin {
            let _ = self.commit().await;
        }
        End::Rejoin
    }

    async fn fetch(&mut self, tp: &TopicPartition) {
        let pos = self.positions.get(tp).copied().unwrap_or(START);
        let invoked_ms = self.now();
        let fetched = self.group.fetch(&mut self.rng, tp, pos).await;
        // Out of range is an answer (the consumer resets); no leader is not.
        op_since(&self.ctx, CONSUME, !matches!(fetched, Err(FetchError::NoLeader)), invoked_ms);
        match fetched {
            Ok(resp) => {
                let mut next = pos;
                let mut records = Vec::new();
                for r in resp.records.into_iter().filter(|r| r.offset >= pos.offset) {
                    next = CommittedOffset { offset: r.offset + 1, leader_epoch: Some(r.leader_epoch) };
                    records.push((r.offset, r.value));
                }
                if !records.is_empty() {
                    self.observe(ConsumerEvent::Processed { tp: tp.clone(), records });
                }
                self.positions.insert(tp.clone(), next);
            }
            Err(FetchError::OutOfRange) => {
                // auto.offset.reset=earliest
                self.ctx.sometimes("workload.offset_reset");
                self.ctx.trace("workload.offset_reset", json!({ "tp": tp.to_string(), "position": pos.offset }));
                self.positions.insert(tp.clone(), START);
            }
            Err(FetchError::NoLeader) => self.pause(50, 150).await,
        }
    }

    /// Commits every position that moved since the last commit (`commitSync`).
    async fn commit(&mut self) -> Result<(), GroupError> {
        let offsets: Vec<(TopicPartition, CommittedOffset)> = self
            .positions
            .iter()
            .filter(|(tp, o)| self.committed.get(*tp) != Some(o))
            .map(|(tp, o)| (tp.clone(), *o))
            .collect();
        if offsets.is_empty() {
            return Ok(());
        }
        let sent_ms = self.now();
        let committed = self.group.commit(&mut self.rng, offsets.clone()).await;
        op_since(&self.ctx, COMMIT, committed.is_ok(), sent_ms);
        committed?;
        let acked: Vec<(TopicPartition, u64)> = offsets.iter().map(|(tp, o)| (tp.clone(), o.offset)).collect();
        self.committed.extend(offsets);
        self.observe(ConsumerEvent::CommitAcked { sent_ms, offsets: acked });
        Ok(())
    }
}
