//! What the workload and the controllers leave behind for the checkers.

use std::collections::BTreeSet;

use system::kafka::{Acks, Applied, BrokerId, TopicPartition};

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

/// A leader change the controller committed (first seen at `t_ms`).
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

/// A consumer's membership: a generation and its partitions, or none (left or rejoining).
#[derive(Clone, Debug)]
pub struct Membership {
    pub consumer: String,
    pub t_ms: u64,
    pub generation: Option<u64>,
    pub partitions: Vec<TopicPartition>,
}

#[derive(Debug, Default)]
pub struct History {
    pub acked: Vec<Acked>,
    pub produce_attempts: u64,
    pub duplicate_acks: u64,
    pub producer_resets: u64,
    pub leader_changes: Vec<LeaderChange>,
    seen_epochs: BTreeSet<(TopicPartition, u64)>,
    pub processed: Vec<Processed>,
    pub commits: Vec<Commit>,
    pub offset_reads: Vec<OffsetRead>,
    pub memberships: Vec<Membership>,
}

impl History {
    /// Called by every controller for every record it applies; keeps the first sighting of
    /// each leader epoch (controllers re-apply the whole log when they restart).
    pub fn note_metadata(&mut self, t_ms: u64, applied: &Applied) {
        if let Applied::LeaderChanged {
            tp,
            from,
            to,
            leader_epoch,
            ..
        } = applied
        {
            if self.seen_epochs.insert((tp.clone(), *leader_epoch)) {
                let change = LeaderChange {
                    t_ms,
                    tp: tp.clone(),
                    from: *from,
                    to: *to,
                    epoch: *leader_epoch,
                };
                self.leader_changes.push(change);
            }
        }
    }

    /// The leader of `tp` as of `t_ms`, per the committed metadata.
    pub fn leader_at(&self, tp: &TopicPartition, t_ms: u64) -> Option<BrokerId> {
        self.leader_changes
            .iter()
            .filter(|c| c.tp == *tp && c.t_ms <= t_ms)
            .max_by_key(|c| c.epoch)
            .and_then(|c| c.to)
    }
}
