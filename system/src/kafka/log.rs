//! One replica's partition log: records in offset order, the leader-epoch cache derived from
//! them (Kafka's `leader-epoch-checkpoint`), and the idempotent producers' sequence table.
//!
//! The log is sans-IO: mutations queue [`LogIo`] operations (append bytes, truncate to a length)
//! that the broker shell applies to the partition's file through the disk seam. The file is a
//! sequence of checksummed records ([`sim::disk::records`]), each a postcard-encoded
//! [`Record`]; nothing here fsyncs, because Kafka does not: durability comes from replication
//! and the OS's writeback (see `config.rs`).

use sim::disk::records;

use super::idempotence::ProducerTable;
use super::topic::Record;

/// A file operation for the shell to apply, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogIo {
    Append { file: String, bytes: Vec<u8> },
    Truncate { file: String, len: u64 },
}

/// What recovery found in the file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    pub records: usize,
    /// Bytes after the last good record (a torn or corrupt tail), cut off.
    pub cut_bytes: u64,
}

#[derive(Clone, Debug)]
pub struct PartitionLog {
    file: String,
    records: Vec<Record>,
    /// Byte position in the file where each record starts.
    starts: Vec<u64>,
    file_len: u64,
    /// (leader epoch, first offset of that epoch), increasing in both.
    epochs: Vec<(u64, u64)>,
    producers: ProducerTable,
    io: Vec<LogIo>,
}

/// Decodes a partition log file: the longest prefix of well-formed records whose offsets count
/// up from 0 and whose epochs never go down, ending with a whole batch (a batch torn by a crash
/// goes whole, as Kafka's single-frame batch does). Never panics on damaged bytes.
pub fn decode(bytes: &[u8]) -> (Vec<Record>, usize) {
    let decoded = records::decode_all(bytes);
    let mut out: Vec<Record> = Vec::new();
    let mut valid = 0;
    let (mut whole, mut whole_valid) = (0, 0);
    for payload in &decoded.records {
        let Ok(r) = postcard::from_bytes::<Record>(payload) else {
            break;
        };
        let in_order = r.offset == out.len() as u64 && out.last().is_none_or(|p| p.leader_epoch <= r.leader_epoch);
        if !in_order {
            break;
        }
        valid += records::HEADER_LEN + payload.len();
        let batch_end = r.batch_end;
        out.push(r);
        if batch_end {
            (whole, whole_valid) = (out.len(), valid);
        }
    }
    out.truncate(whole);
    (out, whole_valid)
}

impl PartitionLog {
    pub fn empty(file: &str) -> Self {
        PartitionLog {
            file: file.into(),
            records: Vec::new(),
            starts: Vec::new(),
            file_len: 0,
            epochs: Vec::new(),
            producers: ProducerTable::default(),
            io: Vec::new(),
        }
    }

    /// Rebuilds the log from its file's bytes, queueing a truncation of any bad tail.
    pub fn recover(file: &str, bytes: &[u8]) -> (Self, Recovered) {
        let (recs, valid) = decode(bytes);
        let mut log = PartitionLog::empty(file);
        let count = recs.len();
        log.push_all(recs);
        let cut_bytes = (bytes.len() - valid) as u64;
        if cut_bytes > 0 {
            log.io.push(LogIo::Truncate { file: file.into(), len: valid as u64 });
        }
        log.io.retain(|op| !matches!(op, LogIo::Append { .. }));
        (log, Recovered { records: count, cut_bytes })
    }

    /// The log end offset (LEO): the offset the next record gets.
    pub fn end_offset(&self) -> u64 {
        self.records.len() as u64
    }

    pub fn get(&self, offset: u64) -> Option<&Record> {
        self.records.get(usize::try_from(offset).ok()?)
    }

    /// Up to `max` records from `from`, stopping before `upto`.
    pub fn read(&self, from: u64, upto: u64, max: usize) -> &[Record] {
        let end = upto.min(self.end_offset());
        if from >= end {
            return &[];
        }
        let (from, end) = (from as usize, end as usize);
        &self.records[from..end.min(from.saturating_add(max))]
    }

    /// The latest epoch in the epoch cache (a new leader's epoch appears here before any of
    /// its records do).
    pub fn latest_epoch(&self) -> Option<u64> {
        self.epochs.last().map(|(e, _)| *e)
    }

    /// A leader of `epoch` starts it at the current log end (Kafka assigns the epoch's start
    /// offset when the replica becomes leader).
    pub fn assign_epoch(&mut self, epoch: u64) {
        if self.latest_epoch().is_none_or(|e| e < epoch) {
            self.epochs.push((epoch, self.end_offset()));
        }
    }

    pub fn epoch_start(&self, epoch: u64) -> Option<u64> {
        self.epochs.iter().find(|(e, _)| *e == epoch).map(|(_, s)| *s)
    }

    /// Kafka's `endOffsetForEpoch`: the largest epoch ≤ `epoch` this log knows, and the offset
    /// where it ends (the next epoch's start, or the log end). `None` when every epoch here is
    /// newer than `epoch`.
    pub fn end_offset_for_epoch(&self, epoch: u64) -> Option<(u64, u64)> {
        let i = self.epochs.iter().rposition(|(e, _)| *e <= epoch)?;
        let end = self.epochs.get(i + 1).map_or(self.end_offset(), |(_, start)| *start);
        Some((self.epochs[i].0, end))
    }

    /// The offset where the log starts (always 0: no retention or compaction here).
    pub fn start_offset(&self) -> u64 {
        0
    }

    pub fn producers(&self) -> &ProducerTable {
        &self.producers
    }

    /// Appends records whose offsets continue the log; returns false (appending nothing) when
    /// they do not, or when their epochs go backwards.
    pub fn append(&mut self, recs: Vec<Record>) -> bool {
        let mut epoch = self.latest_epoch().unwrap_or(0);
        for (i, r) in recs.iter().enumerate() {
            if r.offset != self.end_offset() + i as u64 || r.leader_epoch < epoch {
                return false;
            }
            epoch = r.leader_epoch;
        }
        self.push_all(recs);
        true
    }

    fn push_all(&mut self, recs: Vec<Record>) {
        let mut bytes = Vec::new();
        for r in recs {
            let payload = postcard::to_stdvec(&r).expect("records serialize");
            self.starts.push(self.file_len + bytes.len() as u64);
            records::encode_into(&mut bytes, &payload);
            if self.latest_epoch().is_none_or(|e| e < r.leader_epoch) {
                self.epochs.push((r.leader_epoch, r.offset));
            }
            self.producers.record(&r);
            self.records.push(r);
        }
        if !bytes.is_empty() {
            self.file_len += bytes.len() as u64;
            self.io.push(LogIo::Append { file: self.file.clone(), bytes });
        }
    }

    /// Drops every record, and every epoch, starting at or after `offset` (a follower's
    /// truncation to the leader's log). An epoch this replica led without appending anything
    /// starts at the log end and goes too, so older epochs' records can follow.
    pub fn truncate_to(&mut self, offset: u64) {
        self.epochs.retain(|(_, start)| *start < offset);
        if offset >= self.end_offset() {
            return;
        }
        let keep = offset as usize;
        self.file_len = self.starts[keep];
        self.records.truncate(keep);
        self.starts.truncate(keep);
        self.producers = ProducerTable::rebuild(&self.records);
        self.io.push(LogIo::Truncate { file: self.file.clone(), len: self.file_len });
    }

    /// The file operations queued since the last call.
    pub fn take_io(&mut self) -> Vec<LogIo> {
        std::mem::take(&mut self.io)
    }

    pub fn records(&self) -> &[Record] {
        &self.records
    }
}
