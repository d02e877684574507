//! A broker, sans-IO: its partition replicas, the requests it serves, the produce requests
//! waiting for the high watermark (Kafka's produce purgatory), the fetches waiting for data
//! (fetch purgatory), and the group coordinator for the offsets partitions it leads.
//!
//! The shell (`broker_node.rs`) feeds [`Input`]s and carries out [`Action`]s: replies, file
//! operations, AlterPartition requests to the controller, replication fetchers, traces.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use super::config::{Acks, BrokerSettings};
use super::controller::{AlterPartition, ALTER_NOT_APPLIED};
use super::coordinator::{CoordOut, Coordinator, GroupRecord, ReqId};
use super::log::{LogIo, PartitionLog};
use super::metadata::MetadataImage;
use super::partition::{IsrRequest, Replica, Served, Transition};
use super::protocol::{ClusterMetadata, ErrorCode, FetchRequest, ProduceRequest, Request, Response};
use super::topic::{offsets_partition_for, BrokerId, TopicPartition, OFFSETS_TOPIC};

#[derive(Clone, Debug)]
pub enum Input {
    Request {
        id: ReqId,
        req: Request,
    },
    /// A metadata image from the controller.
    Image(MetadataImage),
    /// A replication fetcher asks what to fetch next for `tp`.
    NextFetch {
        id: ReqId,
        tp: TopicPartition,
    },
    /// The leader's answer to a replication fetch (`None`: no answer).
    Fetched {
        req: FetchRequest,
        resp: Option<Response>,
    },
    /// The controller rejected this broker's AlterPartition, for `reason`.
    AlterRejected {
        req: AlterPartition,
        reason: String,
    },
    Tick,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Reply {
        id: ReqId,
        resp: Response,
    },
    /// The answer to `NextFetch`: the leader's node and the request, or stop fetching.
    FetchPlan {
        id: ReqId,
        plan: Option<(String, FetchRequest)>,
    },
    Disk(LogIo),
    /// New content for the high-watermark checkpoint file.
    Checkpoint(Vec<u8>),
    AlterPartition(AlterPartition),
    StartFetcher(TopicPartition),
    Trace(&'static str, serde_json::Value),
    Sometimes(&'static str),
    SetRole(String, bool),
}

/// The high-watermark checkpoint file (Kafka's `replication-offset-checkpoint`).
pub const CHECKPOINT_FILE: &str = "replication-offset-checkpoint";

/// A request answered once the high watermark passes `required` (produce with `acks=all`, or
/// a coordinator write).
#[derive(Clone, Debug)]
struct PendingAck {
    id: ReqId,
    tp: TopicPartition,
    required: u64,
    deadline_ms: u64,
    min_isr: usize,
    on_commit: Response,
}

#[derive(Clone, Debug)]
struct ParkedFetch {
    id: ReqId,
    req: FetchRequest,
    deadline_ms: u64,
}

pub struct BrokerCore {
    settings: BrokerSettings,
    me: BrokerId,
    incarnation: u64,
    now_ms: u64,
    image: MetadataImage,
    registered: bool,
    replicas: BTreeMap<TopicPartition, Replica>,
    pending: Vec<PendingAck>,
    parked: Vec<ParkedFetch>,
    coordinator: Coordinator,
    /// Per offsets partition led here: how far its committed records were folded into the
    /// coordinator.
    folded: BTreeMap<TopicPartition, u64>,
    fetchers: BTreeSet<TopicPartition>,
    last_checkpoint_ms: u64,
    actions: Vec<Action>,
}

/// Coordinator writes wait at most this long for the high watermark.
const COORDINATOR_WRITE_TIMEOUT_MS: u64 = 5_000;
/// A parked fetch never waits longer than this, whatever it asked for.
const MAX_FETCH_WAIT_MS: u64 = 10_000;

impl BrokerCore {
    /// A broker in its `incarnation`-th life, with the partition logs and high watermarks it
    /// recovered from disk.
    pub fn new(
        settings: BrokerSettings,
        incarnation: u64,
        logs: Vec<(TopicPartition, PartitionLog)>,
        checkpoint: &BTreeMap<String, u64>,
    ) -> Self {
        let me = settings.broker_id;
        let replicas = logs
            .into_iter()
            .map(|(tp, log)| {
                let hw = checkpoint.get(&tp.to_string()).copied().unwrap_or(0);
                (tp.clone(), Replica::new(tp, me, log, hw))
            })
            .collect();
        let coordinator = Coordinator::new(settings.group.clone(), format!("b{me}.{incarnation}"));
        BrokerCore {
            settings,
            me,
            incarnation,
            now_ms: 0,
            image: MetadataImage::default(),
            registered: false,
            replicas,
            pending: Vec::new(),
            parked: Vec::new(),
            coordinator,
            folded: BTreeMap::new(),
            fetchers: BTreeSet::new(),
            last_checkpoint_ms: 0,
            actions: Vec::new(),
        }
    }

    pub fn step(&mut self, now_ms: u64, input: Input) -> Vec<Action> {
        self.now_ms = now_ms;
        match input {
            Input::Request { id, req } => self.handle_request(id, req),
            Input::Image(image) => self.apply_image(image),
            Input::NextFetch { id, tp } => self.plan_fetch(id, &tp),
            Input::Fetched { req, resp } => self.fetched(&req, resp),
            Input::AlterRejected { req, reason } => self.alter_rejected(&req, &reason),
            Input::Tick => self.tick(),
        }
        for r in self.replicas.values_mut() {
            self.actions.extend(r.log.take_io().into_iter().map(Action::Disk));
        }
        std::mem::take(&mut self.actions)
    }

    pub fn metadata_offset(&self) -> u64 {
        self.image.offset
    }

    pub fn replica(&self, tp: &TopicPartition) -> Option<&Replica> {
        self.replicas.get(tp)
    }

    fn reply(&mut self, id: ReqId, resp: Response) {
        self.actions.push(Action::Reply { id, resp });
    }

    fn not_leader(&mut self, id: ReqId, tp: &TopicPartition) {
        let leader_hint = self.image.partitions.get(tp).and_then(|p| p.leader);
        self.reply(id, Response::Error { code: ErrorCode::NotLeaderOrFollower, leader_hint });
    }

    fn handle_request(&mut self, id: ReqId, req: Request) {
        if let Err(code) = req.validate() {
            self.reply(id, Response::error(code));
            return;
        }
        match req {
            Request::Metadata => {
                let resp = Response::Metadata(self.cluster_metadata());
                self.reply(id, resp);
            }
            Request::Produce(p) => self.produce(id, p),
            Request::Fetch(f) => self.fetch(id, f),
            Request::FindCoordinator { group } => self.find_coordinator(id, &group),
            group_request => self.group_request(id, group_request),
        }
    }

    fn cluster_metadata(&self) -> ClusterMetadata {
        ClusterMetadata {
            brokers: self.image.brokers.iter().map(|(id, r)| (*id, r.node.clone())).collect(),
            partitions: self.image.partitions.iter().map(|(tp, p)| (tp.clone(), (p.leader, p.leader_epoch))).collect(),
        }
    }

    fn produce(&mut self, id: ReqId, mut req: ProduceRequest) {
        if !self.settings.dedup_retries {
            // The planted fault: every batch is appended as if it came from a producer without
            // idempotence.
            req.producer_id = 0;
        }
        if req.tp.is_internal() {
            self.reply(id, Response::error(ErrorCode::InvalidRequest));
            return;
        }
        let min_isr = match req.acks {
            Acks::All => self.image.topic_of(&req.tp).map_or(1, |t| t.min_insync_replicas),
            Acks::Leader => 0,
        };
        let Some(r) = self.replicas.get_mut(&req.tp).filter(|r| r.is_leader()) else {
            self.not_leader(id, &req.tp);
            return;
        };
        match r.append_produce(&req, min_isr) {
            Err(code) => {
                let probe = match code {
                    ErrorCode::NotEnoughReplicas => "kafka.not_enough_replicas",
                    ErrorCode::OutOfOrderSequenceNumber => "kafka.out_of_order_sequence",
                    _ => "kafka.produce_rejected",
                };
                self.actions.push(Action::Sometimes(probe));
                self.reply(id, Response::error(code));
            }
            Ok(a) => {
                if a.duplicate {
                    self.actions.push(Action::Sometimes("kafka.duplicate_produce"));
                    let fields = json!({ "tp": req.tp.to_string(), "producer_id": req.producer_id, "base_seq": req.base_seq, "offset": a.base_offset });
                    self.actions.push(Action::Trace("kafka.duplicate_produce", fields));
                }
                let on_commit = Response::Produced { base_offset: a.base_offset, duplicate: a.duplicate };
                match req.acks {
                    Acks::Leader => self.reply(id, on_commit),
                    Acks::All => self.pending.push(PendingAck {
                        id,
                        tp: req.tp.clone(),
                        required: a.last_offset + 1,
                        deadline_ms: self.now_ms + req.timeout_ms,
                        min_isr,
                        on_commit,
                    }),
                }
                self.progress(&req.tp);
            }
        }
    }

    fn fetch(&mut self, id: ReqId, req: FetchRequest) {
        let now = self.now_ms;
        let Some(r) = self.replicas.get_mut(&req.tp) else {
            self.not_leader(id, &req.tp);
            return;
        };
        let (served, moved) = r.serve_fetch(now, &req, true, true);
        let tp = req.tp.clone();
        match served {
            Served::Ready(resp) => self.reply(id, Response::Fetched(resp)),
            Served::Park => {
                let deadline_ms = now + req.max_wait_ms.min(MAX_FETCH_WAIT_MS);
                self.parked.push(ParkedFetch { id, req, deadline_ms });
            }
            Served::Error(ErrorCode::NotLeaderOrFollower) => self.not_leader(id, &tp),
            Served::Error(code) => self.reply(id, Response::error(code)),
        }
        if moved {
            self.progress(&tp);
        }
    }

    fn find_coordinator(&mut self, id: ReqId, group: &str) {
        let partitions = self.image.topics.get(OFFSETS_TOPIC).map_or(1, |t| t.partitions);
        let tp = offsets_partition_for(group, partitions);
        let leader = self.image.partitions.get(&tp).and_then(|p| p.leader);
        let resp = match leader.and_then(|l| self.image.node_of(l).map(|n| (l, n.to_string()))) {
            Some((broker, node)) => Response::Coordinator { broker, node },
            None => Response::error(ErrorCode::CoordinatorNotAvailable),
        };
        self.reply(id, resp);
    }

    fn group_of(req: &Request) -> &str {
        match req {
            Request::JoinGroup { group, .. }
            | Request::SyncGroup { group, .. }
            | Request::Heartbeat { group, .. }
            | Request::LeaveGroup { group, .. }
            | Request::OffsetCommit { group, .. }
            | Request::OffsetFetch { group, .. }
            | Request::FindCoordinator { group } => group,
            Request::Metadata | Request::Produce(_) | Request::Fetch(_) => "",
        }
    }

    fn offsets_tp(&self, group: &str) -> TopicPartition {
        let partitions = self.image.topics.get(OFFSETS_TOPIC).map_or(1, |t| t.partitions);
        offsets_partition_for(group, partitions)
    }

    fn group_request(&mut self, id: ReqId, req: Request) {
        let tp = self.offsets_tp(Self::group_of(&req));
        if !self.replicas.get(&tp).is_some_and(Replica::is_leader) {
            self.reply(id, Response::error(ErrorCode::NotCoordinator));
            return;
        }
        let counts = self.image.partition_counts();
        self.coordinator.handle(self.now_ms, id, req, &counts);
        self.run_coordinator();
    }

    fn run_coordinator(&mut self) {
        for out in self.coordinator.take_out() {
            match out {
                CoordOut::Reply(id, resp) => self.reply(id, resp),
                CoordOut::LateCommitFenced { group, member_id, commit_seq, last_seq } => {
                    self.actions.push(Action::Sometimes("kafka.late_commit_fenced"));
                    let fields =
                        json!({ "group": group, "member": member_id, "commit_seq": commit_seq, "last_seq": last_seq });
                    self.actions.push(Action::Trace("kafka.late_commit_fenced", fields));
                }
                CoordOut::Append { records, on_commit, on_fail } => {
                    self.append_group_records(records, on_commit, on_fail)
                }
            }
        }
    }

    /// Writes coordinator records to the offsets partition with `acks=all` semantics.
    fn append_group_records(
        &mut self,
        records: Vec<GroupRecord>,
        on_commit: Vec<(ReqId, Response)>,
        on_fail: Vec<ReqId>,
    ) {
        let group = match records.first() {
            Some(GroupRecord::Offset { group, .. } | GroupRecord::Group { group, .. }) => group.clone(),
            None => return,
        };
        let tp = self.offsets_tp(&group);
        let min_isr = self.image.topic_of(&tp).map_or(1, |t| t.min_insync_replicas);
        let values = records.iter().map(|r| serde_json::to_string(r).expect("group records serialize")).collect();
        let req =
            ProduceRequest { tp: tp.clone(), acks: Acks::All, timeout_ms: 0, producer_id: 0, base_seq: 0, values };
        let appended = self.replicas.get_mut(&tp).map(|r| r.append_produce(&req, min_isr));
        match appended {
            Some(Ok(a)) => {
                let deadline_ms = self.now_ms + COORDINATOR_WRITE_TIMEOUT_MS;
                for (id, on_commit) in on_commit {
                    let tp = tp.clone();
                    self.pending.push(PendingAck {
                        id,
                        tp,
                        required: a.last_offset + 1,
                        deadline_ms,
                        min_isr,
                        on_commit,
                    });
                }
                self.progress(&tp);
            }
            Some(Err(ErrorCode::NotLeaderOrFollower)) | None => {
                on_fail.into_iter().for_each(|id| self.reply(id, Response::error(ErrorCode::NotCoordinator)));
            }
            Some(Err(_)) => {
                on_fail.into_iter().for_each(|id| self.reply(id, Response::error(ErrorCode::CoordinatorNotAvailable)));
            }
        }
    }

    /// Something changed for `tp` (records, high watermark, role): fold committed group
    /// records, answer the requests that were waiting for it.
    fn progress(&mut self, tp: &TopicPartition) {
        if tp.is_internal() {
            self.fold_offsets(tp);
        }
        self.complete_acks(Some(tp));
        self.reserve_parked(Some(tp));
    }

    fn fold_offsets(&mut self, tp: &TopicPartition) {
        let Some(r) = self.replicas.get(tp).filter(|r| r.is_leader()) else {
            return;
        };
        let hw = r.high_watermark();
        let from = self.folded.get(tp).copied().unwrap_or(0);
        if hw > from {
            let records = r.log.read(from, hw, usize::MAX).to_vec();
            self.coordinator.apply_committed(&records);
            self.folded.insert(tp.clone(), hw);
        }
        if self.coordinator.maybe_finish_loading(self.now_ms, hw) {
            self.actions.push(Action::Sometimes("kafka.coordinator_loaded"));
            self.actions.push(Action::Trace("kafka.coordinator_loaded", json!({ "tp": tp.to_string(), "hw": hw })));
        }
    }

    /// Answers the waiting produce and coordinator writes of `tp` (all partitions if `None`)
    /// that are committed, timed out or orphaned by a lost leadership.
    fn complete_acks(&mut self, tp: Option<&TopicPartition>) {
        let now = self.now_ms;
        let mut keep = Vec::new();
        for p in std::mem::take(&mut self.pending) {
            if tp.is_some_and(|t| *t != p.tp) {
                keep.push(p);
                continue;
            }
            let internal = p.tp.is_internal();
            let resp = match self.replicas.get(&p.tp).filter(|r| r.is_leader()) {
                None if internal => Some(Response::error(ErrorCode::NotCoordinator)),
                None => {
                    let leader_hint = self.image.partitions.get(&p.tp).and_then(|s| s.leader);
                    Some(Response::Error { code: ErrorCode::NotLeaderOrFollower, leader_hint })
                }
                Some(r) if r.high_watermark() >= p.required => Some(if r.isr().len() >= p.min_isr {
                    p.on_commit.clone()
                } else if internal {
                    Response::error(ErrorCode::CoordinatorNotAvailable)
                } else {
                    self.actions.push(Action::Sometimes("kafka.not_enough_replicas_after_append"));
                    Response::error(ErrorCode::NotEnoughReplicasAfterAppend)
                }),
                Some(_) if now >= p.deadline_ms => Some(Response::error(ErrorCode::RequestTimedOut)),
                Some(_) => None,
            };
            match resp {
                Some(resp) => self.reply(p.id, resp),
                None => keep.push(p),
            }
        }
        self.pending = keep;
    }

    /// Serves parked fetches of `tp` (all if `None`) that now have data or ran out of time.
    fn reserve_parked(&mut self, tp: Option<&TopicPartition>) {
        let now = self.now_ms;
        let mut keep = Vec::new();
        for f in std::mem::take(&mut self.parked) {
            if tp.is_some_and(|t| *t != f.req.tp) {
                keep.push(f);
                continue;
            }
            let served = match self.replicas.get_mut(&f.req.tp) {
                Some(r) => r.serve_fetch(now, &f.req, false, now < f.deadline_ms).0,
                None => Served::Error(ErrorCode::NotLeaderOrFollower),
            };
            match served {
                Served::Park => keep.push(f),
                Served::Ready(resp) => self.reply(f.id, Response::Fetched(resp)),
                Served::Error(ErrorCode::NotLeaderOrFollower) => self.not_leader(f.id, &f.req.tp),
                Served::Error(code) => self.reply(f.id, Response::error(code)),
            }
        }
        self.parked.append(&mut keep);
    }

    fn apply_image(&mut self, image: MetadataImage) {
        if image.offset < self.image.offset {
            return;
        }
        self.image = image;
        self.registered = self.image.brokers.get(&self.me).is_some_and(|r| r.incarnation == self.incarnation);
        if !self.registered {
            return;
        }
        let mine: Vec<_> = self
            .image
            .partitions
            .iter()
            .filter(|(_, p)| p.replicas.contains(&self.me))
            .map(|(tp, p)| (tp.clone(), p.clone()))
            .collect();
        for (tp, state) in mine {
            let me = self.me;
            let r = self
                .replicas
                .entry(tp.clone())
                .or_insert_with(|| Replica::new(tp.clone(), me, PartitionLog::empty(&tp.log_file()), 0));
            let transition = r.apply_state(self.now_ms, &state);
            self.on_transition(&tp, transition);
        }
    }

    fn on_transition(&mut self, tp: &TopicPartition, t: Transition) {
        let Some(r) = self.replicas.get(tp) else { return };
        let fields = json!({ "tp": tp.to_string(), "epoch": r.leader_epoch(), "isr": r.isr(), "leo": r.log.end_offset(), "hw": r.high_watermark() });
        match t {
            Transition::BecameLeader => {
                let leo = r.log.end_offset();
                self.actions.push(Action::SetRole(tp.leader_role(&self.settings.cluster), true));
                self.actions.push(Action::Trace("kafka.become_leader", fields));
                self.fail_pending(tp);
                if tp.is_internal() {
                    self.coordinator.start_loading(leo);
                    self.folded.insert(tp.clone(), 0);
                }
            }
            Transition::BecameFollower { was_leader } => {
                if was_leader {
                    self.actions.push(Action::SetRole(tp.leader_role(&self.settings.cluster), false));
                    self.actions.push(Action::Trace("kafka.become_follower", fields));
                    if tp.is_internal() {
                        self.coordinator.resign();
                        self.folded.remove(tp);
                    }
                }
                self.ensure_fetcher(tp);
            }
            Transition::IsrChanged => {}
            Transition::Unchanged => self.ensure_fetcher(tp),
        }
        self.progress(tp);
    }

    /// Requests acknowledged by an earlier leadership of `tp` are not answered by this one.
    fn fail_pending(&mut self, tp: &TopicPartition) {
        let (failed, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending).into_iter().partition(|p| p.tp == *tp);
        self.pending = keep;
        for p in failed {
            self.reply(p.id, Response::error(ErrorCode::NotLeaderOrFollower));
        }
    }

    fn ensure_fetcher(&mut self, tp: &TopicPartition) {
        let wants = self.replicas.get(tp).and_then(|r| r.fetch_request(self.incarnation, 1, 0)).is_some();
        if wants && self.fetchers.insert(tp.clone()) {
            self.actions.push(Action::StartFetcher(tp.clone()));
        }
    }

    fn plan_fetch(&mut self, id: ReqId, tp: &TopicPartition) {
        let s = &self.settings;
        let plan = self
            .replicas
            .get(tp)
            .filter(|_| self.registered)
            .and_then(|r| r.fetch_request(self.incarnation, s.fetch_max_records, s.replica_fetch_wait_max_ms))
            .and_then(|(leader, req)| self.image.node_of(leader).map(|n| (n.to_string(), req)));
        if plan.is_none() {
            self.fetchers.remove(tp);
        }
        self.actions.push(Action::FetchPlan { id, plan });
    }

    fn fetched(&mut self, req: &FetchRequest, resp: Option<Response>) {
        let Some(Response::Fetched(resp)) = resp else { return };
        let Some(r) = self.replicas.get_mut(&req.tp) else {
            return;
        };
        let Some(followed) = r.apply_fetch(req, resp) else {
            return;
        };
        if followed.truncated > 0 {
            let fields = json!({ "tp": req.tp.to_string(), "truncated": followed.truncated, "to": r.log.end_offset(), "epoch": r.leader_epoch() });
            self.actions.push(Action::Trace("kafka.truncate", fields));
            self.actions.push(Action::Sometimes("kafka.follower_truncated"));
        }
    }

    fn tick(&mut self) {
        let counts = self.image.partition_counts();
        self.coordinator.tick(self.now_ms, &counts);
        self.run_coordinator();
        self.complete_acks(None);
        self.reserve_parked(None);
        self.request_isr_changes();
        if self.now_ms >= self.last_checkpoint_ms + self.settings.hw_checkpoint_interval_ms {
            self.last_checkpoint_ms = self.now_ms;
            let hws: BTreeMap<String, u64> =
                self.replicas.iter().map(|(tp, r)| (tp.to_string(), r.high_watermark())).collect();
            self.actions.push(Action::Checkpoint(serde_json::to_vec(&hws).expect("checkpoint serializes")));
        }
    }

    fn alter_rejected(&mut self, req: &AlterPartition, reason: &str) {
        if reason != ALTER_NOT_APPLIED || req.incarnation != self.incarnation {
            return;
        }
        if let Some(r) = self.replicas.get_mut(&req.tp) {
            let isr = req.isr.clone();
            r.alter_rejected(&IsrRequest { leader_epoch: req.leader_epoch, partition_epoch: req.partition_epoch, isr });
        }
    }

    fn request_isr_changes(&mut self) {
        let (now, s) = (self.now_ms, &self.settings);
        let image = &self.image;
        let eligible = |b: BrokerId, inc: u64| image.brokers.get(&b).is_some_and(|r| !r.fenced && r.incarnation == inc);
        let mut requests = Vec::new();
        for (tp, r) in self.replicas.iter_mut().filter(|(_, r)| r.is_leader()) {
            let old = r.isr().to_vec();
            if let Some(req) = r.isr_change(now, s.replica_lag_time_max_ms, s.alter_partition_retry_ms, eligible) {
                let probe =
                    if req.isr.len() < old.len() { "kafka.isr_shrink_requested" } else { "kafka.isr_expand_requested" };
                self.actions.push(Action::Sometimes(probe));
                requests.push(AlterPartition {
                    broker: self.me,
                    incarnation: self.incarnation,
                    tp: tp.clone(),
                    leader_epoch: req.leader_epoch,
                    partition_epoch: req.partition_epoch,
                    isr: req.isr,
                });
            }
        }
        self.actions.extend(requests.into_iter().map(Action::AlterPartition));
    }
}
