//! The leader side: becoming leader, heartbeats, check-quorum, proposals, replication,
//! commitment and leadership transfer.

use super::message::Message;
use super::node::{Raft, Transfer};
use super::progress::{Progress, ProgressState};
use super::quorum;
use super::{Entry, NodeId, NotLeader, Role};

/// Which `Append`s `send_append` may emit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Send {
    /// Only if there are entries to send and the follower is not awaiting a probe answer.
    Data,
    /// Even with no entries (to carry a new commit index), unless a probe is outstanding.
    Commit,
    /// Always: keeps followers' election timers quiet and re-probes lost appends.
    Heartbeat,
}

impl Raft {
    pub(super) fn become_leader(&mut self) {
        assert_eq!(self.role, Role::Candidate, "only a candidate can become leader");
        tracing::debug!(id = self.cfg.id, term = self.term, "raft: leader");
        self.role = Role::Leader;
        self.leader = Some(self.cfg.id);
        self.heartbeat_elapsed = 0;
        self.election_elapsed = 0;
        self.transfer = None;
        let next = self.log.last_index() + 1;
        self.progress = self.cfg.voters.iter().map(|&v| (v, Progress::new(next))).collect();
        // Our voters just answered us; count them as heard from for check-quorum.
        for (v, granted) in self.take_votes() {
            if let Some(p) = self.progress.get_mut(&v) {
                p.recent_active = granted;
            }
        }
        // The no-op lets this term commit something, which (Figure 8) is the only way
        // entries from earlier terms become committed.
        self.append_own(Vec::new());
        self.bcast_append(Send::Data);
    }

    pub(super) fn tick_leader(&mut self) {
        self.heartbeat_elapsed += 1;
        self.election_elapsed += 1;
        if let Some(t) = self.transfer.as_mut() {
            t.elapsed += 1;
            if t.elapsed >= self.cfg.election_timeout_ticks {
                tracing::debug!(id = self.cfg.id, to = t.to, "raft: leadership transfer timed out");
                self.transfer = None;
            }
        }
        if self.election_elapsed >= self.cfg.election_timeout_ticks {
            self.election_elapsed = 0;
            if self.cfg.check_quorum && !self.quorum_active() {
                tracing::debug!(id = self.cfg.id, term = self.term, "raft: lost quorum, stepping down");
                self.become_follower(self.term, None);
                return;
            }
            let me = self.cfg.id;
            self.progress.iter_mut().for_each(|(&v, p)| p.recent_active = v == me);
        }
        if self.heartbeat_elapsed >= self.cfg.heartbeat_ticks {
            self.heartbeat_elapsed = 0;
            self.bcast_append(Send::Heartbeat);
        }
    }

    fn quorum_active(&self) -> bool {
        let me = self.cfg.id;
        let active = self.progress.iter().filter(|(&v, p)| v == me || p.recent_active).count();
        active >= quorum::majority(self.cfg.voters.len())
    }

    /// Appends `data` as a new entry of the current term. Returns its `(index, term)`;
    /// the command is committed once a Ready's `committed` contains an entry with that
    /// index *and* term (a different term there means it was overwritten: retry).
    pub fn propose(&mut self, data: Vec<u8>) -> Result<(u64, u64), NotLeader> {
        if self.role != Role::Leader {
            return Err(NotLeader { leader_hint: self.leader });
        }
        if let Some(t) = self.transfer {
            // The target may be mid-election; new entries would only delay it.
            return Err(NotLeader { leader_hint: Some(t.to) });
        }
        let index = self.append_own(data);
        self.bcast_append(Send::Data);
        self.check_invariants();
        Ok((index, self.term))
    }

    fn append_own(&mut self, data: Vec<u8>) -> u64 {
        let index = self.log.last_index() + 1;
        self.log.append(Entry { term: self.term, index, data });
        let me = self.cfg.id;
        self.progress.get_mut(&me).expect("leader has own progress").maybe_update(index);
        // A single-voter cluster commits on its own append.
        self.maybe_commit();
        index
    }

    fn bcast_append(&mut self, how: Send) {
        for to in self.peers() {
            self.send_append(to, how);
        }
    }

    /// Sends `to` the entries from its `next` index, as `how` allows.
    fn send_append(&mut self, to: NodeId, how: Send) {
        let max = self.cfg.max_entries_per_msg;
        loop {
            let pr = &self.progress[&to];
            if pr.paused() && how != Send::Heartbeat {
                return;
            }
            let (next, state) = (pr.next, pr.state);
            let prev_index = next - 1;
            let prev_term = self.log.term(prev_index).expect("follower next within leader log");
            let entries = self.log.slice_from(next, max).to_vec();
            if entries.is_empty() && how == Send::Data {
                return;
            }
            let sent = entries.len() as u64;
            let leader_commit = self.log.committed();
            self.send(to, Message::Append { term: self.term, prev_index, prev_term, entries, leader_commit });
            let pr = self.progress.get_mut(&to).expect("peer progress");
            match state {
                ProgressState::Probe => {
                    pr.probe_sent = true;
                    return;
                }
                // Pipeline: assume delivery; a rejection will rewind `next`.
                ProgressState::Replicate if sent > 0 => pr.next = next + sent,
                ProgressState::Replicate => return,
            }
            if pr.next > self.log.last_index() {
                return;
            }
        }
    }

    pub(super) fn handle_append_resp(
        &mut self,
        from: NodeId,
        success: bool,
        index: u64,
        hint_index: u64,
        hint_term: u64,
        damaged: bool,
    ) {
        let pr = self.progress.get_mut(&from).expect("leader tracks every voter");
        pr.recent_active = true;
        pr.damaged = damaged;
        if !success {
            let match_hint = self.log.find_conflict_by_term(hint_index, hint_term);
            let pr = self.progress.get_mut(&from).expect("peer progress");
            if damaged && match_hint < pr.matched {
                // It lost entries it had answered for: what it holds is all that matches now.
                pr.matched = match_hint;
                pr.become_probe();
                pr.next = match_hint + 1;
            }
            if pr.maybe_decrease_to(index, match_hint) {
                pr.become_probe();
                self.send_append(from, Send::Commit);
            }
            return;
        }
        assert!(index <= self.log.last_index(), "follower {from} acked {index} beyond our log end");
        let was_probe = pr.state == ProgressState::Probe;
        let was_paused = pr.paused();
        let advanced = pr.maybe_update(index);
        if was_probe && pr.matched == index {
            pr.become_replicate();
        }
        if advanced && self.maybe_commit() {
            self.bcast_append(Send::Commit);
        } else if was_paused {
            // A paused follower was skipped by commit broadcasts; bring it up to date.
            self.send_append(from, Send::Commit);
        } else {
            self.send_append(from, Send::Data);
        }
        self.maybe_send_timeout_now(from);
    }

    /// Advances the commit index to the highest index on a majority, if that entry is
    /// from the current term (Figure 8). Returns whether it advanced.
    fn maybe_commit(&mut self) -> bool {
        // A follower repairing a damaged log holds what it answered for, but its answers are
        // not acknowledgements (see `Raft::mark_damaged`).
        let mut matched: Vec<u64> = self.progress.values().map(|p| if p.damaged { 0 } else { p.matched }).collect();
        let n = quorum::committed_index(&mut matched);
        if n > self.log.committed() && self.log.term(n) == Some(self.term) {
            self.log.commit_to(n);
            return true;
        }
        false
    }

    /// Hands leadership to `to` (e.g. a higher-priority member that has caught up): the
    /// leader stops accepting proposals, brings `to` up to date and tells it to campaign
    /// at once. Gives up after an election timeout (e.g. if `to` has priority 0 or is
    /// unreachable). Panics if `to` is not a voter.
    pub fn transfer_leadership(&mut self, to: NodeId) -> Result<(), NotLeader> {
        assert!(self.cfg.voters.contains(&to), "transfer to unknown node {to}");
        if self.role != Role::Leader {
            return Err(NotLeader { leader_hint: self.leader });
        }
        if to == self.cfg.id {
            self.transfer = None;
            return Ok(());
        }
        tracing::debug!(id = self.cfg.id, to, "raft: transferring leadership");
        self.transfer = Some(Transfer { to, elapsed: 0 });
        // Heartbeat mode: if `to` silently lost pipelined appends, this makes it say so.
        self.send_append(to, Send::Heartbeat);
        self.maybe_send_timeout_now(to);
        Ok(())
    }

    fn maybe_send_timeout_now(&mut self, peer: NodeId) {
        let Some(t) = self.transfer else { return };
        if t.to == peer && self.progress[&peer].matched == self.log.last_index() {
            self.send(peer, Message::TimeoutNow { term: self.term });
        }
    }

    /// A leader voluntarily becomes a follower in the same term. Followers keep honouring
    /// its lease until it runs out, so a new election starts about an election timeout
    /// later; this node may win it again. Prefer `transfer_leadership` to pick a successor.
    pub fn step_down(&mut self) {
        if self.role == Role::Leader {
            tracing::debug!(id = self.cfg.id, term = self.term, "raft: stepping down");
            self.become_follower(self.term, None);
            self.check_invariants();
        }
    }
}
