//! One broker's replica of one partition, sans-IO: leader or follower of the current leader
//! epoch, per the metadata image.
//!
//! As leader it appends produced records (deduplicating idempotent retries), serves fetches,
//! tracks each follower's log end offset and when it last caught up, moves the high watermark
//! to the smallest log end offset in the ISR, and asks the controller to shrink the ISR when a
//! follower lags more than `replica.lag.time.max.ms` or to expand it when a follower's fetch
//! finds it caught up. One AlterPartition is in flight at a time, and until the controller
//! answers the leader acts under the maximal ISR (KIP-497).
//! As follower it fetches from the leader and truncates where the leader says its log diverges
//! (KIP-595's diverging epoch), which is what throws away records a deposed leader appended
//! after losing leadership — and, under `acks=1` or unclean election, records it acknowledged.

use std::collections::BTreeMap;

use super::idempotence::SeqCheck;
use super::log::PartitionLog;
use super::metadata::PartitionState;
use super::protocol::{Diverging, ErrorCode, FetchRequest, FetchResponse, ProduceRequest, ReplicaFetch};
use super::topic::{BrokerId, Record, TopicPartition};

/// A follower as the leader sees it (Kafka's `Replica` state).
#[derive(Clone, Debug)]
struct Progress {
    /// Unknown until the follower fetches in this leader epoch.
    leo: Option<u64>,
    incarnation: u64,
    last_fetch_ms: u64,
    leader_leo_at_last_fetch: u64,
    last_caught_up_ms: u64,
    /// Its latest fetch came while it was out of the committed ISR and had reached the high
    /// watermark and this epoch's start (Kafka's `isFollowerInSync`, which `maybeExpandIsr`
    /// judges on each fetch, never on remembered state). Cleared when the ISR changes, so a
    /// fetch made while the follower was still in the ISR never re-adds it after it leaves.
    joins: bool,
}

#[derive(Clone, Debug)]
struct PendingIsr {
    isr: Vec<BrokerId>,
    partition_epoch: u64,
    sent_ms: u64,
}

#[derive(Clone, Debug)]
struct LeaderState {
    epoch: u64,
    followers: BTreeMap<BrokerId, Progress>,
    pending: Option<PendingIsr>,
}

/// How the replica's role changed on a metadata update.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    Unchanged,
    BecameLeader,
    BecameFollower { was_leader: bool },
    IsrChanged,
}

/// A produce the leader appended (or recognised as a retry).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    pub base_offset: u64,
    pub last_offset: u64,
    pub duplicate: bool,
}

/// The outcome of serving a fetch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Served {
    Ready(FetchResponse),
    /// Nothing to return yet: hold the fetch until data arrives or its wait runs out.
    Park,
    Error(ErrorCode),
}

/// What a follower did with a fetch response.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Followed {
    pub appended: usize,
    /// Records dropped because the log diverged from the leader's.
    pub truncated: u64,
}

/// An ISR change the leader wants the controller to make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IsrRequest {
    pub leader_epoch: u64,
    pub partition_epoch: u64,
    pub isr: Vec<BrokerId>,
}

pub struct Replica {
    pub tp: TopicPartition,
    me: BrokerId,
    pub log: PartitionLog,
    hw: u64,
    state: Option<PartitionState>,
    leader: Option<LeaderState>,
}

impl Replica {
    pub fn new(tp: TopicPartition, me: BrokerId, log: PartitionLog, hw: u64) -> Self {
        let hw = hw.min(log.end_offset());
        Replica { tp, me, log, hw, state: None, leader: None }
    }

    pub fn high_watermark(&self) -> u64 {
        self.hw
    }

    pub fn is_leader(&self) -> bool {
        self.leader.is_some()
    }

    pub fn state(&self) -> Option<&PartitionState> {
        self.state.as_ref()
    }

    pub fn leader_epoch(&self) -> u64 {
        self.state.as_ref().map_or(0, |s| s.leader_epoch)
    }

    /// The ISR as the controller last committed it.
    pub fn isr(&self) -> &[BrokerId] {
        self.state.as_ref().map_or(&[], |s| s.isr.as_slice())
    }

    /// Takes the partition state from a newer metadata image.
    pub fn apply_state(&mut self, now_ms: u64, state: &PartitionState) -> Transition {
        if self.state.as_ref() == Some(state) {
            return Transition::Unchanged;
        }
        let old_epoch = self.state.as_ref().map(|s| s.leader_epoch);
        self.state = Some(state.clone());
        if state.leader == Some(self.me) {
            if let Some(l) = self.leader.as_mut().filter(|l| l.epoch == state.leader_epoch) {
                // The controller's answer to an in-flight AlterPartition, whichever it was: the
                // committed ISR is now the truth. Followers must fetch again to join it.
                if l.pending.as_ref().is_some_and(|p| p.partition_epoch < state.partition_epoch) {
                    l.pending = None;
                }
                for p in l.followers.values_mut() {
                    p.joins = false;
                }
                return Transition::IsrChanged;
            }
            self.become_leader(now_ms, state);
            return Transition::BecameLeader;
        }
        let was_leader = self.leader.take().is_some();
        if was_leader || old_epoch != Some(state.leader_epoch) {
            return Transition::BecameFollower { was_leader };
        }
        Transition::Unchanged
    }

    fn become_leader(&mut self, now_ms: u64, state: &PartitionState) {
        self.log.assign_epoch(state.leader_epoch);
        let leo = self.log.end_offset();
        let followers = state
            .replicas
            .iter()
            .filter(|r| **r != self.me)
            .map(|r| {
                let p = Progress {
                    leo: None,
                    incarnation: 0,
                    last_fetch_ms: now_ms,
                    leader_leo_at_last_fetch: leo,
                    last_caught_up_ms: now_ms,
                    joins: false,
                };
                (*r, p)
            })
            .collect();
        self.leader = Some(LeaderState { epoch: state.leader_epoch, followers, pending: None });
    }

    /// Appends a produce request as leader. Checks `min.insync.replicas` first for `acks=all`
    /// (the caller passes `min_isr = 0` for `acks=1`).
    pub fn append_produce(&mut self, req: &ProduceRequest, min_isr: usize) -> Result<Appended, ErrorCode> {
        let epoch = self.leader.as_ref().ok_or(ErrorCode::NotLeaderOrFollower)?.epoch;
        if self.isr().len() < min_isr {
            return Err(ErrorCode::NotEnoughReplicas);
        }
        let count = req.values.len() as u64;
        if req.producer_id != 0 {
            match self.log.producers().check(req.producer_id, req.base_seq, count) {
                SeqCheck::Append => {}
                SeqCheck::Duplicate { base_offset } => {
                    return Ok(Appended { base_offset, last_offset: base_offset + count - 1, duplicate: true });
                }
                SeqCheck::OutOfOrder { .. } => return Err(ErrorCode::OutOfOrderSequenceNumber),
            }
        }
        let base = self.log.end_offset();
        let records = req
            .values
            .iter()
            .enumerate()
            .map(|(i, v)| Record {
                offset: base + i as u64,
                leader_epoch: epoch,
                producer_id: req.producer_id,
                seq: req.base_seq + i as u64,
                value: v.clone(),
                batch_end: i + 1 == req.values.len(),
            })
            .collect();
        let appended = self.log.append(records);
        debug_assert!(appended, "a leader's own records always continue its log");
        self.maybe_advance_hw();
        Ok(Appended { base_offset: base, last_offset: base + count - 1, duplicate: false })
    }

    /// The largest ISR the leader may be acting under: the committed one plus any members a
    /// pending expansion adds (KIP-497's "maximal ISR"), so the high watermark waits for them.
    fn maximal_isr(&self) -> Vec<BrokerId> {
        let mut isr = self.isr().to_vec();
        if let Some(p) = self.leader.as_ref().and_then(|l| l.pending.as_ref()) {
            for b in &p.isr {
                if !isr.contains(b) {
                    isr.push(*b);
                }
            }
        }
        isr
    }

    /// Moves the high watermark to the smallest log end offset in the maximal ISR; it never
    /// goes back. Returns whether it moved.
    pub fn maybe_advance_hw(&mut self) -> bool {
        let Some(leader) = self.leader.as_ref() else {
            return false;
        };
        let mut hw = self.log.end_offset();
        for b in self.maximal_isr() {
            if b == self.me {
                continue;
            }
            match leader.followers.get(&b).and_then(|p| p.leo) {
                Some(leo) => hw = hw.min(leo),
                None => return false,
            }
        }
        if hw > self.hw {
            self.hw = hw;
            return true;
        }
        false
    }

    /// Serves a fetch as leader. `first` is false when re-serving a parked fetch (progress was
    /// recorded when it arrived); `may_park` is false once its wait is over. The flag says
    /// whether the high watermark moved.
    pub fn serve_fetch(&mut self, now_ms: u64, req: &FetchRequest, first: bool, may_park: bool) -> (Served, bool) {
        let Some(epoch) = self.leader.as_ref().map(|l| l.epoch) else {
            return (Served::Error(ErrorCode::NotLeaderOrFollower), false);
        };
        match req.current_leader_epoch {
            Some(e) if e > epoch => return (Served::Error(ErrorCode::UnknownLeaderEpoch), false),
            Some(e) if e < epoch => return (Served::Error(ErrorCode::FencedLeaderEpoch), false),
            _ => {}
        }
        let leo = self.log.end_offset();
        let (upto, moved) = match &req.replica {
            Some(rf) => {
                if let Some(div) = self.divergence(req.offset, rf) {
                    return (Served::Ready(self.response(Vec::new(), Some(div))), false);
                }
                let moved = first && self.record_follower_fetch(now_ms, req.offset, rf);
                (leo, moved)
            }
            None if req.offset > leo => return (Served::Error(ErrorCode::OffsetOutOfRange), false),
            None => (self.hw, false),
        };
        let records = self.log.read(req.offset, upto, req.max_records as usize).to_vec();
        if records.is_empty() && may_park && req.max_wait_ms > 0 {
            return (Served::Park, moved);
        }
        (Served::Ready(self.response(records, None)), moved)
    }

    fn response(&self, records: Vec<Record>, diverging: Option<Diverging>) -> FetchResponse {
        FetchResponse {
            leader_epoch: self.leader_epoch(),
            high_watermark: self.hw,
            log_end_offset: self.log.end_offset(),
            records,
            diverging,
        }
    }

    /// Where the follower's log stops matching ours, if it does before its fetch offset.
    fn divergence(&self, offset: u64, rf: &ReplicaFetch) -> Option<Diverging> {
        let Some(last) = rf.last_fetched_epoch else {
            return (offset > 0).then_some(Diverging { epoch: None, end_offset: 0 });
        };
        match self.log.end_offset_for_epoch(last) {
            Some((e, end)) if e == last && end >= offset => None,
            Some((e, end)) => Some(Diverging { epoch: Some(e), end_offset: end }),
            None => Some(Diverging { epoch: None, end_offset: self.log.start_offset() }),
        }
    }

    /// Kafka's follower bookkeeping: caught up now if it fetched from our log end, or as of its
    /// previous fetch if it has everything we had then.
    fn record_follower_fetch(&mut self, now_ms: u64, offset: u64, rf: &ReplicaFetch) -> bool {
        let (leo, hw) = (self.log.end_offset(), self.hw);
        let out_of_isr = !self.isr().contains(&rf.broker);
        let Some(l) = self.leader.as_mut() else { return false };
        let epoch_start = self.log.epoch_start(l.epoch).unwrap_or(0);
        let Some(p) = l.followers.get_mut(&rf.broker) else {
            return false;
        };
        p.joins = out_of_isr && offset >= hw && offset >= epoch_start;
        if offset >= leo {
            p.last_caught_up_ms = now_ms;
        } else if offset >= p.leader_leo_at_last_fetch {
            p.last_caught_up_ms = p.last_fetch_ms;
        }
        p.leo = Some(offset.min(leo));
        p.incarnation = rf.incarnation;
        p.leader_leo_at_last_fetch = leo;
        p.last_fetch_ms = now_ms;
        self.maybe_advance_hw()
    }

    /// The AlterPartition this leader sends now, if any: a change of the ISR (lagging followers
    /// out, followers whose latest fetch found them caught up in), or the retry of the one in
    /// flight.
    ///
    /// As in Kafka, a change in flight blocks any other (`isInflight`) and is not forgotten until
    /// the controller's answer: the committed ISR moving past the epoch it was sent at, or a
    /// rejection saying it was not applied ([`Replica::alter_rejected`]). A request lost on the
    /// way, or a controller that failed over, leaves its outcome unknown; the leader resends the
    /// same request every `retry_ms` (the controller takes it at most once, by partition epoch)
    /// and keeps acting under the maximal ISR meanwhile, since the controller may have
    /// committed the expansion already and may elect any member of it.
    pub fn isr_change(
        &mut self,
        now_ms: u64,
        lag_max_ms: u64,
        retry_ms: u64,
        eligible: impl Fn(BrokerId, u64) -> bool,
    ) -> Option<IsrRequest> {
        let (me, hw) = (self.me, self.hw);
        let state = self.state.clone()?;
        let leader = self.leader.as_mut()?;
        if let Some(p) = leader.pending.as_mut() {
            if now_ms < p.sent_ms + retry_ms {
                return None;
            }
            p.sent_ms = now_ms;
            let isr = p.isr.clone();
            return Some(IsrRequest { leader_epoch: state.leader_epoch, partition_epoch: p.partition_epoch, isr });
        }
        let wanted: Vec<BrokerId> = state
            .replicas
            .iter()
            .copied()
            .filter(|r| {
                if *r == me {
                    return true;
                }
                let Some(p) = leader.followers.get(r) else { return false };
                if state.isr.contains(r) {
                    now_ms <= p.last_caught_up_ms + lag_max_ms
                } else {
                    p.joins && p.leo.is_some_and(|leo| leo >= hw) && eligible(*r, p.incarnation)
                }
            })
            .collect();
        let mut current = state.isr.clone();
        current.sort_by_key(|b| state.replicas.iter().position(|r| r == b));
        if wanted == current {
            return None;
        }
        leader.pending =
            Some(PendingIsr { isr: wanted.clone(), partition_epoch: state.partition_epoch, sent_ms: now_ms });
        Some(IsrRequest { leader_epoch: state.leader_epoch, partition_epoch: state.partition_epoch, isr: wanted })
    }

    /// The controller rejected an AlterPartition as invalid (Kafka's `INELIGIBLE_REPLICA` /
    /// `INVALID_REQUEST`): it checked the request against the partition epoch it was sent at,
    /// so it was not applied and never will be, and the leader drops it (Kafka resets to the
    /// last committed state). Other rejections (a stale leader or partition epoch) mean the
    /// metadata has moved on: the leader waits for it.
    pub fn alter_rejected(&mut self, req: &IsrRequest) {
        let Some(leader) = self.leader.as_mut().filter(|l| l.epoch == req.leader_epoch) else {
            return;
        };
        if leader.pending.as_ref().is_some_and(|p| p.partition_epoch == req.partition_epoch && p.isr == req.isr) {
            leader.pending = None;
        }
    }

    /// The next replication fetch, when this replica follows a leader.
    pub fn fetch_request(
        &self,
        incarnation: u64,
        max_records: u32,
        max_wait_ms: u64,
    ) -> Option<(BrokerId, FetchRequest)> {
        let state = self.state.as_ref()?;
        let leader = state.leader.filter(|l| *l != self.me && self.leader.is_none())?;
        let req = FetchRequest {
            tp: self.tp.clone(),
            offset: self.log.end_offset(),
            max_records,
            max_wait_ms,
            current_leader_epoch: Some(state.leader_epoch),
            replica: Some(ReplicaFetch {
                broker: self.me,
                incarnation,
                // Kafka sends the epoch cache's latest epoch, which may be one this replica
                // led without appending: the leader then reports where it diverges.
                last_fetched_epoch: self.log.latest_epoch(),
            }),
        };
        Some((leader, req))
    }

    /// Applies the leader's answer to `req`; `None` when it no longer applies (the log or the
    /// leader moved on meanwhile) or is malformed.
    pub fn apply_fetch(&mut self, req: &FetchRequest, resp: FetchResponse) -> Option<Followed> {
        let state = self.state.as_ref()?;
        if self.leader.is_some()
            || req.offset != self.log.end_offset()
            || Some(state.leader_epoch) != req.current_leader_epoch
        {
            return None;
        }
        if let Some(div) = resp.diverging {
            let own_end = div.epoch.and_then(|e| self.log.end_offset_for_epoch(e)).map_or(0, |(_, end)| end);
            let to = div.end_offset.min(own_end).min(self.log.end_offset());
            let truncated = self.log.end_offset() - to;
            // Also drops the diverging epoch when it has no records here (an epoch this
            // replica led without appending), so the next fetch makes progress.
            self.log.truncate_to(to);
            self.hw = self.hw.min(to);
            return Some(Followed { appended: 0, truncated });
        }
        if resp.records.iter().any(|r| r.leader_epoch > resp.leader_epoch) {
            return None;
        }
        let appended = resp.records.len();
        if !self.log.append(resp.records) {
            return None;
        }
        self.hw = resp.high_watermark.min(self.log.end_offset());
        Some(Followed { appended, truncated: 0 })
    }
}
