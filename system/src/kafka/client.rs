//! Kafka clients over the net seam: cluster metadata, an idempotent producer for one partition,
//! and a consumer group member. They behave like the Java clients where it matters to the
//! checks: a producer retries a batch with the same producer id and sequence until it is
//! acknowledged (`delivery.timeout.ms` unbounded), metadata with an older leader epoch than one
//! already seen is ignored (KIP-320), and a member that loses its generation rejoins.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::Rng;
use sim::NodeCtx;

use super::config::{Acks, ClientSettings};
use super::protocol::{
    CommittedOffset, ErrorCode, FetchRequest, FetchResponse, ProduceRequest, Request, Response, BROKER_PORT, ENCODING,
};
use super::topic::{BrokerId, TopicPartition};
use crate::rpc::{Channel, ChannelOptions};

/// A client's connections and view of the cluster.
pub struct Client {
    /// One cached connection per broker.
    channel: Channel,
    bootstrap: Vec<String>,
    pub settings: ClientSettings,
    brokers: BTreeMap<BrokerId, String>,
    leaders: BTreeMap<TopicPartition, (Option<BrokerId>, u64)>,
}

impl Client {
    /// A client of this node (its reconnect jitter is forked from the node's rng).
    pub fn new(ctx: &mut NodeCtx, bootstrap: Vec<String>, settings: ClientSettings) -> Self {
        Client {
            channel: Channel::new(ctx, ChannelOptions::new(BROKER_PORT, ENCODING)),
            bootstrap,
            settings,
            brokers: BTreeMap::new(),
            leaders: BTreeMap::new(),
        }
    }

    fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.settings.request_timeout_ms)
    }

    /// Sleeps `retry.backoff.ms` (the future holds no reference to the client, which is not
    /// `Sync` on every engine).
    pub fn backoff(&self) -> sim::timer::Sleep {
        sim::timer::sleep(Duration::from_millis(self.settings.retry_backoff_ms))
    }

    /// One request to `node`; `None` when it could not be sent or answered in time (the
    /// connection is then dropped, as a client drops a connection after a request timeout).
    pub async fn call(&self, node: &str, req: &Request, timeout: Duration) -> Option<Response> {
        self.channel.call(node, req, timeout).await.ok()
    }

    /// Asks a random bootstrap broker for metadata and keeps, per partition, the newest leader
    /// epoch seen. Returns whether a broker answered.
    pub async fn refresh_metadata(&mut self, rng: &mut impl Rng) -> bool {
        let Some(node) = self.bootstrap.get(rng.gen_range(0..self.bootstrap.len().max(1))).cloned() else {
            return false;
        };
        let timeout = self.request_timeout();
        let Some(Response::Metadata(m)) = self.call(&node, &Request::Metadata, timeout).await else {
            return false;
        };
        self.brokers.extend(m.brokers);
        for (tp, (leader, epoch)) in m.partitions {
            let known = self.leaders.get(&tp).copied();
            let newer = known.is_none_or(|(l, e)| epoch > e || (epoch == e && l.is_none()));
            if newer {
                self.leaders.insert(tp, (leader, epoch));
            }
        }
        true
    }

    /// The partition's leader broker, its node, and the leader epoch.
    pub fn leader(&self, tp: &TopicPartition) -> Option<(BrokerId, String, u64)> {
        let (leader, epoch) = self.leaders.get(tp)?;
        let leader = (*leader)?;
        Some((leader, self.brokers.get(&leader)?.clone(), *epoch))
    }

    /// Forgets the leader (not the epoch) after an error, so the next refresh may replace it.
    pub fn forget_leader(&mut self, tp: &TopicPartition) {
        if let Some((l, _)) = self.leaders.get_mut(tp) {
            *l = None;
        }
    }

    /// A random bootstrap broker.
    pub fn any_broker(&self, rng: &mut impl Rng) -> Option<String> {
        self.bootstrap.get(rng.gen_range(0..self.bootstrap.len().max(1))).cloned()
    }
}

/// What one acknowledged batch cost and where it landed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub base_offset: u64,
    pub producer_id: u64,
    pub base_seq: u64,
    pub attempts: u32,
    /// The broker recognised a retry of a batch it already had.
    pub duplicate: bool,
    pub leader: BrokerId,
    /// Producer ids abandoned because the broker reported a sequence gap.
    pub resets: u32,
}

/// A producer session for one partition. With `enable.idempotence` (the default) every batch
/// carries the session's producer id and the sequence number of its first record, so the
/// leader appends it once and only right after its predecessor; without, batches go out with
/// producer id 0 and the leader appends whatever arrives.
///
/// Up to `max.in.flight.requests.per.connection` batches are outstanding at once
/// ([`PartitionProducer::send_window`]). Kafka sends them in order on one connection; the
/// model's channel pools connections, so they may reach the leader in any order — harsher
/// than Kafka, where reordering needs a retry. Idempotence holds either way: a batch whose
/// predecessor has not arrived is refused with `OUT_OF_ORDER_SEQUENCE_NUMBER` and sent again
/// after it, as the Java client does for the batches behind a failed one.
pub struct PartitionProducer {
    pub client: Client,
    pub tp: TopicPartition,
    pub acks: Acks,
    producer_id: u64,
    next_seq: u64,
}

/// One batch of a window on its way.
struct Outgoing {
    values: Vec<String>,
    base_seq: u64,
    attempts: u32,
    resets: u32,
    delivered: Option<Delivery>,
}

impl PartitionProducer {
    pub fn new(client: Client, tp: TopicPartition, acks: Acks, producer_id: u64) -> Self {
        PartitionProducer { client, tp, acks, producer_id, next_seq: 0 }
    }

    fn idempotent(&self) -> bool {
        self.client.settings.enable_idempotence
    }

    /// Sends `values` as one batch and retries it until acknowledged (a window of one).
    pub async fn send(
        &mut self,
        rng: &mut impl Rng,
        values: Vec<String>,
        new_producer_id: impl FnMut() -> u64,
    ) -> Delivery {
        self.send_window(rng, vec![values], new_producer_id).await.pop().expect("one batch, one delivery")
    }

    /// Sends `batches` (at most `max.in.flight.requests.per.connection` of them), all at once,
    /// and retries each until acknowledged; returns their deliveries in order. A batch refused
    /// with `OUT_OF_ORDER_SEQUENCE_NUMBER` while an earlier one of the window is unacknowledged
    /// waits for it; refused when every earlier batch is acknowledged, the partition lost
    /// records this producer had written, and the session starts over from `new_producer_id`
    /// (as the Java client resets), renumbering the batches still unacknowledged.
    pub async fn send_window(
        &mut self,
        rng: &mut impl Rng,
        batches: Vec<Vec<String>>,
        mut new_producer_id: impl FnMut() -> u64,
    ) -> Vec<Delivery> {
        assert!(batches.len() <= self.client.settings.max_in_flight_requests.max(1), "window too large");
        let mut out: Vec<Outgoing> = Vec::new();
        for values in batches {
            let base_seq = self.next_seq;
            self.next_seq += values.len() as u64;
            out.push(Outgoing { values, base_seq, attempts: 0, resets: 0, delivered: None });
        }
        let timeout = self.client.settings.request_timeout_ms;
        while out.iter().any(|o| o.delivered.is_none()) {
            let Some((leader, node, _)) = self.client.leader(&self.tp) else {
                self.client.refresh_metadata(rng).await;
                self.client.backoff().await;
                continue;
            };
            let producer_id = if self.idempotent() { self.producer_id } else { 0 };
            let waiting: Vec<usize> = (0..out.len()).filter(|i| out[*i].delivered.is_none()).collect();
            let requests: Vec<Request> = waiting
                .iter()
                .map(|i| {
                    Request::Produce(ProduceRequest {
                        tp: self.tp.clone(),
                        acks: self.acks,
                        timeout_ms: timeout,
                        producer_id,
                        base_seq: out[*i].base_seq,
                        values: out[*i].values.clone(),
                    })
                })
                .collect();
            let client = &self.client;
            let calls = requests.iter().map(|req| client.call(&node, req, Duration::from_millis(timeout + 500)));
            let answers = futures_util::future::join_all(calls).await;
            let (mut lost_records, mut leader_moved, mut backoff) = (false, false, false);
            let first = waiting[0];
            for (i, resp) in waiting.into_iter().zip(answers) {
                // Sent along with an earlier batch, it may have arrived first.
                let earlier_unacked = i != first;
                let o = &mut out[i];
                o.attempts += 1;
                match resp {
                    Some(Response::Produced { base_offset, duplicate }) => {
                        o.delivered = Some(Delivery {
                            base_offset,
                            producer_id,
                            base_seq: o.base_seq,
                            attempts: o.attempts,
                            duplicate,
                            leader,
                            resets: o.resets,
                        });
                    }
                    Some(Response::Error { code: ErrorCode::OutOfOrderSequenceNumber, .. }) if earlier_unacked => {}
                    Some(Response::Error { code: ErrorCode::OutOfOrderSequenceNumber, .. }) => lost_records = true,
                    Some(Response::Error {
                        code:
                            ErrorCode::NotEnoughReplicas
                            | ErrorCode::NotEnoughReplicasAfterAppend
                            | ErrorCode::RequestTimedOut,
                        ..
                    }) => backoff = true,
                    _ => leader_moved = true,
                }
            }
            if lost_records {
                self.producer_id = new_producer_id();
                let mut seq = 0;
                for o in out.iter_mut().filter(|o| o.delivered.is_none()) {
                    o.base_seq = seq;
                    o.resets += 1;
                    seq += o.values.len() as u64;
                }
                self.next_seq = seq;
            }
            if leader_moved {
                self.client.forget_leader(&self.tp);
                self.client.refresh_metadata(rng).await;
            }
            if leader_moved || backoff {
                self.client.backoff().await;
            }
        }
        out.into_iter().map(|o| o.delivered.expect("every batch delivered")).collect()
    }
}

/// Why a group call failed, and so what the member must do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupError {
    /// The coordinator moved or is unreachable: find it again.
    CoordinatorLost,
    /// The generation is over (`REBALANCE_IN_PROGRESS`, `ILLEGAL_GENERATION`): rejoin.
    Rejoin,
    /// The coordinator no longer knows this member: rejoin as a new one.
    UnknownMember,
    Other(ErrorCode),
}

/// Why a consumer fetch returned nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchError {
    /// No leader known or reachable right now.
    NoLeader,
    /// The offset is not in the leader's log (`OFFSET_OUT_OF_RANGE`).
    OutOfRange,
}

/// A member of a consumer group (the classic protocol, eager rebalancing).
pub struct GroupMember {
    pub client: Client,
    pub group: String,
    pub client_id: String,
    pub topics: Vec<String>,
    pub member_id: Option<String>,
    pub generation: u64,
    coordinator: Option<String>,
    /// `rebalance.timeout.ms`: how long a JoinGroup may wait at the coordinator.
    rebalance_timeout_ms: u64,
    /// The last `commit_seq` sent: every OffsetCommit, a retry too, takes the next one, so a
    /// late copy of an abandoned request is older than whatever superseded it (see
    /// [`super::coordinator`]).
    commit_seq: u64,
}

impl GroupMember {
    pub fn new(client: Client, group: &str, client_id: &str, topics: Vec<String>, rebalance_timeout_ms: u64) -> Self {
        GroupMember {
            client,
            group: group.into(),
            client_id: client_id.into(),
            topics,
            member_id: None,
            generation: 0,
            coordinator: None,
            rebalance_timeout_ms,
            commit_seq: 0,
        }
    }

    /// Sends a group request to the coordinator, finding it first if needed.
    async fn group_call(
        &mut self,
        rng: &mut impl Rng,
        req: Request,
        timeout: Duration,
    ) -> Result<Response, GroupError> {
        if self.coordinator.is_none() {
            let node = self.client.any_broker(rng).ok_or(GroupError::CoordinatorLost)?;
            let find = Request::FindCoordinator { group: self.group.clone() };
            let t = Duration::from_millis(self.client.settings.request_timeout_ms);
            match self.client.call(&node, &find, t).await {
                Some(Response::Coordinator { node, .. }) => self.coordinator = Some(node),
                _ => return Err(GroupError::CoordinatorLost),
            }
        }
        let node = self.coordinator.clone().ok_or(GroupError::CoordinatorLost)?;
        match self.client.call(&node, &req, timeout).await {
            Some(Response::Error { code, .. }) => Err(self.classify(code)),
            Some(resp) => Ok(resp),
            None => {
                self.coordinator = None;
                Err(GroupError::CoordinatorLost)
            }
        }
    }

    fn classify(&mut self, code: ErrorCode) -> GroupError {
        match code {
            ErrorCode::NotCoordinator | ErrorCode::CoordinatorNotAvailable | ErrorCode::RequestTimedOut => {
                self.coordinator = None;
                GroupError::CoordinatorLost
            }
            ErrorCode::CoordinatorLoadInProgress => GroupError::CoordinatorLost,
            ErrorCode::UnknownMemberId => {
                self.member_id = None;
                GroupError::UnknownMember
            }
            ErrorCode::IllegalGeneration | ErrorCode::RebalanceInProgress => GroupError::Rejoin,
            other => GroupError::Other(other),
        }
    }

    fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.client.settings.request_timeout_ms)
    }

    /// JoinGroup then SyncGroup: the member's partitions in the new generation.
    pub async fn join(&mut self, rng: &mut impl Rng) -> Result<Vec<TopicPartition>, GroupError> {
        let join = Request::JoinGroup {
            group: self.group.clone(),
            member_id: self.member_id.clone(),
            client_id: self.client_id.clone(),
            topics: self.topics.clone(),
        };
        let timeout = Duration::from_millis(self.rebalance_timeout_ms + self.client.settings.request_timeout_ms);
        let Response::Joined { generation, member_id, .. } = self.group_call(rng, join, timeout).await? else {
            return Err(GroupError::Other(ErrorCode::InvalidRequest));
        };
        self.generation = generation;
        self.member_id = Some(member_id.clone());
        let sync = Request::SyncGroup { group: self.group.clone(), generation, member_id };
        let t = self.request_timeout();
        match self.group_call(rng, sync, t).await? {
            Response::Synced { assignment } => Ok(assignment),
            _ => Err(GroupError::Other(ErrorCode::InvalidRequest)),
        }
    }

    fn member(&self) -> String {
        self.member_id.clone().unwrap_or_default()
    }

    pub async fn heartbeat(&mut self, rng: &mut impl Rng) -> Result<(), GroupError> {
        let req =
            Request::Heartbeat { group: self.group.clone(), generation: self.generation, member_id: self.member() };
        let t = self.request_timeout();
        self.group_call(rng, req, t).await.map(|_| ())
    }

    /// OffsetCommit (synchronous, as `commitSync`).
    pub async fn commit(
        &mut self,
        rng: &mut impl Rng,
        offsets: Vec<(TopicPartition, CommittedOffset)>,
    ) -> Result<(), GroupError> {
        self.commit_seq += 1;
        let req = Request::OffsetCommit {
            group: self.group.clone(),
            generation: self.generation,
            member_id: self.member(),
            commit_seq: self.commit_seq,
            offsets,
        };
        let t = self.request_timeout();
        self.group_call(rng, req, t).await.map(|_| ())
    }

    /// OffsetFetch: the group's committed offsets.
    pub async fn committed(
        &mut self,
        rng: &mut impl Rng,
        partitions: Vec<TopicPartition>,
    ) -> Result<Vec<(TopicPartition, Option<CommittedOffset>)>, GroupError> {
        let req = Request::OffsetFetch { group: self.group.clone(), partitions };
        let t = self.request_timeout();
        match self.group_call(rng, req, t).await? {
            Response::Offsets(o) => Ok(o),
            _ => Err(GroupError::Other(ErrorCode::InvalidRequest)),
        }
    }

    /// LeaveGroup: a clean exit, so the group rebalances at once instead of after the session.
    pub async fn leave(&mut self, rng: &mut impl Rng) {
        let req = Request::LeaveGroup { group: self.group.clone(), member_id: self.member() };
        let t = self.request_timeout();
        let _ = self.group_call(rng, req, t).await;
        self.member_id = None;
    }

    /// Fetches records of `tp` from `position` at its leader (up to the high watermark). When
    /// the position's leader epoch is newer than the cached metadata's, the metadata is stale
    /// (it may name a deposed leader whose log is shorter): refresh it first (KIP-320).
    pub async fn fetch(
        &mut self,
        rng: &mut impl Rng,
        tp: &TopicPartition,
        position: CommittedOffset,
    ) -> Result<FetchResponse, FetchError> {
        let known = self.client.leader(tp).filter(|(_, _, e)| position.leader_epoch.is_none_or(|p| *e >= p));
        let Some((_, node, epoch)) = known else {
            self.client.refresh_metadata(rng).await;
            return Err(FetchError::NoLeader);
        };
        let offset = position.offset;
        let wait = self.client.settings.fetch_max_wait_ms;
        let req = Request::Fetch(FetchRequest {
            tp: tp.clone(),
            offset,
            max_records: 500,
            max_wait_ms: wait,
            current_leader_epoch: Some(epoch),
            replica: None,
        });
        let t = Duration::from_millis(wait + self.client.settings.request_timeout_ms);
        match self.client.call(&node, &req, t).await {
            Some(Response::Fetched(resp)) => Ok(resp),
            Some(Response::Error { code: ErrorCode::OffsetOutOfRange, .. }) => Err(FetchError::OutOfRange),
            _ => {
                self.client.forget_leader(tp);
                self.client.refresh_metadata(rng).await;
                Err(FetchError::NoLeader)
            }
        }
    }
}
