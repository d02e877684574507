//! The wire protocol: requests and responses as postcard frames (`crate::wire`), one request
//! at a time per connection: binary, as Kafka's own protocol is, so a record's value travels as
//! its bytes, never escaped into and parsed out of JSON text on every replication fetch. The
//! shapes follow Kafka's APIs (Produce, Fetch, Metadata, FindCoordinator, JoinGroup, SyncGroup,
//! Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch and, towards the controller,
//! BrokerHeartbeat and AlterPartition), trimmed to what the model uses.
//! Every request is untrusted: [`Request::validate`] bounds it before anything acts on it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::config::Acks;
use super::controller::{AlterPartition, BrokerHeartbeat};
use super::metadata::MetadataImage;
use super::topic::{BrokerId, Record, TopicPartition};

/// The port brokers listen on for clients and replicas (Kafka's default listener).
pub const BROKER_PORT: u16 = 9092;
/// The controllers' listener (`controller.listener.names`).
pub const CONTROLLER_PORT: u16 = 9093;
/// The controllers' Raft traffic.
pub const RAFT_PORT: u16 = 9094;

/// How every Kafka message, client, replica and controller, becomes a frame.
pub const ENCODING: crate::wire::Encoding = crate::wire::Encoding::Postcard;

/// Largest record value accepted (`message.max.bytes`, 1 MiB).
pub const MAX_VALUE_BYTES: usize = 1 << 20;
const MAX_VALUES_PER_PRODUCE: usize = 1_000;
const MAX_NAME_BYTES: usize = 256;
const MAX_LIST: usize = 10_000;

/// Kafka's error codes, by their names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[allow(clippy::enum_variant_names)]
pub enum ErrorCode {
    NotLeaderOrFollower,
    UnknownTopicOrPartition,
    NotEnoughReplicas,
    NotEnoughReplicasAfterAppend,
    RequestTimedOut,
    OutOfOrderSequenceNumber,
    FencedLeaderEpoch,
    UnknownLeaderEpoch,
    OffsetOutOfRange,
    NotCoordinator,
    CoordinatorLoadInProgress,
    CoordinatorNotAvailable,
    IllegalGeneration,
    UnknownMemberId,
    RebalanceInProgress,
    InvalidRequest,
    /// Not a Kafka error code: an `OffsetCommit` whose `commit_seq` is older than one the
    /// coordinator already accepted from the same member (see [`super::coordinator`]).
    StaleCommitSequence,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProduceRequest {
    pub tp: TopicPartition,
    pub acks: Acks,
    pub timeout_ms: u64,
    pub producer_id: u64,
    pub base_seq: u64,
    pub values: Vec<String>,
}

/// A follower's identity on its fetches (`ReplicaId`, `ReplicaEpoch`, `LastFetchedEpoch`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaFetch {
    pub broker: BrokerId,
    pub incarnation: u64,
    pub last_fetched_epoch: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchRequest {
    pub tp: TopicPartition,
    pub offset: u64,
    pub max_records: u32,
    pub max_wait_ms: u64,
    /// The leader epoch the fetcher believes current (KIP-320); `None` skips the check.
    pub current_leader_epoch: Option<u64>,
    /// Present on a follower's fetch; a consumer's fetch has none and sees only up to the
    /// high watermark.
    pub replica: Option<ReplicaFetch>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchResponse {
    pub leader_epoch: u64,
    pub high_watermark: u64,
    pub log_end_offset: u64,
    pub records: Vec<Record>,
    /// Set when the follower's log diverges from the leader's (KIP-595's `DivergingEpoch`).
    pub diverging: Option<Diverging>,
}

/// Where a follower's log stops matching the leader's: the largest epoch ≤ the follower's last
/// fetched epoch that the leader knows (`None`: none, Kafka's `UNDEFINED_EPOCH`) and the
/// offset where that epoch ends in the leader's log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diverging {
    pub epoch: Option<u64>,
    pub end_offset: u64,
}

/// A committed offset (Kafka's `OffsetAndMetadata`): the next offset to consume and the
/// leader epoch of the record before it (KIP-320), so a consumer that resumes there can tell
/// that its metadata is older than the data it already consumed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedOffset {
    pub offset: u64,
    pub leader_epoch: Option<u64>,
}

/// What clients learn from a Metadata request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMetadata {
    pub brokers: BTreeMap<BrokerId, String>,
    /// Leader and leader epoch of every partition.
    pub partitions: BTreeMap<TopicPartition, (Option<BrokerId>, u64)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    Metadata,
    Produce(ProduceRequest),
    Fetch(FetchRequest),
    FindCoordinator {
        group: String,
    },
    JoinGroup {
        group: String,
        member_id: Option<String>,
        client_id: String,
        topics: Vec<String>,
    },
    SyncGroup {
        group: String,
        generation: u64,
        member_id: String,
    },
    Heartbeat {
        group: String,
        generation: u64,
        member_id: String,
    },
    LeaveGroup {
        group: String,
        member_id: String,
    },
    OffsetCommit {
        group: String,
        generation: u64,
        member_id: String,
        /// Not in Kafka's OffsetCommit: the member's own count of the commits it sent, new for
        /// every request (a retry too), so the coordinator can drop one that arrives late.
        commit_seq: u64,
        offsets: Vec<(TopicPartition, CommittedOffset)>,
    },
    OffsetFetch {
        group: String,
        partitions: Vec<TopicPartition>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    Metadata(ClusterMetadata),
    Produced { base_offset: u64, duplicate: bool },
    Fetched(FetchResponse),
    Coordinator { broker: BrokerId, node: String },
    Joined { generation: u64, member_id: String, leader: String, members: Vec<String> },
    Synced { assignment: Vec<TopicPartition> },
    Done,
    Offsets(Vec<(TopicPartition, Option<CommittedOffset>)>),
    Error { code: ErrorCode, leader_hint: Option<BrokerId> },
}

impl Response {
    pub fn error(code: ErrorCode) -> Self {
        Response::Error { code, leader_hint: None }
    }
}

fn name_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_NAME_BYTES
}

impl Request {
    /// Bounds an untrusted request; anything out of bounds is `INVALID_REQUEST`.
    pub fn validate(&self) -> Result<(), ErrorCode> {
        let ok = match self {
            Request::Metadata => true,
            Request::Produce(p) => {
                !p.values.is_empty()
                    && p.values.len() <= MAX_VALUES_PER_PRODUCE
                    && p.values.iter().all(|v| v.len() <= MAX_VALUE_BYTES)
                    && name_ok(&p.tp.topic)
                    && p.base_seq.checked_add(p.values.len() as u64).is_some()
            }
            Request::Fetch(f) => name_ok(&f.tp.topic) && f.max_records > 0,
            Request::FindCoordinator { group } => name_ok(group),
            Request::JoinGroup { group, member_id, client_id, topics } => {
                name_ok(group)
                    && member_id.as_deref().is_none_or(name_ok)
                    && name_ok(client_id)
                    && topics.len() <= 16
                    && topics.iter().all(|t| name_ok(t))
            }
            Request::SyncGroup { group, member_id, .. }
            | Request::Heartbeat { group, member_id, .. }
            | Request::LeaveGroup { group, member_id } => name_ok(group) && name_ok(member_id),
            Request::OffsetCommit { group, member_id, offsets, .. } => {
                name_ok(group) && name_ok(member_id) && offsets.len() <= MAX_LIST
            }
            Request::OffsetFetch { group, partitions } => name_ok(group) && partitions.len() <= MAX_LIST,
        };
        if ok {
            Ok(())
        } else {
            Err(ErrorCode::InvalidRequest)
        }
    }
}

/// Requests to the controller quorum.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControllerRequest {
    Heartbeat(BrokerHeartbeat),
    AlterPartition(AlterPartition),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControllerResponse {
    /// The heartbeat was recorded; here is the metadata image (brokers fetch the metadata
    /// log in KRaft; this model ships the image, which is small).
    Heartbeat {
        image: MetadataImage,
    },
    AlterQueued,
    AlterRejected {
        reason: String,
    },
    NotController {
        leader: Option<String>,
    },
    StaleIncarnation,
}
