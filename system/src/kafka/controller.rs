//! The KRaft controller's decisions, sans-IO.
//!
//! Every controller applies the committed metadata log to its image; only the active controller
//! (the Raft leader, once it has applied its own term's first entry) decides. It tracks broker
//! sessions from heartbeats (`broker.session.timeout.ms`), registers restarted brokers, fences
//! brokers whose session expired, unfences brokers that caught up with the metadata log, creates
//! the configured topics, accepts leaders' `AlterPartition` requests and elects partition leaders
//! from the ISR (or, with `unclean.leader.election.enable`, from any live replica).
//!
//! Decisions are computed on a scratch copy of the image, one record at a time, and proposed as
//! one batch; one batch is in flight at a time, so the controller never races itself.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::config::ControllerSettings;
use super::metadata::{Applied, MetadataImage, MetadataRecord, PartitionState};
use super::topic::{BrokerId, TopicPartition};

/// `BrokerHeartbeatRequest` (registration rides on it: a heartbeat from an unregistered life of
/// a broker registers it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerHeartbeat {
    pub broker: BrokerId,
    pub node: String,
    pub incarnation: u64,
    /// The metadata offset the broker has applied.
    pub metadata_offset: u64,
}

/// `AlterPartitionRequest`: a leader asking to change its partition's ISR.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlterPartition {
    pub broker: BrokerId,
    pub incarnation: u64,
    pub tp: TopicPartition,
    pub leader_epoch: u64,
    pub partition_epoch: u64,
    pub isr: Vec<BrokerId>,
}

#[derive(Clone, Debug)]
struct Session {
    node: String,
    incarnation: u64,
    last_heartbeat_ms: u64,
    metadata_offset: u64,
}

pub struct ControllerCore {
    settings: ControllerSettings,
    image: MetadataImage,
    sessions: BTreeMap<BrokerId, Session>,
    alter_queue: BTreeMap<TopicPartition, AlterPartition>,
    active: bool,
    /// Token of the batch in flight, if any.
    inflight: Option<u64>,
    next_token: u64,
}

impl ControllerCore {
    pub fn new(settings: ControllerSettings) -> Self {
        ControllerCore {
            settings,
            image: MetadataImage::default(),
            sessions: BTreeMap::new(),
            alter_queue: BTreeMap::new(),
            active: false,
            inflight: None,
            next_token: 1,
        }
    }

    pub fn image(&self) -> &MetadataImage {
        &self.image
    }

    pub fn is_active(&self) -> bool {
        self.active
    }

    /// Applies a committed metadata log entry.
    pub fn apply(&mut self, index: u64, records: &[MetadataRecord]) -> Vec<Applied> {
        self.image.apply_entry(index, records)
    }

    /// Becomes the active controller: every registered broker gets a fresh session, as a new
    /// KRaft controller does, so a controller failover does not fence the whole cluster.
    pub fn activate(&mut self, now_ms: u64) {
        self.active = true;
        self.inflight = None;
        self.alter_queue.clear();
        self.sessions = self
            .image
            .brokers
            .iter()
            .map(|(id, r)| {
                let s = Session {
                    node: r.node.clone(),
                    incarnation: r.incarnation,
                    last_heartbeat_ms: now_ms,
                    metadata_offset: 0,
                };
                (*id, s)
            })
            .collect();
    }

    pub fn deactivate(&mut self) {
        self.active = false;
        self.inflight = None;
        self.alter_queue.clear();
    }

    /// Records a heartbeat; returns false for a heartbeat from an older life of the broker.
    pub fn heartbeat(&mut self, now_ms: u64, hb: &BrokerHeartbeat) -> bool {
        let registered = self.image.brokers.get(&hb.broker).map_or(0, |r| r.incarnation);
        let seen = self.sessions.get(&hb.broker).map_or(0, |s| s.incarnation);
        if hb.incarnation < registered.max(seen) {
            return false;
        }
        let s = Session {
            node: hb.node.clone(),
            incarnation: hb.incarnation,
            last_heartbeat_ms: now_ms,
            metadata_offset: hb.metadata_offset,
        };
        self.sessions.insert(hb.broker, s);
        true
    }

    /// Queues an AlterPartition after a first check against the current image.
    ///
    /// A request rejected as invalid (see [`ALTER_NOT_APPLIED`]) also drops a queued copy of it
    /// sent at the same partition epoch: the leader forgets the change on that answer, so no
    /// copy may commit it later.
    pub fn alter_partition(&mut self, req: AlterPartition) -> Result<(), String> {
        let p = self.image.partitions.get(&req.tp).ok_or("UNKNOWN_TOPIC_OR_PARTITION")?;
        if let Err(reason) = check_alter(&self.image, p, &req) {
            if reason == ALTER_NOT_APPLIED
                && self.alter_queue.get(&req.tp).is_some_and(|q| q.partition_epoch == req.partition_epoch)
            {
                self.alter_queue.remove(&req.tp);
            }
            return Err(reason);
        }
        self.alter_queue.insert(req.tp.clone(), req);
        Ok(())
    }

    /// The shell finished proposing batch `token` (committed or not).
    pub fn proposal_done(&mut self, token: u64) {
        if self.inflight == Some(token) {
            self.inflight = None;
        }
    }

    /// The next batch to propose, if the active controller has anything to decide.
    pub fn decide(&mut self, now_ms: u64) -> Option<(u64, Vec<MetadataRecord>)> {
        if !self.active || self.inflight.is_some() {
            return None;
        }
        let mut d = Decision { image: self.image.clone(), records: Vec::new() };
        self.register_and_fence(now_ms, &mut d);
        self.create_topics(&mut d);
        for req in std::mem::take(&mut self.alter_queue).into_values() {
            let Some(p) = d.image.partitions.get(&req.tp) else {
                continue;
            };
            if check_alter(&d.image, p, &req).is_ok() {
                let rec = MetadataRecord::PartitionChange {
                    tp: req.tp.clone(),
                    expected_partition_epoch: p.partition_epoch,
                    leader: p.leader,
                    isr: req.isr.clone(),
                };
                d.push(rec);
            }
        }
        d.reconcile_all();
        if d.records.is_empty() {
            return None;
        }
        let token = self.next_token;
        self.next_token += 1;
        self.inflight = Some(token);
        Some((token, d.records))
    }

    fn register_and_fence(&self, now_ms: u64, d: &mut Decision) {
        let timeout = self.settings.broker_session_timeout_ms;
        for (id, s) in &self.sessions {
            let reg = d.image.brokers.get(id).cloned();
            let alive = now_ms.saturating_sub(s.last_heartbeat_ms) <= timeout;
            match reg {
                Some(r) if r.incarnation == s.incarnation => {
                    if !r.fenced && !alive {
                        d.push(MetadataRecord::FenceBroker { broker: *id, incarnation: r.incarnation });
                    } else if r.fenced && alive && s.metadata_offset >= r.broker_epoch {
                        d.push(MetadataRecord::UnfenceBroker { broker: *id, incarnation: r.incarnation });
                    }
                }
                Some(r) if r.incarnation > s.incarnation => {}
                _ if alive => {
                    let rec = MetadataRecord::RegisterBroker {
                        broker: *id,
                        node: s.node.clone(),
                        incarnation: s.incarnation,
                    };
                    d.push(rec);
                }
                _ => {}
            }
        }
    }

    fn create_topics(&self, d: &mut Decision) {
        let brokers: Vec<BrokerId> = d.image.brokers.iter().filter(|(_, r)| !r.fenced).map(|(id, _)| *id).collect();
        for (i, spec) in self.settings.topics.iter().enumerate() {
            if d.image.topics.contains_key(&spec.name) || brokers.len() < spec.replication_factor {
                continue;
            }
            let n = brokers.len();
            let assignment = (0..spec.partitions as usize)
                .map(|p| (0..spec.replication_factor).map(|r| brokers[(p + r + i) % n]).collect())
                .collect();
            d.push(MetadataRecord::CreateTopic { spec: spec.clone(), assignment });
        }
    }
}

/// A batch being decided: records so far and the image they lead to.
struct Decision {
    image: MetadataImage,
    records: Vec<MetadataRecord>,
}

impl Decision {
    fn push(&mut self, record: MetadataRecord) {
        if self.image.apply(&record).is_some() {
            self.records.push(record);
        }
    }

    /// Takes ineligible brokers out of ISRs and elects leaders where needed.
    fn reconcile_all(&mut self) {
        let tps: Vec<TopicPartition> = self.image.partitions.keys().cloned().collect();
        for tp in tps {
            if let Some(rec) = reconcile(&self.image, &tp) {
                self.push(rec);
            }
        }
    }
}

/// The change a partition needs, if any: fenced or re-registered brokers leave the ISR (but
/// the last in-sync replica stays, so it can lead again when it returns), and a partition
/// whose leader is gone gets a new one.
pub fn reconcile(image: &MetadataImage, tp: &TopicPartition) -> Option<MetadataRecord> {
    let p = image.partitions.get(tp)?;
    let eligible_isr: Vec<BrokerId> = p.isr.iter().copied().filter(|b| image.is_eligible(*b)).collect();
    let leader_ok = p.leader.is_some_and(|l| image.is_eligible(l));
    if leader_ok && eligible_isr.len() == p.isr.len() {
        return None;
    }
    let isr = if eligible_isr.is_empty() { p.isr.clone() } else { eligible_isr };
    let (leader, isr) = if leader_ok { (p.leader, isr) } else { choose_leader(image, tp, p, isr) };
    if leader == p.leader && isr == p.isr {
        return None;
    }
    Some(MetadataRecord::PartitionChange { tp: tp.clone(), expected_partition_epoch: p.partition_epoch, leader, isr })
}

/// The first eligible in-sync replica in assignment order; failing that, and only with unclean
/// leader election, the first eligible replica at all (which becomes the whole ISR).
pub fn choose_leader(
    image: &MetadataImage,
    tp: &TopicPartition,
    p: &PartitionState,
    isr: Vec<BrokerId>,
) -> (Option<BrokerId>, Vec<BrokerId>) {
    if let Some(l) = p.replicas.iter().find(|r| isr.contains(r) && image.is_eligible(**r)) {
        return (Some(*l), isr);
    }
    let unclean = image.topic_of(tp).is_some_and(|s| s.unclean_leader_election);
    match p.replicas.iter().find(|r| image.is_eligible(**r)) {
        Some(l) if unclean => (Some(*l), vec![*l]),
        _ => (None, isr),
    }
}

/// The rejection that tells the leader its request was checked against the partition epoch it
/// was sent at and not applied (Kafka's `INVALID_REQUEST` / `INELIGIBLE_REPLICA`), so it may
/// forget it; every other rejection means the metadata moved on.
pub const ALTER_NOT_APPLIED: &str = "INVALID_REQUEST";

/// Kafka's AlterPartition validation: from the current leader and epochs, keeping the leader in
/// the ISR, adding only eligible replicas (KIP-841) from the broker's current life (KIP-903).
fn check_alter(image: &MetadataImage, p: &PartitionState, req: &AlterPartition) -> Result<(), String> {
    if p.leader != Some(req.broker) || p.leader_epoch != req.leader_epoch {
        return Err("FENCED_LEADER_EPOCH".into());
    }
    if p.partition_epoch != req.partition_epoch {
        return Err("INVALID_UPDATE_VERSION".into());
    }
    if image.brokers.get(&req.broker).is_none_or(|r| r.incarnation != req.incarnation) {
        return Err("STALE_BROKER_EPOCH".into());
    }
    let valid = req.isr.contains(&req.broker)
        && req.isr.iter().all(|b| p.replicas.contains(b))
        && req.isr.iter().all(|b| p.isr.contains(b) || image.is_eligible(*b));
    if !valid {
        return Err(ALTER_NOT_APPLIED.into());
    }
    Ok(())
}
