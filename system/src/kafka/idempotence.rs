//! The idempotent producer's broker side: per partition, the sequence numbers each producer id
//! has appended, so a retried batch is recognised and answered with its original offset instead
//! of being appended twice.
//!
//! Kafka keeps the last five batches per producer (`max.in.flight.requests.per.connection` ≤ 5)
//! and snapshots the table next to the log; here the whole table is rebuilt from the log, which
//! holds every record's producer id and sequence, on recovery and after a truncation.

use std::collections::BTreeMap;

use super::topic::Record;

/// What the table says about an incoming batch of `count` records starting at `base_seq`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeqCheck {
    /// The next batch in sequence: append it.
    Append,
    /// Already in the log, starting at this offset: answer with it, append nothing.
    Duplicate { base_offset: u64 },
    /// A gap or an overlap (`OUT_OF_ORDER_SEQUENCE_NUMBER`): records the producer believes
    /// were written are missing from this log.
    OutOfOrder { expected: u64 },
}

#[derive(Clone, Debug, Default)]
pub struct ProducerTable {
    /// producer id → (sequence → offset).
    seqs: BTreeMap<u64, BTreeMap<u64, u64>>,
}

impl ProducerTable {
    pub fn rebuild(records: &[Record]) -> Self {
        let mut t = ProducerTable::default();
        for r in records {
            t.record(r);
        }
        t
    }

    pub fn record(&mut self, r: &Record) {
        if r.producer_id != 0 {
            self.seqs.entry(r.producer_id).or_default().insert(r.seq, r.offset);
        }
    }

    pub fn last_seq(&self, producer_id: u64) -> Option<u64> {
        self.seqs.get(&producer_id).and_then(|s| s.keys().next_back().copied())
    }

    pub fn check(&self, producer_id: u64, base_seq: u64, count: u64) -> SeqCheck {
        let last_in_batch = base_seq + count.saturating_sub(1);
        match self.last_seq(producer_id) {
            None if base_seq == 0 => SeqCheck::Append,
            None => SeqCheck::OutOfOrder { expected: 0 },
            Some(last) if base_seq == last + 1 => SeqCheck::Append,
            Some(last) if last_in_batch <= last => match self.seqs.get(&producer_id).and_then(|s| s.get(&base_seq)) {
                Some(&base_offset) => SeqCheck::Duplicate { base_offset },
                None => SeqCheck::OutOfOrder { expected: last + 1 },
            },
            Some(last) => SeqCheck::OutOfOrder { expected: last + 1 },
        }
    }
}
