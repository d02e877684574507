//! The consumer group invariants: committed offsets only move forward (as acknowledged, as read
//! back, and as finally stored in `__consumer_offsets`, which is what a restarted consumer
//! reads), no record below a committed offset was skipped, and no consumer read a record the
//! log does not have.

use sim::Outcome;
use system::kafka::protocol::CommittedOffset;
use system::kafka::{KafkaCluster, Record, TopicPartition};

use super::history::{GroupHistory, History};
use super::log_checker::LIST_AT_MOST;
use crate::scenario::{Checker, Verdict};

/// Judges one consumer group of `kafka` against the final logs of its data partitions.
pub struct OffsetsChecker {
    pub kafka: KafkaCluster,
    pub group: String,
}

impl Checker for OffsetsChecker {
    fn check(&self, outcome: &Outcome, v: &mut Verdict) {
        let h = outcome.observations(|o| History::read(o, &self.kafka));
        let h = h.group(&self.group);
        let stored = self.kafka.final_offset_commits(&outcome.world, &self.group);
        for (tp, fp) in self.kafka.final_logs(&outcome.world).iter().filter(|(tp, _)| !tp.is_internal()) {
            forward_only(h, tp, v);
            if let Some(stored) = &stored {
                stored_forward_only(h, tp, stored, v);
            }
            not_skipped(h, tp, v);
            if let Some(log) = fp.leader_log() {
                no_phantoms(h, tp, log, v);
            }
        }
    }
}

/// A commit, or an offset read back, that starts after another commit was acknowledged must
/// not be below it: the group's position never goes back.
fn forward_only(h: &GroupHistory, tp: &TopicPartition, v: &mut Verdict) {
    let mut acked: Vec<(u64, u64, &str)> =
        h.commits.iter().filter(|c| c.tp == *tp).map(|c| (c.acked_ms, c.offset, c.consumer.as_str())).collect();
    acked.sort();
    // The highest offset acknowledged by time t.
    let high_by = |t: u64| acked.iter().take_while(|(at, _, _)| *at < t).max_by_key(|(_, o, _)| *o).copied();
    let mut found = Vec::new();
    for c in h.commits.iter().filter(|c| c.tp == *tp) {
        if let Some((at, high, who)) = high_by(c.sent_ms).filter(|(_, high, _)| c.offset < *high) {
            found.push(format!(
                "{} committed {tp} at {} (sent at {} ms) after {who} had committed {high} (at {at} ms)",
                c.consumer, c.offset, c.sent_ms
            ));
        }
    }
    for r in h.offset_reads.iter().filter(|r| r.tp == *tp) {
        let read = r.offset.unwrap_or(0);
        if let Some((at, high, who)) = high_by(r.sent_ms).filter(|(_, high, _)| read < *high) {
            found.push(format!(
                "{} read {tp}'s committed offset as {:?} at {} ms after {who} had committed {high} (at {at} ms)",
                r.consumer, r.offset, r.sent_ms
            ));
        }
    }
    v.violations_upto("committed offset regressed", found, LIST_AT_MOST);
}

/// What `__consumer_offsets` stores for `tp` (its records in log order, as a coordinator folds
/// them) never goes back, and ends at or above every acknowledged commit. A late copy of an
/// older commit that a coordinator accepted breaks the first even when no consumer happened to
/// read the offset before a newer commit overwrote it; a lost acknowledged commit breaks the
/// second.
fn stored_forward_only(
    h: &GroupHistory,
    tp: &TopicPartition,
    stored: &[(TopicPartition, CommittedOffset)],
    v: &mut Verdict,
) {
    let mut found = Vec::new();
    let mut last: Option<u64> = None;
    for (i, (_, c)) in stored.iter().enumerate().filter(|(_, (t, _))| t == tp) {
        if let Some(before) = last.filter(|before| c.offset < *before) {
            found.push(format!(
                "the group's offset record #{i} in __consumer_offsets sets {tp} to {} after it stood at {before}",
                c.offset
            ));
        }
        last = Some(last.map_or(c.offset, |b| b.max(c.offset)));
    }
    let final_offset = stored.iter().rev().find(|(t, _)| t == tp).map(|(_, c)| c.offset);
    if let Some(high) = h.commits.iter().filter(|c| c.tp == *tp).max_by_key(|c| c.offset) {
        if final_offset.is_none_or(|o| o < high.offset) {
            found.push(format!(
                "__consumer_offsets finally holds {final_offset:?} for {tp}, below the {} {} committed \
                 (acknowledged at {} ms)",
                high.offset, high.consumer, high.acked_ms
            ));
        }
    }
    v.violations_upto("committed offset regressed", found, LIST_AT_MOST);
}

/// Every record below a committed offset was processed by some consumer before that commit
/// was sent.
fn not_skipped(h: &GroupHistory, tp: &TopicPartition, v: &mut Verdict) {
    let Some(top) = h.commits.iter().filter(|c| c.tp == *tp).map(|c| c.offset).max() else {
        return;
    };
    let mut first_seen: Vec<Option<u64>> = vec![None; top as usize];
    for p in h.processed.iter().filter(|p| p.tp == *tp && p.offset < top) {
        let slot = &mut first_seen[p.offset as usize];
        *slot = Some(slot.map_or(p.t_ms, |t| t.min(p.t_ms)));
    }
    // The latest first-processing time over each prefix [0, o], None once any is missing.
    let mut prefix: Vec<Option<u64>> = Vec::with_capacity(first_seen.len());
    let mut acc = Some(0u64);
    for seen in &first_seen {
        acc = match (acc, seen) {
            (Some(a), Some(t)) => Some(a.max(*t)),
            _ => None,
        };
        prefix.push(acc);
    }
    let mut found = Vec::new();
    for c in h.commits.iter().filter(|c| c.tp == *tp && c.offset > 0) {
        let ok = prefix[c.offset as usize - 1].is_some_and(|t| t <= c.sent_ms);
        if !ok {
            let missing =
                first_seen[..c.offset as usize].iter().position(|s| s.is_none_or(|t| t > c.sent_ms)).unwrap_or(0);
            found.push(format!(
                "{} committed {tp} at {} (sent at {} ms) but offset {missing} had not been processed",
                c.consumer, c.offset, c.sent_ms
            ));
        }
    }
    v.violations_upto("skipped record", found, LIST_AT_MOST);
}

/// What a consumer processed must be what the log holds at that offset: consumers only read
/// below the high watermark, which no correct leader change takes back.
fn no_phantoms(h: &GroupHistory, tp: &TopicPartition, log: &[Record], v: &mut Verdict) {
    let mut found = Vec::new();
    for p in h.processed.iter().filter(|p| p.tp == *tp) {
        let actual = log.get(p.offset as usize).map(|r| r.value.as_str());
        if actual != Some(p.value.as_str()) {
            found.push(format!(
                "{} processed {tp}@{} = {} at {} ms, but the final log holds {:?} there",
                p.consumer, p.offset, p.value, p.t_ms, actual
            ));
        }
    }
    v.violations_upto("phantom read", found, LIST_AT_MOST);
}
