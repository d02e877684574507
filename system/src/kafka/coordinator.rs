//! The group coordinator, sans-IO: the classic consumer group protocol (JoinGroup, SyncGroup,
//! Heartbeat, LeaveGroup, eager rebalancing) and committed offsets (OffsetCommit, OffsetFetch).
//!
//! The coordinator of a group is the leader of the group's `__consumer_offsets` partition. Its
//! durable state is that partition: offset commits and group metadata (generation, members,
//! assignment) are records appended there with `acks=all` semantics, and a request that wrote
//! one is answered only once the high watermark passed it. What it serves (committed offsets,
//! the generation) is the fold of the partition's committed records, so a coordinator that
//! takes over loads exactly what was acknowledged, and a new generation's record always lands
//! after every offset commit the previous generation had acknowledged.
//!
//! # Late commits: the commit sequence (not in Kafka)
//! A commit can arrive long after its sender gave up on it: the client times out, drops the
//! connection and moves on, while the request's bytes are still in the network (TCP keeps
//! retransmitting what was written before the close, then sends the FIN). If by then the
//! member's generation is still live on the coordinator — perhaps on another coordinator that
//! loaded the group from `__consumer_offsets`, or on the same broker in a later leadership —
//! the late commit passes every check Kafka makes and overwrites a newer, acknowledged commit
//! of the same member: the group's committed offset goes back, and a consumer that restarts
//! or takes the partition over reprocesses from there.
//!
//! Kafka's fences are all about *who* commits, not *when*: the classic protocol checks
//! `generationId` and `memberId` (`ILLEGAL_GENERATION`, `UNKNOWN_MEMBER_ID`); KIP-848 checks the
//! member epoch (`STALE_MEMBER_EPOCH`); KIP-1251's assignment epochs fence a member whose
//! partition moved to another. None of them orders two commits of one member in one
//! generation, and requests on different connections are not ordered with each other (the
//! broker orders requests only within a connection), so real Kafka genuinely allows this
//! regression. Applications that cannot tolerate it commit offsets in a transaction
//! (`sendOffsetsToTransaction`, KIP-98/KIP-447: a timed-out transaction is aborted with its
//! pending offsets) or keep offsets in their own store next to their results.
//!
//! This model instead protects the group at the coordinator, the smallest change that gives
//! the consumer service the guarantee it needs: every `OffsetCommit` carries the member's
//! `commit_seq`, which the client increases for every request it sends (so a retry after a
//! timeout is a new, higher sequence). The coordinator remembers, per member, the highest
//! sequence it accepted and answers an older one `STALE_COMMIT_SEQUENCE` (a model-only error
//! code) without writing it. The sequence and member id are stored in the offset record, so a
//! coordinator that takes over rebuilds the table by folding `__consumer_offsets`, as it
//! rebuilds the offsets themselves. The client has one commit in flight (`commitSync`), so
//! the member's accepted commits are in send order, and a record's place in the log is its
//! acceptance order. Entries of members that left the group are dropped with the generation
//! record that removes them: such a member's commits fail the member check anyway.
//! `GroupSettings::fence_late_commits = false` turns the fence off, which is Kafka's behaviour
//! (the `kafka-late-commits` config of the `kafka-partition` scenario, which the checker must
//! catch).
//!
//! Differences from Kafka: assignment is computed here (a range assignor, as KIP-848's
//! server-side assignors do) rather than by the group's leader member, so SyncGroup only hands
//! it out; no static membership (`group.instance.id`), no compaction of the offsets partition.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::config::GroupSettings;
use super::protocol::{CommittedOffset, ErrorCode, Request, Response};
use super::topic::{Record, TopicPartition};

pub type ReqId = u64;

/// The values stored in `__consumer_offsets`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupRecord {
    /// `OffsetCommit` value: the next offset the group will consume from `tp`, and who
    /// committed it with which `commit_seq` (not in Kafka's record; see the module docs).
    Offset {
        group: String,
        tp: TopicPartition,
        offset: CommittedOffset,
        generation: u64,
        member_id: String,
        commit_seq: u64,
    },
    /// `GroupMetadata` value: a completed rebalance.
    Group { group: String, generation: u64, members: Vec<String>, assignment: BTreeMap<String, Vec<TopicPartition>> },
}

/// What the coordinator asks of the broker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CoordOut {
    Reply(ReqId, Response),
    /// Append `records` to the group's offsets partition; answer `on_commit` once the high
    /// watermark passes them, or fail the requests in `on_fail` if that cannot happen.
    Append {
        records: Vec<GroupRecord>,
        on_commit: Vec<(ReqId, Response)>,
        on_fail: Vec<ReqId>,
    },
    /// A late `OffsetCommit` was refused (its reply is a separate [`CoordOut::Reply`]): for
    /// the trace.
    LateCommitFenced {
        group: String,
        member_id: String,
        commit_seq: u64,
        last_seq: u64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Empty,
    /// Waiting for members to (re)join until `deadline_ms`; `initial` is the first rebalance of
    /// an empty group, which always waits out `group.initial.rebalance.delay.ms`.
    Preparing {
        deadline_ms: u64,
        initial: bool,
    },
    /// The new generation's record is being replicated.
    Completing,
    Stable,
}

#[derive(Clone, Debug)]
struct Member {
    session_deadline_ms: u64,
    pending_join: Option<ReqId>,
    topics: Vec<String>,
}

/// Who sent an `OffsetCommit`: the generation it believes current, its member id and the
/// request's commit sequence.
struct Committer {
    generation: u64,
    member_id: String,
    commit_seq: u64,
}

#[derive(Clone, Debug)]
struct Group {
    phase: Phase,
    generation: u64,
    members: BTreeMap<String, Member>,
    assignment: BTreeMap<String, Vec<TopicPartition>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Inactive,
    Loading { until: u64 },
    Active,
}

pub struct Coordinator {
    settings: GroupSettings,
    id_prefix: String,
    status: Status,
    offsets: BTreeMap<(String, TopicPartition), CommittedOffset>,
    /// The last committed generation record of each group.
    committed_groups: BTreeMap<String, GroupRecord>,
    /// Per (group, member): the highest `commit_seq` accepted or folded from the log.
    commit_seqs: BTreeMap<(String, String), u64>,
    groups: BTreeMap<String, Group>,
    next_member: u64,
    out: Vec<CoordOut>,
}

impl Coordinator {
    /// `id_prefix` makes member ids unique across coordinators and their lives.
    pub fn new(settings: GroupSettings, id_prefix: String) -> Self {
        Coordinator {
            settings,
            id_prefix,
            status: Status::Inactive,
            offsets: BTreeMap::new(),
            committed_groups: BTreeMap::new(),
            commit_seqs: BTreeMap::new(),
            groups: BTreeMap::new(),
            next_member: 1,
            out: Vec::new(),
        }
    }

    pub fn take_out(&mut self) -> Vec<CoordOut> {
        std::mem::take(&mut self.out)
    }

    pub fn is_active(&self) -> bool {
        self.status == Status::Active
    }

    /// Became leader of the offsets partition: serve once the high watermark reaches `log_end`.
    pub fn start_loading(&mut self, log_end: u64) {
        self.resign();
        self.status = Status::Loading { until: log_end };
    }

    pub fn resign(&mut self) {
        self.status = Status::Inactive;
        self.offsets.clear();
        self.committed_groups.clear();
        self.commit_seqs.clear();
        self.groups.clear();
    }

    /// Folds newly committed records of the offsets partition.
    pub fn apply_committed(&mut self, records: &[Record]) {
        for r in records {
            let Ok(rec) = serde_json::from_str::<GroupRecord>(&r.value) else {
                continue;
            };
            match &rec {
                GroupRecord::Offset { group, tp, offset, member_id, commit_seq, .. } => {
                    self.offsets.insert((group.clone(), tp.clone()), *offset);
                    self.note_commit_seq(group, member_id, *commit_seq);
                }
                GroupRecord::Group { group, generation, members, .. } => {
                    self.commit_seqs.retain(|(g, m), _| g != group || members.contains(m));
                    if let Some(g) = self.groups.get_mut(group) {
                        if g.generation == *generation && g.phase == Phase::Completing {
                            g.phase = Phase::Stable;
                        }
                    }
                    self.committed_groups.insert(group.clone(), rec.clone());
                }
            }
        }
    }

    /// Finishes loading once the high watermark covers what the log held at election; groups
    /// resume from their last committed generation with fresh sessions (as Kafka does).
    pub fn maybe_finish_loading(&mut self, now_ms: u64, hw: u64) -> bool {
        let Status::Loading { until } = self.status else {
            return false;
        };
        if hw < until {
            return false;
        }
        self.status = Status::Active;
        for rec in self.committed_groups.values() {
            let GroupRecord::Group { group, generation, members, assignment } = rec else {
                continue;
            };
            let members: BTreeMap<String, Member> = members
                .iter()
                .map(|m| {
                    let member = Member {
                        session_deadline_ms: now_ms + self.settings.session_timeout_ms,
                        pending_join: None,
                        topics: Vec::new(),
                    };
                    (m.clone(), member)
                })
                .collect();
            let phase = if members.is_empty() { Phase::Empty } else { Phase::Stable };
            let g = Group { phase, generation: *generation, members, assignment: assignment.clone() };
            self.groups.insert(group.clone(), g);
        }
        true
    }

    /// Handles a group request. `counts` gives partition counts by topic, for assignment.
    pub fn handle(&mut self, now_ms: u64, id: ReqId, req: Request, counts: &BTreeMap<String, u32>) {
        let status_error = match self.status {
            Status::Inactive => Some(ErrorCode::NotCoordinator),
            Status::Loading { .. } => Some(ErrorCode::CoordinatorLoadInProgress),
            Status::Active => None,
        };
        if let Some(code) = status_error {
            self.out.push(CoordOut::Reply(id, Response::error(code)));
            return;
        }
        match req {
            Request::JoinGroup { group, member_id, client_id, topics } => {
                self.join(now_ms, id, &group, member_id, &client_id, topics, counts)
            }
            Request::SyncGroup { group, generation, member_id } => {
                self.sync(now_ms, id, &group, generation, &member_id)
            }
            Request::Heartbeat { group, generation, member_id } => {
                self.heartbeat(now_ms, id, &group, generation, &member_id)
            }
            Request::LeaveGroup { group, member_id } => self.leave(now_ms, id, &group, &member_id, counts),
            Request::OffsetCommit { group, generation, member_id, commit_seq, offsets } => {
                let by = Committer { generation, member_id, commit_seq };
                self.commit(now_ms, id, &group, by, offsets)
            }
            Request::OffsetFetch { group, partitions } => {
                let offsets = partitions
                    .into_iter()
                    .map(|tp| {
                        let o = self.offsets.get(&(group.clone(), tp.clone())).copied();
                        (tp, o)
                    })
                    .collect();
                self.out.push(CoordOut::Reply(id, Response::Offsets(offsets)));
            }
            _ => self.out.push(CoordOut::Reply(id, Response::error(ErrorCode::InvalidRequest))),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn join(
        &mut self,
        now_ms: u64,
        id: ReqId,
        group: &str,
        member_id: Option<String>,
        client_id: &str,
        topics: Vec<String>,
        counts: &BTreeMap<String, u32>,
    ) {
        let settings = self.settings.clone();
        let (member_id, fresh) = match member_id {
            Some(m) => (m, false),
            None => {
                self.next_member += 1;
                (format!("{client_id}-{}-{}", self.id_prefix, self.next_member - 1), true)
            }
        };
        let g = self.groups.entry(group.to_string()).or_insert_with(Group::empty);
        if !fresh && !g.members.contains_key(&member_id) {
            self.out.push(CoordOut::Reply(id, Response::error(ErrorCode::UnknownMemberId)));
            return;
        }
        let member =
            Member { session_deadline_ms: now_ms + settings.session_timeout_ms, pending_join: Some(id), topics };
        g.members.insert(member_id, member);
        g.phase = match g.phase {
            Phase::Empty => {
                Phase::Preparing { deadline_ms: now_ms + settings.initial_rebalance_delay_ms, initial: true }
            }
            Phase::Stable | Phase::Completing => {
                Phase::Preparing { deadline_ms: now_ms + settings.rebalance_timeout_ms, initial: false }
            }
            p @ Phase::Preparing { .. } => p,
        };
        self.try_complete(now_ms, group, counts);
    }

    fn sync(&mut self, now_ms: u64, id: ReqId, group: &str, generation: u64, member_id: &str) {
        let session = self.settings.session_timeout_ms;
        let reply = match self.member_check(group, generation, member_id) {
            Err(code) => Response::error(code),
            Ok(g) => {
                if let Some(m) = g.members.get_mut(member_id) {
                    m.session_deadline_ms = now_ms + session;
                }
                match g.phase {
                    Phase::Stable => {
                        Response::Synced { assignment: g.assignment.get(member_id).cloned().unwrap_or_default() }
                    }
                    _ => Response::error(ErrorCode::RebalanceInProgress),
                }
            }
        };
        self.out.push(CoordOut::Reply(id, reply));
    }

    fn heartbeat(&mut self, now_ms: u64, id: ReqId, group: &str, generation: u64, member_id: &str) {
        let session = self.settings.session_timeout_ms;
        let reply = match self.member_check(group, generation, member_id) {
            Err(code) => Response::error(code),
            Ok(g) => {
                if let Some(m) = g.members.get_mut(member_id) {
                    m.session_deadline_ms = now_ms + session;
                }
                match g.phase {
                    Phase::Preparing { .. } => Response::error(ErrorCode::RebalanceInProgress),
                    _ => Response::Done,
                }
            }
        };
        self.out.push(CoordOut::Reply(id, reply));
    }

    fn leave(&mut self, now_ms: u64, id: ReqId, group: &str, member_id: &str, counts: &BTreeMap<String, u32>) {
        let timeout = self.settings.rebalance_timeout_ms;
        let Some(g) = self.groups.get_mut(group).filter(|g| g.members.contains_key(member_id)) else {
            self.out.push(CoordOut::Reply(id, Response::error(ErrorCode::UnknownMemberId)));
            return;
        };
        g.members.remove(member_id);
        g.start_rebalance(now_ms, timeout);
        self.out.push(CoordOut::Reply(id, Response::Done));
        self.try_complete(now_ms, group, counts);
    }

    fn commit(
        &mut self,
        now_ms: u64,
        id: ReqId,
        group: &str,
        by: Committer,
        offsets: Vec<(TopicPartition, CommittedOffset)>,
    ) {
        let session = self.settings.session_timeout_ms;
        let Committer { generation, member_id, commit_seq } = by;
        let member_id = member_id.as_str();
        let last_seq = self.last_commit_seq(group, member_id).filter(|_| self.settings.fence_late_commits);
        let checked = self.member_check(group, generation, member_id).and_then(|g| {
            // A late copy of a commit the member already superseded (module docs).
            if last_seq.is_some_and(|last| commit_seq < last) {
                return Err(ErrorCode::StaleCommitSequence);
            }
            if g.phase == Phase::Completing {
                return Err(ErrorCode::RebalanceInProgress);
            }
            if let Some(m) = g.members.get_mut(member_id) {
                m.session_deadline_ms = now_ms + session;
            }
            Ok(())
        });
        if let Err(code) = checked {
            if code == ErrorCode::StaleCommitSequence {
                self.out.push(CoordOut::LateCommitFenced {
                    group: group.to_string(),
                    member_id: member_id.to_string(),
                    commit_seq,
                    last_seq: last_seq.unwrap_or_default(),
                });
            }
            self.out.push(CoordOut::Reply(id, Response::error(code)));
            return;
        }
        self.note_commit_seq(group, member_id, commit_seq);
        let records = offsets
            .into_iter()
            .map(|(tp, offset)| GroupRecord::Offset {
                group: group.to_string(),
                tp,
                offset,
                generation,
                member_id: member_id.to_string(),
                commit_seq,
            })
            .collect();
        self.out.push(CoordOut::Append { records, on_commit: vec![(id, Response::Done)], on_fail: vec![id] });
    }

    /// The highest commit sequence accepted from `member_id`, if it is still remembered.
    pub fn last_commit_seq(&self, group: &str, member_id: &str) -> Option<u64> {
        self.commit_seqs.get(&(group.to_string(), member_id.to_string())).copied()
    }

    /// Raises the member's highest known commit sequence to `seq`.
    fn note_commit_seq(&mut self, group: &str, member_id: &str, seq: u64) {
        let last = self.commit_seqs.entry((group.to_string(), member_id.to_string())).or_insert(seq);
        *last = (*last).max(seq);
    }

    /// The group, if `member_id` belongs to its current `generation`.
    fn member_check(&mut self, group: &str, generation: u64, member_id: &str) -> Result<&mut Group, ErrorCode> {
        let g = self.groups.get_mut(group).ok_or(ErrorCode::UnknownMemberId)?;
        if !g.members.contains_key(member_id) {
            return Err(ErrorCode::UnknownMemberId);
        }
        if g.generation != generation {
            return Err(ErrorCode::IllegalGeneration);
        }
        Ok(g)
    }

    /// Expires sessions and rebalance deadlines.
    pub fn tick(&mut self, now_ms: u64, counts: &BTreeMap<String, u32>) {
        if self.status != Status::Active {
            return;
        }
        let timeout = self.settings.rebalance_timeout_ms;
        let names: Vec<String> = self.groups.keys().cloned().collect();
        for name in names {
            let Some(g) = self.groups.get_mut(&name) else { continue };
            let expired: Vec<String> = g
                .members
                .iter()
                .filter(|(_, m)| m.pending_join.is_none() && m.session_deadline_ms < now_ms)
                .map(|(id, _)| id.clone())
                .collect();
            if !expired.is_empty() {
                for id in &expired {
                    g.members.remove(id);
                }
                g.start_rebalance(now_ms, timeout);
            }
            self.try_complete(now_ms, &name, counts);
        }
    }

    /// Completes a rebalance once every member rejoined (after the initial delay for a new
    /// group) or the deadline passed, dropping members that did not rejoin.
    fn try_complete(&mut self, now_ms: u64, group: &str, counts: &BTreeMap<String, u32>) {
        let session = self.settings.session_timeout_ms;
        let Some(g) = self.groups.get_mut(group) else { return };
        let Phase::Preparing { deadline_ms, initial } = g.phase else {
            return;
        };
        let all_joined = g.members.values().all(|m| m.pending_join.is_some());
        if !(now_ms >= deadline_ms || (all_joined && !initial)) {
            return;
        }
        g.members.retain(|_, m| m.pending_join.is_some());
        g.generation += 1;
        g.assignment = range_assign(&g.members, counts);
        g.phase = if g.members.is_empty() { Phase::Empty } else { Phase::Completing };
        let ids: Vec<String> = g.members.keys().cloned().collect();
        let leader = ids.first().cloned().unwrap_or_default();
        let mut on_commit = Vec::new();
        for (member_id, m) in g.members.iter_mut() {
            m.session_deadline_ms = now_ms + session;
            if let Some(req) = m.pending_join.take() {
                let resp = Response::Joined {
                    generation: g.generation,
                    member_id: member_id.clone(),
                    leader: leader.clone(),
                    members: ids.clone(),
                };
                on_commit.push((req, resp));
            }
        }
        let on_fail = on_commit.iter().map(|(id, _)| *id).collect();
        let record = GroupRecord::Group {
            group: group.to_string(),
            generation: g.generation,
            members: ids,
            assignment: g.assignment.clone(),
        };
        self.out.push(CoordOut::Append { records: vec![record], on_commit, on_fail });
    }
}

impl Group {
    fn empty() -> Self {
        Group { phase: Phase::Empty, generation: 0, members: BTreeMap::new(), assignment: BTreeMap::new() }
    }

    fn start_rebalance(&mut self, now_ms: u64, timeout_ms: u64) {
        if matches!(self.phase, Phase::Stable | Phase::Completing | Phase::Empty) {
            self.phase = Phase::Preparing { deadline_ms: now_ms + timeout_ms, initial: false };
        }
    }
}

/// Kafka's range assignor: per topic, members in id order take contiguous ranges of
/// partitions, the first `partitions % members` taking one extra.
fn range_assign(
    members: &BTreeMap<String, Member>,
    counts: &BTreeMap<String, u32>,
) -> BTreeMap<String, Vec<TopicPartition>> {
    let mut out: BTreeMap<String, Vec<TopicPartition>> = members.keys().map(|m| (m.clone(), Vec::new())).collect();
    let mut topics: Vec<&String> = members.values().flat_map(|m| m.topics.iter()).collect();
    topics.sort();
    topics.dedup();
    for topic in topics {
        let n = counts.get(topic.as_str()).copied().unwrap_or(0);
        let subscribed: Vec<&String> =
            members.iter().filter(|(_, m)| m.topics.contains(topic)).map(|(id, _)| id).collect();
        if subscribed.is_empty() {
            continue;
        }
        let (per, extra) = (n / subscribed.len() as u32, n % subscribed.len() as u32);
        let mut next = 0;
        for (i, member) in subscribed.iter().enumerate() {
            let take = per + u32::from((i as u32) < extra);
            let list = out.entry((*member).clone()).or_default();
            list.extend((next..next + take).map(|p| TopicPartition::new(topic, p)));
            next += take;
        }
    }
    out
}
