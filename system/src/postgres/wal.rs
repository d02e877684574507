//! The write-ahead log: checksummed records on the node's disk, timelines, and the rewind point.
//!
//! A record's position is its index (PostgreSQL's LSN, counted in records rather than bytes),
//! and every record carries the epoch (PostgreSQL's timeline ID) of the primary that wrote it.
//! A new primary starts its timeline with a `Promote` record (PostgreSQL's end-of-recovery
//! record); the `Promote` records of a log are therefore its timeline history (the `.history`
//! file). Within one epoch only one primary ever writes, so two logs that hold a record with the
//! same index and epoch agree on everything before it (Raft's log matching property): a standby
//! compares its log with the primary's history and cuts everything after the last agreeing
//! record, which is what `pg_rewind` achieves.
//!
//! On disk the log is a sequence of segment files (`pg.wal.00000001`, ...; PostgreSQL's are
//! 16 MiB, these [`SEGMENT_BYTES`]), each a run of [`sim::disk::records`] frames; a record never
//! spans two segments. Loading stops at the first frame that is torn (an unsynced append cut by a
//! crash) or corrupt (checksum mismatch), or at a missing segment, and reports which: nothing
//! after a bad frame is ever applied.

use std::io;

use serde::{Deserialize, Serialize};
use sim::disk::records::{self, Tail};
use sim::disk::Disk;

use super::data::{Tables, Write};

/// WAL segment files are named this, then an 8-digit segment number from 1.
pub const WAL_PREFIX: &str = "pg.wal.";
/// A segment is closed once it reaches this size (small, so that an fsync, which the simulated
/// disk implements by copying the file, stays cheap).
pub const SEGMENT_BYTES: u64 = 32 * 1024;

pub fn segment_file(segment: u64) -> String {
    format!("{WAL_PREFIX}{segment:08}")
}

/// Every WAL segment on `disk`, by number, in order.
pub fn read_segments(disk: &Disk) -> io::Result<Vec<(u64, Vec<u8>)>> {
    let mut out = Vec::new();
    for name in disk.list()? {
        let Some(n) = name.strip_prefix(WAL_PREFIX).and_then(|n| n.parse::<u64>().ok()) else { continue };
        out.push((n, disk.read(&name)?));
    }
    out.sort_by_key(|(n, _)| *n);
    Ok(out)
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Body {
    /// First record of timeline `epoch` (epoch 1: the cluster's bootstrap).
    Promote,
    Commit {
        txn: String,
        writes: Vec<Write>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalRecord {
    pub index: u64,
    pub epoch: u64,
    /// The primary's wall clock when it wrote the record (commit timestamps drive PITR, as
    /// `recovery_target_time` does, so a skewed primary clock skews restores too).
    pub commit_wall_ms: u64,
    pub body: Body,
}

/// A log position: the epoch of the last record and its index. Ordered as Raft orders logs
/// (epoch first), which is how the failover manager finds the most advanced member.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Position {
    pub epoch: u64,
    pub index: u64,
}

/// A timeline history: `(epoch, index of its Promote record)`, ascending.
pub type History = Vec<(u64, u64)>;

/// The epoch that `history` says wrote `index` (0 before the first timeline).
pub fn epoch_at(history: &[(u64, u64)], index: u64) -> u64 {
    history.iter().rev().find(|(_, start)| *start <= index).map_or(0, |(e, _)| *e)
}

/// What loading found after the last good record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum LoadTail {
    Clean,
    /// An unsynced append cut by a crash: expected, nothing acknowledged is lost.
    Torn,
    /// A checksum mismatch or an unreadable record: synced data may be gone from this node.
    Corrupt,
}

/// The result of reading the WAL segments.
#[derive(Debug)]
pub struct Loaded {
    pub wal: Wal,
    pub tail: LoadTail,
    /// Bytes past the last good record, to cut.
    pub cut_bytes: u64,
}

/// Where a record ends: its segment and the byte offset after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct End {
    segment: u64,
    offset: u64,
}

/// How to cut the files down to a prefix of the log: truncate one segment, remove the rest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cut {
    pub truncate: Option<(String, u64)>,
    pub remove: Vec<String>,
}

/// The log in memory: records in index order (index `i` at position `i - 1`) and where each
/// record ends on disk.
#[derive(Clone, Debug, Default)]
pub struct Wal {
    records: Vec<WalRecord>,
    ends: Vec<End>,
    /// Every segment number present on disk (for cutting the files after the good records).
    on_disk: Vec<u64>,
}

impl Wal {
    /// Decodes WAL segments (numbered from 1, in order). Never panics; stops at the first bad
    /// frame, bad record or missing segment.
    pub fn load(segments: &[(u64, Vec<u8>)]) -> Loaded {
        let mut wal = Wal { on_disk: segments.iter().map(|(n, _)| *n).collect(), ..Wal::default() };
        let mut tail = LoadTail::Clean;
        let mut cut_bytes = 0;
        for (i, (segment, bytes)) in segments.iter().enumerate() {
            if tail != LoadTail::Clean || *segment != i as u64 + 1 {
                tail = if tail == LoadTail::Clean { LoadTail::Corrupt } else { tail };
                cut_bytes += bytes.len() as u64;
                continue;
            }
            let (seg_tail, good) = wal.load_segment(*segment, bytes);
            tail = seg_tail;
            cut_bytes += bytes.len() as u64 - good;
        }
        Loaded { wal, tail, cut_bytes }
    }

    /// Appends one segment's good records; returns its tail and how many bytes were good.
    fn load_segment(&mut self, segment: u64, bytes: &[u8]) -> (LoadTail, u64) {
        let decoded = records::decode_all(bytes);
        let mut tail = match decoded.tail {
            Tail::Clean => LoadTail::Clean,
            Tail::Torn { .. } => LoadTail::Torn,
            Tail::Corrupt { .. } => LoadTail::Corrupt,
        };
        let mut offset = 0u64;
        for payload in &decoded.records {
            match serde_json::from_slice::<WalRecord>(payload) {
                Ok(r) if r.index == self.last_index() + 1 && r.epoch >= self.position().epoch => {
                    offset += (records::HEADER_LEN + payload.len()) as u64;
                    self.records.push(r);
                    self.ends.push(End { segment, offset });
                }
                _ => {
                    // A frame with a good checksum but a record that does not follow: written
                    // by a bug or by something else entirely. Treat it as damage.
                    tail = LoadTail::Corrupt;
                    break;
                }
            }
        }
        (tail, offset)
    }

    /// The file operations that leave exactly records `1..=index` on disk.
    pub fn cut_at(&self, index: u64) -> Cut {
        let keep = match index {
            0 => End { segment: 1, offset: 0 },
            i => self.ends[(i - 1) as usize],
        };
        let truncate = self.on_disk.contains(&keep.segment).then(|| (segment_file(keep.segment), keep.offset));
        let remove = self.on_disk.iter().filter(|s| **s > keep.segment).map(|s| segment_file(*s)).collect();
        Cut { truncate, remove }
    }

    /// The segment files holding records `from..=to`, which an fsync covering them must sync.
    pub fn segments_for(&self, from: u64, to: u64) -> Vec<String> {
        let (from, to) = (from.max(1), to.min(self.last_index()));
        if from > to {
            return Vec::new();
        }
        let (a, b) = (self.ends[(from - 1) as usize].segment, self.ends[(to - 1) as usize].segment);
        (a..=b).map(segment_file).collect()
    }

    /// Appends `record` in memory and returns the segment file and frame to append to it.
    ///
    /// # Panics
    /// If `record` does not follow the log: the caller assigns indexes.
    pub fn push(&mut self, record: WalRecord) -> (String, Vec<u8>) {
        assert_eq!(record.index, self.last_index() + 1, "WAL records are appended in order");
        let frame = records::encode(&serde_json::to_vec(&record).expect("records serialize"));
        let last = self.ends.last().copied().unwrap_or(End { segment: 1, offset: 0 });
        let end = if last.offset > 0 && last.offset + frame.len() as u64 > SEGMENT_BYTES {
            End { segment: last.segment + 1, offset: frame.len() as u64 }
        } else {
            End { segment: last.segment, offset: last.offset + frame.len() as u64 }
        };
        if !self.on_disk.contains(&end.segment) {
            self.on_disk.push(end.segment);
        }
        self.ends.push(end);
        self.records.push(record);
        (segment_file(end.segment), frame)
    }

    pub fn last_index(&self) -> u64 {
        self.records.len() as u64
    }

    pub fn position(&self) -> Position {
        self.records.last().map_or(Position::default(), |r| Position { epoch: r.epoch, index: r.index })
    }

    pub fn get(&self, index: u64) -> Option<&WalRecord> {
        index.checked_sub(1).and_then(|i| self.records.get(i as usize))
    }

    /// Records `from..=to` (clamped to the log), at most `max`.
    pub fn range(&self, from: u64, to: u64, max: usize) -> Vec<WalRecord> {
        let start = from.max(1) - 1;
        let end = to.min(self.last_index());
        if start >= end {
            return Vec::new();
        }
        self.records[start as usize..end as usize].iter().take(max).cloned().collect()
    }

    pub fn records(&self) -> &[WalRecord] {
        &self.records
    }

    /// Drops every record after `index` (in memory; [`Wal::cut_at`] says what to do on disk).
    pub fn truncate(&mut self, index: u64) {
        let keep_segment = match index {
            0 => 1,
            i => self.ends[(i - 1) as usize].segment,
        };
        self.records.truncate(index as usize);
        self.ends.truncate(index as usize);
        self.on_disk.retain(|s| *s <= keep_segment);
    }

    /// The timeline history of this log.
    pub fn history(&self) -> History {
        self.records.iter().filter(|r| r.body == Body::Promote).map(|r| (r.epoch, r.index)).collect()
    }

    /// How many leading records agree with a primary whose history is `history` and whose log
    /// ends at `primary_last`: everything after that must be rewound.
    pub fn matching_prefix(&self, history: &[(u64, u64)], primary_last: u64) -> u64 {
        let agree = self.records.iter().take_while(|r| r.epoch == epoch_at(history, r.index)).count() as u64;
        agree.min(primary_last)
    }

    /// The state after applying records `1..=upto`.
    pub fn replay(&self, upto: u64) -> Tables {
        let mut tables = Tables::default();
        for r in self.records.iter().take(upto as usize) {
            apply(&mut tables, r);
        }
        tables
    }

    /// The state after applying records `1..=upto` except those in `skip` (commits other
    /// sessions may not see yet).
    pub fn replay_without(&self, upto: u64, skip: &std::collections::BTreeSet<u64>) -> Tables {
        let mut tables = Tables::default();
        for r in self.records.iter().take(upto as usize).filter(|r| !skip.contains(&r.index)) {
            apply(&mut tables, r);
        }
        tables
    }
}

/// Applies one record to a state.
pub fn apply(tables: &mut Tables, record: &WalRecord) {
    if let Body::Commit { writes, .. } = &record.body {
        tables.apply(record.epoch, record.index, writes);
    }
}

/// Frames a batch of records (for archive segments and tests).
pub fn encode_all(recs: &[WalRecord]) -> Vec<u8> {
    let mut buf = Vec::new();
    for r in recs {
        records::encode_into(&mut buf, &serde_json::to_vec(r).expect("records serialize"));
    }
    buf
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::data::Table;

    fn commit(index: u64, epoch: u64) -> WalRecord {
        let writes = vec![Write::Put { table: Table::Users, key: format!("k{index}"), value: "v".into() }];
        WalRecord { index, epoch, commit_wall_ms: index, body: Body::Commit { txn: format!("t{index}"), writes } }
    }

    fn promote(index: u64, epoch: u64) -> WalRecord {
        WalRecord { index, epoch, commit_wall_ms: index, body: Body::Promote }
    }

    /// The log and its segment files.
    fn log(recs: Vec<WalRecord>) -> (Wal, Vec<(u64, Vec<u8>)>) {
        let mut wal = Wal::default();
        let mut files: Vec<(u64, Vec<u8>)> = Vec::new();
        for r in recs {
            let (file, frame) = wal.push(r);
            let n: u64 = file.strip_prefix(WAL_PREFIX).unwrap().parse().unwrap();
            match files.last_mut() {
                Some((m, bytes)) if *m == n => bytes.extend(frame),
                _ => files.push((n, frame)),
            }
        }
        (wal, files)
    }

    #[test]
    fn load_round_trips_and_stops_at_torn_or_corrupt_frames() {
        let (wal, files) = log(vec![promote(1, 1), commit(2, 1), commit(3, 1)]);
        let loaded = Wal::load(&files);
        assert_eq!((loaded.tail, loaded.cut_bytes), (LoadTail::Clean, 0));
        assert_eq!(loaded.wal.records(), wal.records());

        let mut torn = files.clone();
        let len = torn[0].1.len();
        torn[0].1.truncate(len - 3);
        let t = Wal::load(&torn);
        assert_eq!((t.tail, t.wal.last_index()), (LoadTail::Torn, 2));

        let mut flipped = files.clone();
        let mid = records::encode(&serde_json::to_vec(&promote(1, 1)).unwrap()).len() + 12;
        flipped[0].1[mid] ^= 0x40;
        let c = Wal::load(&flipped);
        assert_eq!((c.tail, c.wal.last_index()), (LoadTail::Corrupt, 1));
        assert_eq!(c.wal.cut_at(1).truncate, Some((segment_file(1), mid as u64 - 12)));
    }

    #[test]
    fn a_record_out_of_order_or_a_missing_segment_is_damage() {
        let (_, mut files) = log(vec![promote(1, 1)]);
        files[0].1.extend(records::encode(&serde_json::to_vec(&commit(5, 1)).unwrap()));
        let loaded = Wal::load(&files);
        assert_eq!((loaded.tail, loaded.wal.last_index()), (LoadTail::Corrupt, 1));
        let gap = Wal::load(&[(2, records::encode(b"x"))]);
        assert_eq!((gap.tail, gap.wal.last_index()), (LoadTail::Corrupt, 0));
        assert_eq!(gap.wal.cut_at(0).remove, vec![segment_file(2)]);
    }

    #[test]
    fn segments_roll_over_and_cuts_remove_whole_segments() {
        let big = "x".repeat(3_000);
        let recs: Vec<WalRecord> = (1..=40)
            .map(|i| WalRecord {
                index: i,
                epoch: 1,
                commit_wall_ms: i,
                body: Body::Commit { txn: big.clone(), writes: vec![] },
            })
            .collect();
        let (wal, files) = log(recs);
        assert!(files.len() >= 3, "{} segments", files.len());
        assert!(files.iter().all(|(_, b)| b.len() as u64 <= SEGMENT_BYTES));
        assert_eq!(Wal::load(&files).wal.records(), wal.records());
        assert_eq!(wal.segments_for(1, 1), vec![segment_file(1)]);
        assert_eq!(wal.segments_for(1, 40).len(), files.len());
        let cut = wal.cut_at(5);
        assert_eq!(cut.truncate.as_ref().map(|t| t.0.clone()), Some(segment_file(1)));
        assert_eq!(cut.remove.len(), files.len() - 1);
        let mut shorter = wal.clone();
        shorter.truncate(5);
        let (file, _) = shorter.push(WalRecord { index: 6, epoch: 2, commit_wall_ms: 6, body: Body::Promote });
        assert_eq!(file, segment_file(1));
    }

    #[test]
    fn rewind_point_follows_the_primary_history() {
        // Old primary wrote 1..=6 in epoch 1; the new primary promoted at 5 in epoch 2.
        let (old, _) = log(vec![promote(1, 1), commit(2, 1), commit(3, 1), commit(4, 1), commit(5, 1), commit(6, 1)]);
        let (new, _) = log(vec![promote(1, 1), commit(2, 1), commit(3, 1), commit(4, 1), promote(5, 2), commit(6, 2)]);
        assert_eq!(new.history(), vec![(1, 1), (2, 5)]);
        assert_eq!(old.matching_prefix(&new.history(), new.last_index()), 4);
        // A standby behind the switch point keeps everything.
        let (behind, _) = log(vec![promote(1, 1), commit(2, 1)]);
        assert_eq!(behind.matching_prefix(&new.history(), new.last_index()), 2);
        // A log ahead of the primary in the same epoch is cut to the primary's end.
        assert_eq!(new.matching_prefix(&new.history(), 5), 5);
        assert_eq!(epoch_at(&new.history(), 0), 0);
        assert_eq!(epoch_at(&new.history(), 9), 2);
    }

    #[test]
    fn replay_applies_commits_up_to_an_index() {
        let (wal, _) = log(vec![promote(1, 1), commit(2, 1), commit(3, 1)]);
        assert_eq!(wal.replay(2).len(), 1);
        assert_eq!(wal.replay(3).len(), 2);
        assert_eq!(wal.range(2, 3, 10).len(), 2);
        assert_eq!(wal.range(4, 9, 10).len(), 0);
        assert_eq!(Wal::load(&[(1, encode_all(wal.records()))]).wal.records(), wal.records());
    }
}
