//! The oplog: the ordered record of every write a replica set member applied, keyed by optime.
//!
//! An optime is MongoDB's `{ts, t}` pair: `t` is the election term of the primary that wrote the
//! entry and `ts` its position. MongoDB's `ts` is a `(seconds, increment)` timestamp; here it is
//! a plain counter (1, 2, 3, ...), so `ts` doubles as the entry's index. Optimes order by term
//! first, then `ts`, as MongoDB compares them.
//!
//! Only one primary writes in a term and it only appends, so two oplogs that hold an entry with
//! the same optime agree on everything before it. Rollback relies on that to find the common
//! point from each side's term boundaries alone.

use serde::{Deserialize, Serialize};

use super::document::Document;

/// MongoDB's optime: (term, timestamp). Field order gives the derived ordering: term first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OpTime {
    /// `t`: the term of the primary that wrote the entry.
    pub term: u64,
    /// `ts`: the entry's position in the oplog, from 1 (0 is "before everything").
    pub ts: u64,
}

impl OpTime {
    pub const ZERO: OpTime = OpTime { term: 0, ts: 0 };

    pub fn new(term: u64, ts: u64) -> Self {
        OpTime { term, ts }
    }
}

impl std::fmt::Display for OpTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{{t:{}, ts:{}}}", self.term, self.ts)
    }
}

/// One change to one document (MongoDB's oplog `op` kinds `n`, `i`/`u`, `d`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// `n`: a no-op, e.g. the "new primary" entry a primary writes when elected.
    Noop { msg: String },
    /// `i`/`u`: the document `id` of namespace `ns` becomes `doc`. Shared, not copied, with
    /// the store's version it becomes and every read that finds it.
    Put { ns: String, id: String, doc: Document },
    /// `d`: the document is removed.
    Delete { ns: String, id: String },
}

/// The fencing token a write carried, recorded so checkers can audit lock order.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Fence {
    pub lock: String,
    pub token: u64,
}

/// One oplog entry: every op in it applies atomically (like an `applyOps` entry).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OplogEntry {
    pub optime: OpTime,
    /// `wall`: the primary's wall clock when it wrote the entry (used for freshness checks).
    pub wall_ms: u64,
    pub ops: Vec<Op>,
    pub fence: Option<Fence>,
}

/// A member's oplog: entries with `ts` 1, 2, 3, ... and non-decreasing terms.
#[derive(Clone, Debug, Default)]
pub struct Oplog {
    entries: Vec<OplogEntry>,
}

impl Oplog {
    /// Rebuilds an oplog from entries read back from disk, stopping at the first entry that
    /// does not continue the sequence (a damaged record ends the usable log).
    pub fn from_entries(entries: impl IntoIterator<Item = OplogEntry>) -> Self {
        let mut log = Oplog::default();
        for e in entries {
            if !log.continues(&e) {
                break;
            }
            log.entries.push(e);
        }
        log
    }

    pub fn entries(&self) -> &[OplogEntry] {
        &self.entries
    }

    pub fn last(&self) -> OpTime {
        self.entries.last().map_or(OpTime::ZERO, |e| e.optime)
    }

    pub fn last_wall_ms(&self) -> u64 {
        self.entries.last().map_or(0, |e| e.wall_ms)
    }

    /// The term of the entry at `ts` (0 for ts 0), if this oplog reaches that far.
    pub fn term_at(&self, ts: u64) -> Option<u64> {
        if ts == 0 {
            return Some(0);
        }
        self.entries.get(ts as usize - 1).map(|e| e.optime.term)
    }

    /// True when this oplog holds exactly this optime (ZERO is always held).
    pub fn contains(&self, optime: OpTime) -> bool {
        self.term_at(optime.ts) == Some(optime.term)
    }

    /// Whether `e` can be appended next: the next `ts` and a term no lower than the last.
    pub fn continues(&self, e: &OplogEntry) -> bool {
        let last = self.last();
        e.optime.ts == last.ts + 1 && e.optime.term >= last.term
    }

    /// Appends `e`; the caller has checked [`Oplog::continues`].
    pub fn push(&mut self, e: OplogEntry) {
        assert!(self.continues(&e), "oplog entry {} does not follow {}", e.optime, self.last());
        self.entries.push(e);
    }

    /// Up to `max` entries after `ts`.
    pub fn after(&self, ts: u64, max: usize) -> &[OplogEntry] {
        let from = (ts as usize).min(self.entries.len());
        let to = (from + max).min(self.entries.len());
        &self.entries[from..to]
    }

    /// Removes and returns every entry after `ts` (the rolled-back suffix).
    pub fn truncate_after(&mut self, ts: u64) -> Vec<OplogEntry> {
        let keep = (ts as usize).min(self.entries.len());
        self.entries.split_off(keep)
    }

    /// The first optime of each term in this oplog: enough for a peer to know this oplog's
    /// term at every position.
    pub fn boundaries(&self) -> Vec<OpTime> {
        let mut out: Vec<OpTime> = Vec::new();
        for e in &self.entries {
            if out.last().is_none_or(|b| b.term != e.optime.term) {
                out.push(e.optime);
            }
        }
        out
    }

    /// The latest optime both this oplog and a remote one (given by its boundaries and last
    /// optime) hold: everything after it here diverged and must be rolled back.
    pub fn common_point(&self, remote_boundaries: &[OpTime], remote_last: OpTime) -> OpTime {
        let remote_term_at =
            |ts: u64| -> u64 { remote_boundaries.iter().rev().find(|b| b.ts <= ts).map_or(0, |b| b.term) };
        let mut ts = self.last().ts.min(remote_last.ts);
        while ts > 0 {
            let mine = self.term_at(ts).unwrap_or(0);
            if mine == remote_term_at(ts) {
                return OpTime::new(mine, ts);
            }
            ts -= 1;
        }
        OpTime::ZERO
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(term: u64, ts: u64) -> OplogEntry {
        OplogEntry { optime: OpTime::new(term, ts), wall_ms: ts, ops: vec![], fence: None }
    }

    fn log(terms: &[u64]) -> Oplog {
        Oplog::from_entries(terms.iter().enumerate().map(|(i, t)| entry(*t, i as u64 + 1)))
    }

    #[test]
    fn optimes_order_by_term_then_ts() {
        assert!(OpTime::new(2, 1) > OpTime::new(1, 50));
        assert!(OpTime::new(2, 3) > OpTime::new(2, 2));
    }

    #[test]
    fn boundaries_and_common_point_find_where_histories_split() {
        let old_primary = log(&[1, 1, 2, 2, 2, 2]);
        let new_primary = log(&[1, 1, 2, 2, 3]);
        assert_eq!(new_primary.boundaries(), vec![OpTime::new(1, 1), OpTime::new(2, 3), OpTime::new(3, 5)]);
        let common = old_primary.common_point(&new_primary.boundaries(), new_primary.last());
        assert_eq!(common, OpTime::new(2, 4));
        let fresh = Oplog::default();
        assert_eq!(fresh.common_point(&new_primary.boundaries(), new_primary.last()), OpTime::ZERO);
        let unrelated = log(&[4]);
        assert_eq!(unrelated.common_point(&new_primary.boundaries(), new_primary.last()), OpTime::ZERO);
    }

    #[test]
    fn from_entries_stops_at_a_gap_or_a_term_going_back() {
        let l = Oplog::from_entries(vec![entry(1, 1), entry(2, 2), entry(1, 3)]);
        assert_eq!(l.last(), OpTime::new(2, 2));
        let l = Oplog::from_entries(vec![entry(1, 1), entry(1, 3)]);
        assert_eq!(l.last(), OpTime::new(1, 1));
    }

    #[test]
    fn truncate_after_returns_the_suffix() {
        let mut l = log(&[1, 1, 2]);
        let removed = l.truncate_after(1);
        assert_eq!(removed.len(), 2);
        assert_eq!(l.last(), OpTime::new(1, 1));
        assert!(l.contains(OpTime::new(1, 1)) && !l.contains(OpTime::new(1, 2)));
        assert_eq!(l.after(0, 10).len(), 1);
    }
}
