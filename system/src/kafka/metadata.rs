//! The cluster metadata: what KRaft's `__cluster_metadata` log holds, as records and the image
//! they build.
//!
//! Records are deliberately dumb: the active controller decides (see `controller.rs`) and writes
//! the outcome; applying a record only checks that it still applies. A partition change names
//! the partition epoch it was computed against and is skipped when the partition moved on, so a
//! late record from a deposed controller can never undo a newer decision.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::config::TopicSpec;
use super::topic::{BrokerId, TopicPartition};

/// A broker as registered with the controller.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRegistration {
    /// Where clients and replicas reach it (the node name; Kafka's advertised listener).
    pub node: String,
    /// Which life of the broker registered (Kafka's incarnation id and broker epoch): a broker
    /// that restarts registers again, which fences it and takes it out of every ISR until it
    /// has caught up again (KIP-903: a restarted broker may have lost unflushed records).
    pub incarnation: u64,
    /// A fenced broker is not eligible for leadership or ISR membership.
    pub fenced: bool,
    /// The metadata offset of the registration (KRaft's broker epoch): the broker is unfenced
    /// once it has caught up with the metadata log to here.
    pub broker_epoch: u64,
}

/// One partition's replication state (Kafka's `PartitionRecord` / `PartitionChangeRecord`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    /// The assigned replicas, preferred leader first.
    pub replicas: Vec<BrokerId>,
    pub leader: Option<BrokerId>,
    /// Bumped on every leader change; fences requests and log entries of older leaders.
    pub leader_epoch: u64,
    /// Bumped on every change (Kafka's `partitionEpoch`); AlterPartition names it.
    pub partition_epoch: u64,
    pub isr: Vec<BrokerId>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetadataRecord {
    /// Registers a new life of a broker, fenced.
    RegisterBroker {
        broker: BrokerId,
        node: String,
        incarnation: u64,
    },
    FenceBroker {
        broker: BrokerId,
        incarnation: u64,
    },
    UnfenceBroker {
        broker: BrokerId,
        incarnation: u64,
    },
    /// A topic with its config and replica assignment; its partitions start leaderless with
    /// every replica in sync (nothing has been written yet).
    CreateTopic {
        spec: TopicSpec,
        assignment: Vec<Vec<BrokerId>>,
    },
    PartitionChange {
        tp: TopicPartition,
        expected_partition_epoch: u64,
        leader: Option<BrokerId>,
        isr: Vec<BrokerId>,
    },
}

/// What applying a record changed, for observations and traces.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Applied {
    LeaderChanged {
        tp: TopicPartition,
        from: Option<BrokerId>,
        to: Option<BrokerId>,
        leader_epoch: u64,
        isr: Vec<BrokerId>,
        /// The new leader was not in the ISR: an unclean election.
        unclean: bool,
    },
    IsrChanged {
        tp: TopicPartition,
        from: Vec<BrokerId>,
        to: Vec<BrokerId>,
    },
    BrokerFenced(BrokerId),
    BrokerUnfenced(BrokerId),
    BrokerRegistered(BrokerId),
    TopicCreated(String),
}

/// The metadata image: the fold of every committed record.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataImage {
    /// Index of the last metadata log entry applied; brokers ignore older images.
    pub offset: u64,
    pub brokers: BTreeMap<BrokerId, BrokerRegistration>,
    pub topics: BTreeMap<String, TopicSpec>,
    pub partitions: BTreeMap<TopicPartition, PartitionState>,
}

impl MetadataImage {
    /// Applies one committed metadata log entry (a batch of records, applied atomically).
    pub fn apply_entry(&mut self, index: u64, records: &[MetadataRecord]) -> Vec<Applied> {
        self.offset = index;
        records.iter().filter_map(|r| self.apply(r)).collect()
    }

    pub fn apply(&mut self, record: &MetadataRecord) -> Option<Applied> {
        match record {
            MetadataRecord::RegisterBroker { broker, node, incarnation } => {
                let reg = BrokerRegistration {
                    node: node.clone(),
                    incarnation: *incarnation,
                    fenced: true,
                    broker_epoch: self.offset,
                };
                self.brokers.insert(*broker, reg);
                Some(Applied::BrokerRegistered(*broker))
            }
            MetadataRecord::FenceBroker { broker, incarnation } => {
                let reg = self.brokers.get_mut(broker).filter(|r| r.incarnation == *incarnation && !r.fenced)?;
                reg.fenced = true;
                Some(Applied::BrokerFenced(*broker))
            }
            MetadataRecord::UnfenceBroker { broker, incarnation } => {
                let reg = self.brokers.get_mut(broker).filter(|r| r.incarnation == *incarnation && r.fenced)?;
                reg.fenced = false;
                Some(Applied::BrokerUnfenced(*broker))
            }
            MetadataRecord::CreateTopic { spec, assignment } => self.create_topic(spec, assignment),
            MetadataRecord::PartitionChange { tp, expected_partition_epoch, leader, isr } => {
                self.change_partition(tp, *expected_partition_epoch, *leader, isr)
            }
        }
    }

    fn create_topic(&mut self, spec: &TopicSpec, assignment: &[Vec<BrokerId>]) -> Option<Applied> {
        if self.topics.contains_key(&spec.name) || assignment.len() != spec.partitions as usize {
            return None;
        }
        self.topics.insert(spec.name.clone(), spec.clone());
        for (p, replicas) in assignment.iter().enumerate() {
            let state = PartitionState {
                replicas: replicas.clone(),
                leader: None,
                leader_epoch: 0,
                partition_epoch: 0,
                isr: replicas.clone(),
            };
            self.partitions.insert(TopicPartition::new(&spec.name, p as u32), state);
        }
        Some(Applied::TopicCreated(spec.name.clone()))
    }

    fn change_partition(
        &mut self,
        tp: &TopicPartition,
        expected: u64,
        leader: Option<BrokerId>,
        isr: &[BrokerId],
    ) -> Option<Applied> {
        let p = self.partitions.get_mut(tp).filter(|p| p.partition_epoch == expected)?;
        p.partition_epoch += 1;
        let from_isr = std::mem::replace(&mut p.isr, isr.to_vec());
        if p.leader != leader {
            let from = std::mem::replace(&mut p.leader, leader);
            p.leader_epoch += 1;
            let unclean = leader.is_some_and(|l| !from_isr.contains(&l));
            let leader_epoch = p.leader_epoch;
            return Some(Applied::LeaderChanged {
                tp: tp.clone(),
                from,
                to: leader,
                leader_epoch,
                isr: isr.to_vec(),
                unclean,
            });
        }
        Some(Applied::IsrChanged { tp: tp.clone(), from: from_isr, to: isr.to_vec() })
    }

    /// Registered in its current life and not fenced: may lead and be in sync.
    pub fn is_eligible(&self, broker: BrokerId) -> bool {
        self.brokers.get(&broker).is_some_and(|r| !r.fenced)
    }

    pub fn node_of(&self, broker: BrokerId) -> Option<&str> {
        self.brokers.get(&broker).map(|r| r.node.as_str())
    }

    pub fn topic_of(&self, tp: &TopicPartition) -> Option<&TopicSpec> {
        self.topics.get(&tp.topic)
    }

    /// Partition counts by topic, for assignors.
    pub fn partition_counts(&self) -> BTreeMap<String, u32> {
        self.topics.iter().map(|(n, s)| (n.clone(), s.partitions)).collect()
    }
}
