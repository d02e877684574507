//! A sans-IO Raft consensus core, in the style of raft-rs / etcd-raft.
//!
//! The [`Raft`] state machine does no I/O and reads no clock: the caller drives it with
//! [`Raft::tick`] (abstract time), [`Raft::step`] (an inbound [`Message`]) and
//! [`Raft::propose`], then drains the resulting work with [`Raft::ready`]. Everything
//! random (election-timeout jitter) comes from a `ChaCha8Rng` seeded by the caller, so a
//! run is a pure function of its inputs.
//!
//! # Driving it
//!
//! After every `tick`/`step`/`propose` (or a batch of them) the caller takes a [`Ready`]
//! and handles it **in this order**:
//!
//! 1. persist: drop log entries with index `>= truncate_from`, append `entries`, write
//!    `hard_state` — entries before hard state, or both atomically — and fsync;
//! 2. send `messages` (the network may drop, delay, duplicate or reorder them);
//! 3. apply `committed` to the state machine, in order.
//!
//! `ready()` assumes the caller completes the Ready: there is no separate `advance`.
//! A crash before step 1 finishes simply loses that Ready; on restart the caller passes
//! whatever reached disk to [`Raft::new`].
//!
//! # Time
//!
//! Ticks are abstract; the caller picks the tick length. With one tick per second,
//! MongoDB's `heartbeatIntervalMillis: 2000` / `electionTimeoutMillis: 10000` become
//! `heartbeat_ticks: 2` / `election_timeout_ticks: 10`, the [`Config::new`] defaults.
//! A follower's election timer restarts only when it hears from the leader, grants a
//! vote or campaigns; merely seeing a newer term does not, so a candidate that cannot
//! win does not keep postponing the nodes that can (Raft §5.2).
//!
//! # What it implements
//!
//! * Leader election with randomized timeouts in `[t, 2t)`, one vote per term, the
//!   "at least as up-to-date" log check, and optional **pre-vote** (thesis §9.6) so a
//!   node coming back from a partition cannot depose a healthy leader.
//! * A **leader lease** on the voter side (when `pre_vote` or `check_quorum` is on): a node
//!   that heard from a leader within the last election timeout ignores vote requests
//!   from other nodes, unless the request comes from a leadership transfer.
//! * **check_quorum**: a leader that has not heard from a majority within an election
//!   timeout steps down, so clients stop talking to a partitioned leader.
//! * Log replication with probe/pipelined (replicate) per-follower progress, conflict
//!   truncation on followers, and fast backtracking through a `(hint_index, hint_term)`
//!   pair in rejections (etcd's `findConflictByTerm`).
//! * Commitment by counting replicas of entries **of the current term only** (Figure 8
//!   of the Raft paper). A new leader appends an empty no-op entry so earlier-term
//!   entries become committable; it reaches the caller as a committed entry with empty
//!   `data`.
//! * **Priorities**: a node with `priority == 0` never campaigns (MongoDB's priority-0
//!   member). Higher-priority takeover is left to the caller: a leader that sees a
//!   higher-priority member caught up (see [`Raft::match_index`]) calls
//!   [`Raft::transfer_leadership`]; [`Raft::step_down`] is the blunt alternative.
//! * Restart: `term`/`voted_for`/`commit` and the log are restored from what was
//!   persisted, so a restarted node never votes twice in a term nor forgets entries it
//!   acknowledged.
//!
//! # What it leaves out
//!
//! Membership changes (the voter set is fixed at construction), learners, log compaction
//! and snapshots (the log lives behind the small `log.rs` module API so they can be added),
//! ReadIndex / lease reads, flow control beyond `max_entries_per_msg`, and batching of
//! proposals. Messages from nodes outside the voter set are ignored.

mod leader;
mod log;
mod message;
mod node;
mod progress;
mod quorum;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

pub use message::Message;
pub use node::Raft;

/// Identifies a voter. Must be unique within a cluster.
pub type NodeId = u64;

/// One log entry. Index 0 is a virtual sentinel of term 0 and never stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub term: u64,
    pub index: u64,
    /// Opaque command. Empty for the no-op a new leader appends: callers that never
    /// propose empty commands can skip committed entries with empty `data`.
    pub data: Vec<u8>,
}

impl Entry {
    /// True for a leader's election no-op (or any empty proposal).
    pub fn is_noop(&self) -> bool {
        self.data.is_empty()
    }
}

/// The state that must survive a crash, besides the log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    pub term: u64,
    pub voted_for: Option<NodeId>,
    pub commit: u64,
}

/// Static configuration of one node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    pub id: NodeId,
    /// All voters, including `id`. Fixed for the life of the cluster.
    pub voters: Vec<NodeId>,
    /// Base election timeout; each follower/candidate waits a random number of ticks
    /// in `[t, 2t)`. A leader uses `t` itself as its check-quorum period.
    pub election_timeout_ticks: u32,
    /// A leader sends heartbeats every this many ticks. Should be well below the
    /// election timeout.
    pub heartbeat_ticks: u32,
    /// 0 = never stands for election (still votes and replicates).
    pub priority: u32,
    /// Leader steps down when it has not heard from a majority within an election timeout.
    pub check_quorum: bool,
    /// Run a pre-vote round (which does not bump terms) before a real election.
    pub pre_vote: bool,
    /// Upper bound on entries carried by one `Append`. Must be at least 1.
    pub max_entries_per_msg: usize,
    /// Committed entries up to this index were already applied by the caller and are not
    /// handed out again after a restart. 0 replays the whole committed log, which is what
    /// an in-memory state machine rebuilt after a crash wants.
    pub applied: u64,
}

impl Config {
    /// A config with simulation-friendly defaults: election timeout 10 ticks,
    /// heartbeat 2 ticks (the 10000 ms / 2000 ms MongoDB ratio), priority 1,
    /// check-quorum and pre-vote on, 64 entries per message.
    pub fn new(id: NodeId, voters: Vec<NodeId>) -> Self {
        Config {
            id,
            voters,
            election_timeout_ticks: 10,
            heartbeat_ticks: 2,
            priority: 1,
            check_quorum: true,
            pre_vote: true,
            max_entries_per_msg: 64,
            applied: 0,
        }
    }
}

/// The role a node currently plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    Follower,
    /// Polling peers with pre-votes; the term has not been bumped yet.
    PreCandidate,
    Candidate,
    Leader,
}

/// Work produced by the state machine for the caller; see the module docs for the
/// order in which it must be handled.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ready {
    /// Changed since the last Ready: persist it.
    pub hard_state: Option<HardState>,
    /// Drop persisted log entries with index `>= truncate_from` before appending.
    pub truncate_from: Option<u64>,
    /// Append and fsync BEFORE sending `messages`.
    pub entries: Vec<Entry>,
    pub messages: Vec<(NodeId, Message)>,
    /// Newly committed entries, contiguous and in index order; apply them after
    /// persisting. No-ops have empty `data`.
    pub committed: Vec<Entry>,
}

impl Ready {
    pub fn is_empty(&self) -> bool {
        self.hard_state.is_none()
            && self.truncate_from.is_none()
            && self.entries.is_empty()
            && self.messages.is_empty()
            && self.committed.is_empty()
    }
}

/// `propose` or `transfer_leadership` on a node that is not (or no longer acting as) the
/// leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not the leader (leader hint: {leader_hint:?})")]
pub struct NotLeader {
    /// Where the client should retry, if known.
    pub leader_hint: Option<NodeId>,
}
