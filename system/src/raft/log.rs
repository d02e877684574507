//! The in-memory replicated log plus the bookkeeping of what the caller has persisted
//! and applied.
//!
//! Entries are held contiguously from index 1. Everything outside this module goes
//! through the small API below, so log compaction (a snapshot index/term plus an
//! offset) could be added here without touching the protocol code.

use super::Entry;

#[derive(Clone, Debug)]
pub(super) struct RaftLog {
    /// `entries[i].index == i + 1`.
    entries: Vec<Entry>,
    committed: u64,
    /// Highest committed index already handed to the caller for applying.
    applied: u64,
    /// Lowest index that changed (appended or overwritten) since the last
    /// `take_unstable`; `None` when the caller's durable copy equals ours.
    unstable_from: Option<u64>,
    /// Last index of the caller's durable copy as of the last `take_unstable`.
    persisted_last: u64,
}

impl RaftLog {
    /// Restores a log from what the caller persisted. Panics on a malformed log:
    /// a gap, a wrong index or decreasing terms means the storage is corrupt.
    pub fn new(entries: Vec<Entry>, committed: u64, applied: u64) -> Self {
        for (i, e) in entries.iter().enumerate() {
            assert_eq!(e.index, i as u64 + 1, "persisted log is not contiguous from 1");
            assert!(e.term > 0, "entry {} has term 0", e.index);
            if i > 0 {
                assert!(e.term >= entries[i - 1].term, "terms decrease at {}", e.index);
            }
        }
        let last = entries.len() as u64;
        assert!(committed <= last, "hard state commit {committed} beyond persisted log end {last}");
        assert!(applied <= committed, "applied {applied} beyond commit {committed}");
        RaftLog { entries, committed, applied, unstable_from: None, persisted_last: last }
    }

    pub fn last_index(&self) -> u64 {
        self.entries.len() as u64
    }

    pub fn last_term(&self) -> u64 {
        self.entries.last().map_or(0, |e| e.term)
    }

    /// Term of the entry at `index`; `Some(0)` for the sentinel index 0, `None` past the end.
    pub fn term(&self, index: u64) -> Option<u64> {
        match index {
            0 => Some(0),
            i if i <= self.last_index() => Some(self.entries[i as usize - 1].term),
            _ => None,
        }
    }

    pub fn committed(&self) -> u64 {
        self.committed
    }

    pub fn all(&self) -> &[Entry] {
        &self.entries
    }

    /// Up to `max` entries starting at `lo` (empty when `lo` is past the end).
    pub fn slice_from(&self, lo: u64, max: usize) -> &[Entry] {
        assert!(lo >= 1, "slice from index 0");
        let start = (lo - 1) as usize;
        if start >= self.entries.len() {
            return &[];
        }
        let end = self.entries.len().min(start.saturating_add(max));
        &self.entries[start..end]
    }

    pub fn matches(&self, index: u64, term: u64) -> bool {
        self.term(index) == Some(term)
    }

    /// Raft §5.4.1: a candidate's log is at least as up-to-date as ours.
    pub fn is_up_to_date(&self, last_index: u64, last_term: u64) -> bool {
        last_term > self.last_term() || (last_term == self.last_term() && last_index >= self.last_index())
    }

    /// Largest index `<= index` whose term is `<= term` (0 if none). Entries above it
    /// have a newer term than `term`, so they cannot match a log whose entry at that
    /// position has `term`; this lets a leader skip a whole term per round trip.
    pub fn find_conflict_by_term(&self, index: u64, term: u64) -> u64 {
        let mut i = index.min(self.last_index());
        while i > 0 && self.term(i).expect("index within log") > term {
            i -= 1;
        }
        i
    }

    /// Leader-side append of a new entry at the end of the log.
    pub fn append(&mut self, entry: Entry) {
        assert_eq!(entry.index, self.last_index() + 1, "leader append not at log end");
        assert!(entry.term >= self.last_term(), "leader append with an older term");
        self.mark_unstable(entry.index);
        self.entries.push(entry);
    }

    /// Follower-side append after `(prev_index, prev_term)`. Returns `None` if our log
    /// does not contain that entry; otherwise keeps matching entries, truncates at the
    /// first conflict, appends the rest and returns the last index known to match the
    /// leader (`prev_index + entries.len()`, which can be below our last index).
    pub fn maybe_append(&mut self, prev_index: u64, prev_term: u64, entries: &[Entry]) -> Option<u64> {
        if !self.matches(prev_index, prev_term) {
            return None;
        }
        for (i, e) in entries.iter().enumerate() {
            assert_eq!(e.index, prev_index + 1 + i as u64, "append entries not contiguous");
        }
        let first_new = entries.iter().position(|e| !self.matches(e.index, e.term));
        if let Some(pos) = first_new {
            self.truncate_and_append(&entries[pos..]);
        }
        Some(prev_index + entries.len() as u64)
    }

    fn truncate_and_append(&mut self, entries: &[Entry]) {
        let first = entries[0].index;
        // Committed entries are on a majority and in every future leader's log; a
        // leader asking us to overwrite one means safety is already broken.
        assert!(first > self.committed, "truncating committed entry {first} (commit {})", self.committed);
        assert!(first <= self.last_index() + 1, "append leaves a gap at {first}");
        assert!(
            entries[0].term >= self.term(first - 1).expect("prev exists"),
            "overwriting with a term older than its predecessor"
        );
        self.entries.truncate(first as usize - 1);
        self.entries.extend_from_slice(entries);
        self.mark_unstable(first);
    }

    fn mark_unstable(&mut self, index: u64) {
        self.unstable_from = Some(self.unstable_from.map_or(index, |u| u.min(index)));
    }

    /// Commit index only moves forward; lower values are stale information.
    pub fn commit_to(&mut self, index: u64) {
        if index > self.committed {
            assert!(index <= self.last_index(), "commit {index} beyond last index {}", self.last_index());
            self.committed = index;
        }
    }

    pub fn has_unstable(&self) -> bool {
        self.unstable_from.is_some()
    }

    pub fn has_committed(&self) -> bool {
        self.committed > self.applied
    }

    /// What the caller must write: `(truncate_from, entries)`. Afterwards the caller's
    /// durable copy is assumed to equal ours.
    pub fn take_unstable(&mut self) -> (Option<u64>, Vec<Entry>) {
        let Some(from) = self.unstable_from.take() else {
            debug_assert_eq!(self.persisted_last, self.last_index());
            return (None, Vec::new());
        };
        let truncate = (from <= self.persisted_last).then_some(from);
        let entries = self.entries[from as usize - 1..].to_vec();
        self.persisted_last = self.last_index();
        (truncate, entries)
    }

    /// Newly committed entries, handed out once each and in order.
    pub fn take_committed(&mut self) -> Vec<Entry> {
        let out = self.entries[self.applied as usize..self.committed as usize].to_vec();
        self.applied = self.committed;
        out
    }
}
