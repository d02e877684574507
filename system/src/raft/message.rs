//! The wire messages exchanged between Raft nodes.

use serde::{Deserialize, Serialize};

use super::Entry;

/// A Raft RPC. Every message carries the sender's term; the receiver uses it to
/// discover newer terms and to drop stale traffic. There are no separate heartbeat
/// messages: a heartbeat is an `Append` that may carry no entries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Ask for a vote. For a pre-vote, `term` is the term the sender *would* campaign in
    /// (its own term + 1); nobody changes term because of a pre-vote.
    RequestVote {
        term: u64,
        last_log_index: u64,
        last_log_term: u64,
        pre_vote: bool,
        /// Sent on the leader's behalf (after `TimeoutNow`): voters skip their leader
        /// lease, since the current leader asked for this election.
        leader_transfer: bool,
    },
    /// Answer to `RequestVote`. A granted pre-vote echoes the request's (future) term; a
    /// refusal carries the voter's own term so a stale candidate can catch up.
    Vote { term: u64, granted: bool, pre_vote: bool },
    /// Replicate `entries` (possibly none: a heartbeat) after `(prev_index, prev_term)`.
    Append { term: u64, prev_index: u64, prev_term: u64, entries: Vec<Entry>, leader_commit: u64 },
    /// Answer to `Append`.
    ///
    /// On success `index` is the highest index known to match the leader's log
    /// (`prev_index + entries.len()`). On rejection `index` is the rejected `prev_index`,
    /// and `(hint_index, hint_term)` is the follower's last entry that may still match:
    /// the largest index `<= prev_index` whose term is `<= prev_term`.
    ///
    /// `damaged`: the sender is repairing a damaged log (see [`super::Raft::mark_damaged`]).
    /// Its answer moves the leader's replication to it forward but is not an acknowledgement:
    /// it never counts towards commitment.
    AppendResp { term: u64, success: bool, index: u64, hint_index: u64, hint_term: u64, damaged: bool },
    /// Leadership transfer: the leader tells an up-to-date follower to campaign now.
    TimeoutNow { term: u64 },
}

impl Message {
    /// The sender's term (the prospective term for a pre-vote request).
    pub fn term(&self) -> u64 {
        match self {
            Message::RequestVote { term, .. }
            | Message::Vote { term, .. }
            | Message::Append { term, .. }
            | Message::AppendResp { term, .. }
            | Message::TimeoutNow { term } => *term,
        }
    }

    /// True for messages only a leader sends; they identify the sender as the leader
    /// of `term`.
    pub fn is_from_leader(&self) -> bool {
        matches!(self, Message::Append { .. } | Message::TimeoutNow { .. })
    }
}
