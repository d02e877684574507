//! What a leader knows about each follower's log.

/// How the leader feeds a follower.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ProgressState {
    /// The match point is unknown: send one `Append` at a time and wait for the answer
    /// (or the next heartbeat) before trying again.
    Probe,
    /// The follower's log matches up to `matched`: stream entries optimistically,
    /// advancing `next` on send.
    Replicate,
}

#[derive(Clone, Debug)]
pub(super) struct Progress {
    /// Highest index known to be replicated on the follower (persisted there).
    pub matched: u64,
    /// Next index to send.
    pub next: u64,
    pub state: ProgressState,
    /// In `Probe`, an `Append` is outstanding.
    pub probe_sent: bool,
    /// Heard from this node during the current check-quorum period.
    pub recent_active: bool,
    /// Its last answer said it is repairing a damaged log: its `matched` does not count
    /// towards commitment.
    pub damaged: bool,
}

impl Progress {
    pub fn new(next: u64) -> Self {
        Progress {
            matched: 0,
            next,
            state: ProgressState::Probe,
            probe_sent: false,
            recent_active: false,
            damaged: false,
        }
    }

    pub fn paused(&self) -> bool {
        self.state == ProgressState::Probe && self.probe_sent
    }

    /// A successful `AppendResp` for `index`. Returns whether `matched` advanced.
    pub fn maybe_update(&mut self, index: u64) -> bool {
        self.probe_sent = false;
        self.next = self.next.max(index + 1);
        if index > self.matched {
            self.matched = index;
            return true;
        }
        false
    }

    pub fn become_replicate(&mut self) {
        self.state = ProgressState::Replicate;
        self.probe_sent = false;
        self.next = self.matched + 1;
    }

    pub fn become_probe(&mut self) {
        self.state = ProgressState::Probe;
        self.probe_sent = false;
    }

    /// A rejection of `Append{prev_index: rejected}` whose follower-side hint, resolved
    /// against the leader's log, is `match_hint`. Returns false for a stale rejection
    /// (one that does not answer the latest probe, or predates what we know matches).
    pub fn maybe_decrease_to(&mut self, rejected: u64, match_hint: u64) -> bool {
        let stale = match self.state {
            ProgressState::Replicate => rejected <= self.matched,
            ProgressState::Probe => rejected + 1 != self.next,
        };
        if stale {
            return false;
        }
        // Never below what is known to match; never above the rejected position.
        self.next = rejected.min(match_hint + 1).max(self.matched + 1);
        self.probe_sent = false;
        debug_assert!(self.next > self.matched, "next {} <= matched {}", self.next, self.matched);
        true
    }
}
