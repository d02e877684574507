//! What a Kafka cluster and its clients tell checkers, as typed observations
//! ([`sim::Observation`], recorded with `ctx.observe`).
//!
//! Controllers report every metadata change they apply ([`MetadataApplied`]); clients report
//! what they were told: acknowledged batches ([`ProduceAcked`]) and a group member's
//! assignments, reads of committed offsets, processed records and acknowledged commits
//! ([`ConsumerObserved`]). Each client observation names its cluster (the spec's prefix) so a
//! checker of one cluster ignores another's in a shared world.
//!
//! These are claims: what a client was acknowledged is checked against what survives on the
//! brokers' disks ([`super::cluster::KafkaCluster::final_logs`]), never taken as evidence.

use serde::{Deserialize, Serialize};
use sim::Observation;

use super::client::Delivery;
use super::config::Acks;
use super::metadata::Applied;
use super::topic::TopicPartition;

/// A metadata change one controller applied. Every controller applies every committed record,
/// and again from the start after a restart, so the same change is seen several times: it is
/// the `n`-th change of the metadata log entry at `offset`, and its first sighting is when the
/// cluster learned of it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MetadataApplied {
    pub offset: u64,
    pub n: u32,
    pub change: Applied,
}

impl Observation for MetadataApplied {
    const KIND: &'static str = "kafka.metadata";
}

/// A producer got a batch acknowledged: `values` are at `base_offset`.. of `tp`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProduceAcked {
    pub cluster: String,
    pub tp: TopicPartition,
    pub acks: Acks,
    pub base_offset: u64,
    pub values: Vec<String>,
    pub producer_id: u64,
    pub base_seq: u64,
    /// Requests it took (retries included).
    pub attempts: u32,
    /// The broker recognised a retry of a batch it already had.
    pub duplicate: bool,
    /// Producer ids abandoned on the way (sequence gaps).
    pub resets: u32,
}

impl Observation for ProduceAcked {
    const KIND: &'static str = "kafka.produce_acked";
}

impl ProduceAcked {
    /// What a producer of `cluster` was told when `values` were delivered to `tp`.
    pub fn delivered(cluster: &str, tp: &TopicPartition, acks: Acks, values: Vec<String>, d: &Delivery) -> Self {
        ProduceAcked {
            cluster: cluster.to_string(),
            tp: tp.clone(),
            acks,
            base_offset: d.base_offset,
            values,
            producer_id: d.producer_id,
            base_seq: d.base_seq,
            attempts: d.attempts,
            duplicate: d.duplicate,
            resets: d.resets,
        }
    }
}

/// What a consumer group member did or was told.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConsumerObserved {
    pub cluster: String,
    pub group: String,
    pub event: ConsumerEvent,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ConsumerEvent {
    /// Joined `generation` with these partitions: a rebalance ended for this member.
    Assigned { generation: u64, partitions: Vec<TopicPartition> },
    /// Gave up every partition: the generation ended, or the member `left` the group on purpose.
    Revoked { left: bool },
    /// Read the group's committed offsets (OffsetFetch sent at `sent_ms`); `None`: no commit.
    OffsetsRead { sent_ms: u64, offsets: Vec<(TopicPartition, Option<u64>)> },
    /// Processed these records of `tp`: (offset, value).
    Processed { tp: TopicPartition, records: Vec<(u64, String)> },
    /// An offset commit sent at `sent_ms` was acknowledged; each offset is the next to consume.
    CommitAcked { sent_ms: u64, offsets: Vec<(TopicPartition, u64)> },
}

impl Observation for ConsumerObserved {
    const KIND: &'static str = "kafka.consumer";
}
