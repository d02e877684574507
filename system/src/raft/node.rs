//! The Raft state machine: construction, timers, elections and the follower side of
//! replication. The leader side lives in `leader.rs`.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::log::RaftLog;
use super::message::Message;
use super::progress::Progress;
use super::quorum::{self, VoteResult};
use super::{Config, Entry, HardState, NodeId, Ready, Role};

/// A pending leadership transfer.
#[derive(Clone, Copy, Debug)]
pub(super) struct Transfer {
    pub to: NodeId,
    pub elapsed: u32,
}

/// One Raft node. See the module docs for how to drive it.
pub struct Raft {
    pub(super) cfg: Config,
    pub(super) term: u64,
    pub(super) voted_for: Option<NodeId>,
    pub(super) role: Role,
    pub(super) leader: Option<NodeId>,
    pub(super) log: RaftLog,
    rng: ChaCha8Rng,
    /// Ticks since we last heard from a leader or granted a vote (follower), since the
    /// campaign started (candidates), or since the last check-quorum (leader).
    pub(super) election_elapsed: u32,
    pub(super) heartbeat_elapsed: u32,
    randomized_timeout: u32,
    /// Votes received in the current (pre-)campaign, including our own.
    votes: BTreeMap<NodeId, bool>,
    /// Leader only: per-voter replication state, including our own entry.
    pub(super) progress: BTreeMap<NodeId, Progress>,
    pub(super) transfer: Option<Transfer>,
    pub(super) msgs: Vec<(NodeId, Message)>,
    /// The hard state as of the last `ready()`, to detect changes.
    last_hard_state: HardState,
    /// The log lost records it had synced (see [`Raft::mark_damaged`]): no votes, no
    /// campaigns, no acknowledgements until a leader's committed entry of its own term is here.
    damaged: bool,
    /// Appends whose entry at a matching index carried another term (see
    /// [`Raft::term_mismatches`]).
    term_mismatches: u64,
}

impl Raft {
    /// Builds a node from its configuration and what survived on disk: the last
    /// persisted hard state and the persisted log (contiguous from index 1).
    /// Panics on an inconsistent config or storage.
    pub fn new(config: Config, hard_state: HardState, log: Vec<Entry>, rng_seed: u64) -> Self {
        validate_config(&config);
        let log = RaftLog::new(log, hard_state.commit, config.applied);
        if let Some(v) = hard_state.voted_for {
            assert!(config.voters.contains(&v), "voted for unknown node {v}");
        }
        // Entries are persisted before the hard state, so a crash in between can leave
        // an entry newer than the term. No vote or ack for that term ever left the node
        // (messages go out after persisting), so adopting the term without a vote is safe.
        let (term, voted_for) = if log.last_term() > hard_state.term {
            (log.last_term(), None)
        } else {
            (hard_state.term, hard_state.voted_for)
        };
        let mut raft = Raft {
            cfg: config,
            term,
            voted_for,
            role: Role::Follower,
            leader: None,
            log,
            rng: ChaCha8Rng::seed_from_u64(rng_seed),
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            randomized_timeout: 0,
            votes: BTreeMap::new(),
            progress: BTreeMap::new(),
            transfer: None,
            msgs: Vec::new(),
            last_hard_state: hard_state,
            damaged: false,
            term_mismatches: 0,
        };
        raft.reset_election_timer();
        raft.check_invariants();
        raft
    }

    // ---- accessors -------------------------------------------------------------

    pub fn id(&self) -> NodeId {
        self.cfg.id
    }
    pub fn role(&self) -> Role {
        self.role
    }
    pub fn term(&self) -> u64 {
        self.term
    }
    /// The leader of the current term, if known (ourselves when leading).
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }
    pub fn commit_index(&self) -> u64 {
        self.log.committed()
    }
    pub fn last_index(&self) -> u64 {
        self.log.last_index()
    }
    pub fn last_term(&self) -> u64 {
        self.log.last_term()
    }
    /// The whole in-memory log, index 1 first (including entries not yet handed out
    /// for persistence).
    pub fn log(&self) -> &[Entry] {
        self.log.all()
    }
    pub fn config(&self) -> &Config {
        &self.cfg
    }
    pub fn hard_state(&self) -> HardState {
        HardState { term: self.term, voted_for: self.voted_for, commit: self.log.committed() }
    }
    /// Leader only: the highest index known to be replicated on `peer`.
    pub fn match_index(&self, peer: NodeId) -> Option<u64> {
        self.progress.get(&peer).map(|p| p.matched)
    }
    /// Whether this node may campaign (a voter with nonzero priority and an undamaged log).
    pub fn is_promotable(&self) -> bool {
        self.cfg.priority > 0 && self.cfg.voters.contains(&self.cfg.id) && !self.damaged
    }

    /// Declares that this node's storage lost records it had synced (a checksum failure inside
    /// the synced part of the log, an unreadable hard state, a wiped disk). What it voted for or
    /// acknowledged before may be gone, so until it is repaired it grants no vote (pre-votes
    /// included), never campaigns, and its answers to the leader are marked `damaged` so they
    /// never count towards commitment. It is repaired once its log holds, from the current
    /// leader, an entry the leader committed in its own term: by the Log Matching property it
    /// then holds every entry committed before, which includes whatever it had acknowledged
    /// and lost (such an entry was committed, or it was never promised). Call it right after
    /// [`Raft::new`], before anything is stepped.
    pub fn mark_damaged(&mut self) {
        self.damaged = true;
        if self.role == Role::Leader {
            self.become_follower(self.term, None);
        }
    }

    pub fn is_damaged(&self) -> bool {
        self.damaged
    }

    /// How many `Append`s found this node's log holding the leader's index with another term
    /// (the consistency check failed there, or a conflicting suffix was truncated): the moment
    /// where a deposed leader's uncommitted tail is thrown away. Counts up for the life of the
    /// node, so the caller can report each new one.
    pub fn term_mismatches(&self) -> u64 {
        self.term_mismatches
    }

    // ---- Ready -----------------------------------------------------------------

    pub fn has_ready(&self) -> bool {
        !self.msgs.is_empty()
            || self.hard_state() != self.last_hard_state
            || self.log.has_unstable()
            || self.log.has_committed()
    }

    /// Takes all pending work. The caller must persist, then send, then apply (see the
    /// module docs) before feeding the node anything else that depends on it.
    pub fn ready(&mut self) -> Ready {
        let hs = self.hard_state();
        let hard_state = (hs != self.last_hard_state).then(|| {
            check_hard_state_transition(&self.last_hard_state, &hs);
            self.last_hard_state = hs;
            hs
        });
        let (truncate_from, entries) = self.log.take_unstable();
        let committed = self.log.take_committed();
        Ready { hard_state, truncate_from, entries, messages: std::mem::take(&mut self.msgs), committed }
    }

    // ---- timers ----------------------------------------------------------------

    /// Advances abstract time by one tick.
    pub fn tick(&mut self) {
        match self.role {
            Role::Leader => self.tick_leader(),
            _ => self.tick_election(),
        }
        self.check_invariants();
    }

    fn tick_election(&mut self) {
        self.election_elapsed = self.election_elapsed.saturating_add(1);
        if self.election_elapsed >= self.randomized_timeout && self.is_promotable() {
            self.campaign();
        }
    }

    pub(super) fn reset_election_timer(&mut self) {
        let t = self.cfg.election_timeout_ticks;
        self.election_elapsed = 0;
        self.randomized_timeout = self.rng.gen_range(t..t.saturating_mul(2).max(t + 1));
    }

    /// Voter-side lease (thesis §9.6): having heard from a leader within the minimum
    /// election timeout, refuse to help unseat it. This is what keeps a node returning
    /// from a partition from disrupting a healthy cluster.
    fn in_lease(&self) -> bool {
        (self.cfg.check_quorum || self.cfg.pre_vote)
            && self.leader.is_some()
            && self.election_elapsed < self.cfg.election_timeout_ticks
    }

    // ---- role transitions ------------------------------------------------------

    pub(super) fn become_follower(&mut self, term: u64, leader: Option<NodeId>) {
        assert!(term >= self.term, "term going backwards: {} -> {term}", self.term);
        if term > self.term {
            self.term = term;
            self.voted_for = None;
        }
        if self.role != Role::Follower || self.leader != leader {
            tracing::debug!(id = self.cfg.id, term, ?leader, "raft: follower");
        }
        // Only news from a leader (or our own leadership ending) restarts the timer. A
        // newer term seen in a vote request must not: a candidate that cannot win would
        // otherwise keep postponing the elections of nodes that can (Raft §5.2).
        if leader.is_some() || self.role == Role::Leader {
            self.reset_election_timer();
        }
        self.role = Role::Follower;
        self.leader = leader;
        self.progress.clear();
        self.votes.clear();
        self.transfer = None;
    }

    /// Starts an election now (after a pre-vote round if configured). No-op for a
    /// leader or a node that may not campaign (priority 0).
    pub fn campaign(&mut self) {
        if self.role != Role::Leader && self.is_promotable() {
            self.start_campaign(self.cfg.pre_vote, false);
        }
    }

    fn start_campaign(&mut self, pre_vote: bool, leader_transfer: bool) {
        let term = if pre_vote {
            self.role = Role::PreCandidate;
            self.term + 1
        } else {
            self.term += 1;
            self.voted_for = Some(self.cfg.id);
            self.role = Role::Candidate;
            self.term
        };
        tracing::debug!(id = self.cfg.id, term, ?self.role, "raft: campaign");
        self.leader = None;
        self.reset_election_timer();
        self.votes.clear();
        self.votes.insert(self.cfg.id, true);
        let (last_log_index, last_log_term) = (self.log.last_index(), self.log.last_term());
        for to in self.peers() {
            let msg = Message::RequestVote { term, last_log_index, last_log_term, pre_vote, leader_transfer };
            self.send(to, msg);
        }
        self.check_election_result();
    }

    fn check_election_result(&mut self) {
        match quorum::tally(&self.votes, self.cfg.voters.len()) {
            VoteResult::Won if self.role == Role::PreCandidate => self.start_campaign(false, false),
            VoteResult::Won => self.become_leader(),
            VoteResult::Lost => self.become_follower(self.term, None),
            VoteResult::Pending => {}
        }
    }

    // ---- message handling --------------------------------------------------------

    /// Feeds one inbound message from `from`.
    pub fn step(&mut self, from: NodeId, msg: Message) {
        if from == self.cfg.id || !self.cfg.voters.contains(&from) {
            tracing::trace!(id = self.cfg.id, from, "raft: message from a non-voter dropped");
            return;
        }
        let mterm = msg.term();
        if mterm > self.term && !self.observe_higher_term(from, &msg) {
            return;
        }
        if mterm < self.term {
            self.reply_stale(from, &msg);
            return;
        }
        self.dispatch(from, msg);
        self.check_invariants();
    }

    /// Handles a message carrying a newer term. Returns false if it must be ignored.
    fn observe_higher_term(&mut self, from: NodeId, msg: &Message) -> bool {
        match *msg {
            Message::RequestVote { leader_transfer, .. } if !leader_transfer && self.in_lease() => {
                tracing::trace!(id = self.cfg.id, from, "raft: vote request ignored, leader lease");
                return false;
            }
            // A pre-vote request does not change anybody's term ...
            Message::RequestVote { pre_vote: true, .. } => {}
            // ... and a granted pre-vote echoes the term we are about to campaign in.
            Message::Vote { pre_vote: true, granted: true, .. } => {}
            ref m if m.is_from_leader() => self.become_follower(m.term(), Some(from)),
            ref m => self.become_follower(m.term(), None),
        }
        true
    }

    /// A message from an older term: tell the sender our term so a deposed leader or
    /// stale candidate steps down; ignore stale responses.
    fn reply_stale(&mut self, from: NodeId, msg: &Message) {
        let term = self.term;
        match *msg {
            Message::Append { .. } | Message::TimeoutNow { .. } => {
                let damaged = self.damaged;
                let resp = Message::AppendResp { term, success: false, index: 0, hint_index: 0, hint_term: 0, damaged };
                self.send(from, resp);
            }
            Message::RequestVote { pre_vote, .. } => self.send(from, Message::Vote { term, granted: false, pre_vote }),
            Message::Vote { .. } | Message::AppendResp { .. } => {}
        }
    }

    fn dispatch(&mut self, from: NodeId, msg: Message) {
        match msg {
            Message::RequestVote { term, last_log_index, last_log_term, pre_vote, .. } => {
                self.handle_request_vote(from, term, last_log_index, last_log_term, pre_vote)
            }
            Message::Vote { granted, pre_vote, term } => self.handle_vote(from, term, granted, pre_vote),
            Message::Append { prev_index, prev_term, entries, leader_commit, .. } => {
                if self.role == Role::Leader {
                    panic!("node {} got Append from {from} while leading term {}: two leaders", self.cfg.id, self.term);
                }
                if let Some(l) = self.leader {
                    assert_eq!(l, from, "node {}: two leaders in term {}", self.cfg.id, self.term);
                }
                if self.role != Role::Follower || self.leader != Some(from) {
                    self.become_follower(self.term, Some(from));
                }
                self.handle_append(from, prev_index, prev_term, &entries, leader_commit);
            }
            Message::AppendResp { success, index, hint_index, hint_term, damaged, .. } => {
                if self.role == Role::Leader {
                    self.handle_append_resp(from, success, index, hint_index, hint_term, damaged);
                }
            }
            Message::TimeoutNow { .. } => {
                if self.role == Role::Follower && self.is_promotable() {
                    tracing::debug!(id = self.cfg.id, from, "raft: leadership transferred to us");
                    self.start_campaign(false, true);
                }
            }
        }
    }

    fn handle_request_vote(&mut self, from: NodeId, mterm: u64, last_index: u64, last_term: u64, pre_vote: bool) {
        let can_vote = if pre_vote {
            // A pre-vote is a hypothetical question about a future term.
            mterm > self.term
        } else {
            debug_assert_eq!(mterm, self.term);
            self.voted_for == Some(from) || (self.voted_for.is_none() && self.leader.is_none())
        };
        // A damaged log may have lost what made another candidate's log less up to date.
        let granted = can_vote && !self.damaged && self.log.is_up_to_date(last_index, last_term);
        if granted && !pre_vote {
            self.voted_for = Some(from);
            // Granting a vote is a reason to wait for that candidate rather than compete.
            self.reset_election_timer();
        }
        let term = if granted && pre_vote { mterm } else { self.term };
        self.send(from, Message::Vote { term, granted, pre_vote });
    }

    fn handle_vote(&mut self, from: NodeId, mterm: u64, granted: bool, pre_vote: bool) {
        let expected = match self.role {
            Role::PreCandidate if pre_vote => self.term + u64::from(granted),
            Role::Candidate if !pre_vote => self.term,
            _ => return, // a late answer to an election we are no longer running
        };
        if mterm != expected {
            return;
        }
        self.votes.insert(from, granted);
        self.check_election_result();
    }

    fn handle_append(&mut self, from: NodeId, prev_index: u64, prev_term: u64, entries: &[Entry], leader_commit: u64) {
        // The leader is alive; keep the current randomized timeout, just restart it.
        self.election_elapsed = 0;
        let term = self.term;
        if self.mismatches_at_matching_index(prev_index, prev_term, entries) {
            self.term_mismatches += 1;
        }
        let damaged = self.damaged;
        let resp = match self.log.maybe_append(prev_index, prev_term, entries) {
            Some(last_new) => {
                // Only what is known to match the leader may be committed: entries past
                // `last_new` could still be a stale tail from an older term.
                self.log.commit_to(leader_commit.min(last_new));
                if damaged && leader_commit <= last_new && self.log.term(leader_commit) == Some(term) {
                    self.repaired(from);
                }
                Message::AppendResp { term, success: true, index: last_new, hint_index: 0, hint_term: 0, damaged }
            }
            None => {
                let hint_index = self.log.find_conflict_by_term(prev_index, prev_term);
                let hint_term = self.log.term(hint_index).expect("hint within log");
                Message::AppendResp { term, success: false, index: prev_index, hint_index, hint_term, damaged }
            }
        };
        self.send(from, resp);
    }

    /// Whether our log holds an index of this `Append` (its `prev_index` or one of its
    /// entries) with a different term than the leader's.
    fn mismatches_at_matching_index(&self, prev_index: u64, prev_term: u64, entries: &[Entry]) -> bool {
        let differs = |index: u64, term: u64| self.log.term(index).is_some_and(|t| t != term);
        if differs(prev_index, prev_term) {
            return true;
        }
        self.log.matches(prev_index, prev_term) && entries.iter().any(|e| differs(e.index, e.term))
    }

    /// The log now holds an entry `leader` committed in its term: the damage is repaired. The
    /// vote this node may have cast in this term was lost with the damage; it counts as cast for
    /// the leader, so it is never given to anyone else.
    fn repaired(&mut self, leader: NodeId) {
        tracing::debug!(id = self.cfg.id, term = self.term, "raft: damaged log repaired");
        self.damaged = false;
        if self.voted_for.is_none() {
            self.voted_for = Some(leader);
        }
    }

    // ---- helpers -------------------------------------------------------------------

    pub(super) fn send(&mut self, to: NodeId, msg: Message) {
        debug_assert_ne!(to, self.cfg.id, "sending to self");
        self.msgs.push((to, msg));
    }

    pub(super) fn take_votes(&mut self) -> BTreeMap<NodeId, bool> {
        std::mem::take(&mut self.votes)
    }

    pub(super) fn peers(&self) -> Vec<NodeId> {
        self.cfg.voters.iter().copied().filter(|&v| v != self.cfg.id).collect()
    }

    /// Cheap structural invariants, checked after every input.
    pub(super) fn check_invariants(&self) {
        let id = self.cfg.id;
        assert!(self.log.committed() <= self.log.last_index(), "node {id}: commit beyond log end");
        assert!(self.log.last_term() <= self.term, "node {id}: log term {} > term {}", self.log.last_term(), self.term);
        match self.role {
            Role::Leader => {
                assert_eq!(self.leader, Some(id), "node {id}: leader does not know itself");
                assert_eq!(self.voted_for, Some(id), "node {id}: leader did not vote for itself");
                debug_assert_eq!(self.progress[&id].matched, self.log.last_index(), "node {id}: own progress");
            }
            Role::Candidate => assert_eq!(self.voted_for, Some(id), "node {id}: candidate did not vote for itself"),
            Role::PreCandidate => assert!(self.leader.is_none(), "node {id}: pre-candidate with a leader"),
            Role::Follower => assert!(self.progress.is_empty(), "node {id}: follower with progress"),
        }
        if let Some(l) = self.leader {
            debug_assert!(l == id || self.role == Role::Follower, "node {id}: knows leader {l} but is {:?}", self.role);
        }
    }
}

fn validate_config(c: &Config) {
    assert!(c.voters.contains(&c.id), "voters must include this node ({})", c.id);
    let mut sorted = c.voters.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), c.voters.len(), "duplicate voter ids");
    assert!(c.election_timeout_ticks >= 1, "election timeout must be at least one tick");
    assert!(c.heartbeat_ticks >= 1, "heartbeat interval must be at least one tick");
    assert!(c.max_entries_per_msg >= 1, "max_entries_per_msg must be at least 1");
}

/// Persisted hard state may only move forward: a node votes at most once per term and
/// never un-commits.
fn check_hard_state_transition(old: &HardState, new: &HardState) {
    assert!(new.term >= old.term, "term decreased: {old:?} -> {new:?}");
    if new.term == old.term && old.voted_for.is_some() {
        assert_eq!(new.voted_for, old.voted_for, "changed vote within a term");
    }
    assert!(new.commit >= old.commit, "commit decreased: {old:?} -> {new:?}");
}
