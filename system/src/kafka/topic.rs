//! Names shared by every part of the log: brokers, topic-partitions and records.

use std::fmt;

use serde::{Deserialize, Serialize};

/// `broker.id` / `node.id`.
pub type BrokerId = u32;

/// The internal topic that stores consumer groups' committed offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// The role the active controller of `cluster` claims (the KRaft quorum leader once it has
/// applied its term's first entry).
pub fn active_controller_role(cluster: &str) -> String {
    format!("{cluster}-active-controller")
}

/// The role the Raft leader of `cluster`'s controller quorum claims (it may not be active yet).
pub fn quorum_leader_role(cluster: &str) -> String {
    format!("{cluster}-kraft-leader")
}

/// One partition of one topic: the unit of ordering, replication and leadership. In JSON it is
/// the string `topic-partition`, so it can key maps; in binary encodings (the wire, postcard)
/// the pair itself, which costs no formatting and no parsing on every request.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: u32,
}

impl TopicPartition {
    pub fn new(topic: &str, partition: u32) -> Self {
        TopicPartition { topic: topic.into(), partition }
    }

    /// The partition's log file on a broker's disk (Kafka: `<topic>-<partition>/<base>.log`;
    /// the disk seam's names are flat, and there is one segment).
    pub fn log_file(&self) -> String {
        format!("{self}.log")
    }

    /// The role a broker of `cluster` claims while it leads this partition, so faults can
    /// target "the leader of edits-0" (`kafka-leader-edits-0` in the cluster named `kafka`).
    /// Namespaced by the cluster's name, so two clusters can share a world.
    pub fn leader_role(&self, cluster: &str) -> String {
        format!("{cluster}-leader-{self}")
    }

    pub fn is_internal(&self) -> bool {
        self.topic == OFFSETS_TOPIC
    }

    /// Parses `topic-partition`.
    pub fn parse(s: &str) -> Option<Self> {
        let (topic, partition) = s.rsplit_once('-')?;
        if topic.is_empty() {
            return None;
        }
        Some(TopicPartition::new(topic, partition.parse().ok()?))
    }
}

impl Serialize for TopicPartition {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            (&self.topic, self.partition).serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for TopicPartition {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            TopicPartition::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("not a topic-partition: {s:?}")))
        } else {
            let (topic, partition) = <(String, u32)>::deserialize(d)?;
            if topic.is_empty() {
                return Err(serde::de::Error::custom("a topic-partition with no topic"));
            }
            Ok(TopicPartition { topic, partition })
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// One record of a partition log. Each record carries its batch's `partitionLeaderEpoch` (the
/// epoch of the leader that appended it), so the leader-epoch cache can be rebuilt from the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub offset: u64,
    pub leader_epoch: u64,
    /// The idempotent producer's id; 0 for records without one (the coordinator's own).
    pub producer_id: u64,
    /// The record's sequence number within its producer id and partition.
    pub seq: u64,
    pub value: String,
    /// The last record of its produce batch. Kafka writes a batch as one checksummed frame, so
    /// a torn write drops it whole; here each record is its own frame, and recovery cuts a
    /// trailing batch that lost its end (see [`super::log::decode`]), so a retry of it finds
    /// none of it rather than a part (which it could only append again, twice).
    #[serde(default)]
    pub batch_end: bool,
}

/// The `__consumer_offsets` partition that stores `group` (Kafka: `abs(hash(group)) %
/// offsets.topic.num.partitions`; FNV here, for a hash that is stable everywhere).
pub fn offsets_partition_for(group: &str, partitions: u32) -> TopicPartition {
    let hash = crate::kafka::fnv(group.as_bytes());
    TopicPartition::new(OFFSETS_TOPIC, (hash % u64::from(partitions.max(1))) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_topic_partition_is_a_string_in_json_and_a_pair_in_binary_encodings() {
        let tp = TopicPartition::new("edits-v2", 3);
        assert_eq!(serde_json::to_string(&tp).unwrap(), "\"edits-v2-3\"");
        assert_eq!(serde_json::from_str::<TopicPartition>("\"edits-v2-3\"").unwrap(), tp);
        let bytes = postcard::to_stdvec(&tp).unwrap();
        assert_eq!(postcard::from_bytes::<TopicPartition>(&bytes).unwrap(), tp);
        assert_eq!(bytes, postcard::to_stdvec(&("edits-v2", 3u32)).unwrap());
        assert!(postcard::from_bytes::<TopicPartition>(&postcard::to_stdvec(&("", 3u32)).unwrap()).is_err());
        assert!(serde_json::from_str::<TopicPartition>("\"-3\"").is_err());
    }
}
