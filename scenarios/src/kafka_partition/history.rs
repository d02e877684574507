//! One cluster's run as the checkers see it, decoded from the observations: what producers were
//! acknowledged, when the controllers committed leader changes, and per consumer group what its
//! members were assigned, processed, committed and read back.

use std::collections::{BTreeMap, BTreeSet};

use sim::Observations;
use system::kafka::observations::{ConsumerEvent, ConsumerObserved, MetadataApplied, ProduceAcked};
use system::kafka::{Acks, Applied, BrokerId, KafkaCluster, TopicPartition};

/// A record a producer got acknowledged.
#[derive(Clone, Debug)]
pub struct Acked {
    pub value: String,
    pub tp: TopicPartition,
    pub offset: u64,
    pub t_ms: u64,
    pub acks: Acks,
    pub producer_id: u64,
    pub seq: u64,
}

/// A leader change the controllers committed (first seen at `t_ms`).
#[derive(Clone, Debug)]
pub struct LeaderChange {
    pub t_ms: u64,
    pub tp: TopicPartition,
    pub from: Option<BrokerId>,
    pub to: Option<BrokerId>,
    pub epoch: u64,
}

/// A record a consumer processed.
#[derive(Clone, Debug)]
pub struct Processed {
    pub consumer: String,
    pub tp: TopicPartition,
    pub offset: u64,
    pub value: String,
    pub t_ms: u64,
}

/// An acknowledged offset commit (the offset is the next one to consume).
#[derive(Clone, Debug)]
pub struct Commit {
    pub consumer: String,
    pub tp: TopicPartition,
    pub offset: u64,
    pub sent_ms: u64,
    pub acked_ms: u64,
}

/// A committed offset a consumer read back (OffsetFetch) when it got a partition.
#[derive(Clone, Debug)]
pub struct OffsetRead {
    pub consumer: String,
    pub tp: TopicPartition,
    pub offset: Option<u64>,
    pub sent_ms: u64,
}

/// A consumer's membership from `t_ms`: a generation and its partitions, or none (it left, or
/// is rejoining).
#[derive(Clone, Debug)]
pub struct Membership {
    pub consumer: String,
    pub t_ms: u64,
    pub generation: Option<u64>,
    pub partitions: Vec<TopicPartition>,
    /// It left the group on purpose (not a rebalance).
    pub left: bool,
}

/// What one consumer group's members observed.
#[derive(Debug, Default)]
pub struct GroupHistory {
    pub processed: Vec<Processed>,
    pub commits: Vec<Commit>,
    pub offset_reads: Vec<OffsetRead>,
    pub memberships: Vec<Membership>,
}

#[derive(Debug, Default)]
pub struct History {
    pub acked: Vec<Acked>,
    /// Acknowledged batches, and the requests they took.
    pub produce_batches: u64,
    pub produce_attempts: u64,
    pub duplicate_acks: u64,
    pub leader_changes: Vec<LeaderChange>,
    groups: BTreeMap<String, GroupHistory>,
    empty: GroupHistory,
}

impl History {
    /// Decodes the observations of `kafka`'s controllers and clients.
    pub fn read(o: &Observations, kafka: &KafkaCluster) -> History {
        let mut h = History::default();
        for seen in o.of::<ProduceAcked>().filter(|s| s.value.cluster == kafka.prefix()) {
            h.note_acked(seen.t_ms, seen.value);
        }
        let controllers = kafka.controllers();
        let mut seen_changes = BTreeSet::new();
        for seen in o.of::<MetadataApplied>().filter(|s| controllers.iter().any(|c| c == s.node)) {
            // Controllers re-apply the whole log when they restart: keep the first sighting.
            if seen_changes.insert((seen.value.offset, seen.value.n)) {
                h.note_metadata(seen.t_ms, seen.value.change);
            }
        }
        for seen in o.of::<ConsumerObserved>().filter(|s| s.value.cluster == kafka.prefix()) {
            let group = h.groups.entry(seen.value.group).or_default();
            group.note(seen.node, seen.t_ms, seen.value.event);
        }
        h
    }

    /// What the members of `group` observed (nothing, if none of them did).
    pub fn group(&self, group: &str) -> &GroupHistory {
        self.groups.get(group).unwrap_or(&self.empty)
    }

    fn note_acked(&mut self, t_ms: u64, a: ProduceAcked) {
        self.produce_batches += 1;
        self.produce_attempts += u64::from(a.attempts);
        self.duplicate_acks += u64::from(a.duplicate);
        for ((value, offset), seq) in a.values.into_iter().zip(a.base_offset..).zip(a.base_seq..) {
            let (tp, acks, producer_id) = (a.tp.clone(), a.acks, a.producer_id);
            self.acked.push(Acked { value, tp, offset, t_ms, acks, producer_id, seq });
        }
    }

    fn note_metadata(&mut self, t_ms: u64, change: Applied) {
        if let Applied::LeaderChanged { tp, from, to, leader_epoch, .. } = change {
            let epoch = leader_epoch;
            self.leader_changes.push(LeaderChange { t_ms, tp, from, to, epoch });
        }
    }

    /// The leader of `tp` as of `t_ms`, per the committed metadata.
    pub fn leader_at(&self, tp: &TopicPartition, t_ms: u64) -> Option<BrokerId> {
        self.leader_changes.iter().filter(|c| c.tp == *tp && c.t_ms <= t_ms).max_by_key(|c| c.epoch).and_then(|c| c.to)
    }
}

impl GroupHistory {
    fn note(&mut self, consumer: &str, t_ms: u64, event: ConsumerEvent) {
        let consumer = consumer.to_string();
        match event {
            ConsumerEvent::Assigned { generation, partitions } => {
                let generation = Some(generation);
                self.memberships.push(Membership { consumer, t_ms, generation, partitions, left: false });
            }
            ConsumerEvent::Revoked { left } => {
                let partitions = Vec::new();
                self.memberships.push(Membership { consumer, t_ms, generation: None, partitions, left });
            }
            ConsumerEvent::OffsetsRead { sent_ms, offsets } => {
                for (tp, offset) in offsets {
                    let consumer = consumer.clone();
                    self.offset_reads.push(OffsetRead { consumer, tp, offset, sent_ms });
                }
            }
            ConsumerEvent::Processed { tp, records } => {
                for (offset, value) in records {
                    let (consumer, tp) = (consumer.clone(), tp.clone());
                    self.processed.push(Processed { consumer, tp, offset, value, t_ms });
                }
            }
            ConsumerEvent::CommitAcked { sent_ms, offsets } => {
                for (tp, offset) in offsets {
                    let consumer = consumer.clone();
                    self.commits.push(Commit { consumer, tp, offset, sent_ms, acked_ms: t_ms });
                }
            }
        }
    }
}
