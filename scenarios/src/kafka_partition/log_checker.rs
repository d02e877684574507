//! The log invariants of one cluster, judged on the partition logs its brokers' disks hold at the
//! end of the run — after the run's final power loss and recovery, when the plan has an ending —
//! and on what a verifier read through the consumer protocol after that recovery: no
//! acknowledged record is lost or moved, none appears twice, none is out of its producer's
//! order, and every replica holds the leader's log.
//!
//! "No duplicates from producer retries" means the log itself never holds a record twice; a
//! consumer may still process a record twice after a rebalance (at-least-once delivery), which
//! is allowed and not checked here. "In order" means one producer session's records are in the
//! log in the order it produced them (idempotence promises it with up to five requests in
//! flight); values end in a counter that grows in production order (see the producer).

use std::collections::BTreeMap;

use sim::Outcome;
use system::kafka::cluster::FinalPartition;
use system::kafka::{Acks, KafkaCluster, Record, TopicPartition};

use super::history::History;
use super::verifier::VerifierRead;
use crate::scenario::{Checker, Verdict};

/// At most this many violations of one kind are listed per partition; a count says the rest.
pub const LIST_AT_MOST: usize = 5;

/// Judges every partition of `kafka` against what its producers were acknowledged.
pub struct LogChecker {
    pub kafka: KafkaCluster,
}

impl Checker for LogChecker {
    fn check(&self, outcome: &Outcome, v: &mut Verdict) {
        let (h, reads, recovered) = outcome.observations(|o| {
            let reads: BTreeMap<TopicPartition, Vec<(u64, String)>> = o
                .of::<VerifierRead>()
                .filter(|s| s.value.cluster == self.kafka.prefix())
                .map(|s| (s.value.tp, s.value.records))
                .collect();
            (History::read(o, &self.kafka), reads, o.recovery_started_ms().is_some())
        });
        for (tp, fp) in &self.kafka.final_logs(&outcome.world) {
            check_partition(&h, tp, fp, v);
            if recovered && !tp.is_internal() {
                read_back(&h, tp, reads.get(tp), v);
            }
        }
    }
}

fn check_partition(h: &History, tp: &TopicPartition, fp: &FinalPartition, v: &mut Verdict) {
    let Some(leader_log) = fp.leader_log() else {
        v.violation("liveness", format!("no single leader of {tp} at the end of the run"));
        return;
    };
    let leader = fp.leader.as_deref().unwrap_or_default();
    if !tp.is_internal() {
        lost(h, tp, leader, leader_log, v);
        duplicates(tp, leader_log, v);
        in_order(tp, leader_log, v);
    }
    for (node, log) in fp.replicas.iter().filter(|(n, _)| n.as_str() != leader) {
        converged(tp, leader, leader_log, node, log, v);
    }
}

fn acks_name(acks: Acks) -> &'static str {
    match acks {
        Acks::All => "acks=all",
        Acks::Leader => "acks=1",
    }
}

/// Every acknowledged record was read back, at its offset, by the verifier after recovery; each
/// one that was not is data lost (`record`).
fn read_back(h: &History, tp: &TopicPartition, read: Option<&Vec<(u64, String)>>, v: &mut Verdict) {
    let Some(read) = read else {
        v.violation("liveness", format!("the verifier could not read {tp} to its end after recovery"));
        return;
    };
    let lost: Vec<_> = h
        .acked
        .iter()
        .filter(|a| a.tp == *tp)
        .filter(|a| usize::try_from(a.offset).ok().and_then(|o| read.get(o)).is_none_or(|(_, value)| *value != a.value))
        .collect();
    for a in &lost {
        v.data_lost("record", a.t_ms);
    }
    let lost: Vec<String> = lost
        .into_iter()
        .map(|a| {
            let acks = acks_name(a.acks);
            format!(
                "{} acknowledged ({acks}) as {tp}@{} at {} ms was not read back after recovery ({} records read)",
                a.value,
                a.offset,
                a.t_ms,
                read.len()
            )
        })
        .collect();
    v.violations_upto("lost record", lost, LIST_AT_MOST);
}

/// Every acknowledged record is in the leader's final log, at the offset it was acknowledged at.
fn lost(h: &History, tp: &TopicPartition, leader: &str, log: &[Record], v: &mut Verdict) {
    let mut where_is: BTreeMap<&str, u64> = BTreeMap::new();
    for r in log {
        where_is.entry(r.value.as_str()).or_insert(r.offset);
    }
    let (mut lost, mut misplaced) = (Vec::new(), Vec::new());
    for a in h.acked.iter().filter(|a| a.tp == *tp) {
        let at = usize::try_from(a.offset).ok().and_then(|o| log.get(o));
        if at.is_some_and(|r| r.value == a.value) {
            continue;
        }
        let acks = acks_name(a.acks);
        match where_is.get(a.value.as_str()) {
            Some(o) => misplaced.push(format!(
                "{} acknowledged ({acks}) as {tp}@{} at {} ms is at offset {o} in the final log",
                a.value, a.offset, a.t_ms
            )),
            None => lost.push(format!(
                "{} (producer {} seq {}) acknowledged ({acks}) as {tp}@{} at {} ms is not in the final log (leader {leader}, {} records)",
                a.value, a.producer_id, a.seq, a.offset, a.t_ms, log.len()
            )),
        }
    }
    v.violations_upto("lost record", lost, LIST_AT_MOST);
    v.violations_upto("misplaced record", misplaced, LIST_AT_MOST);
}

/// No value, and no (producer id, sequence), is in the log twice.
fn duplicates(tp: &TopicPartition, log: &[Record], v: &mut Verdict) {
    let mut first: BTreeMap<&str, u64> = BTreeMap::new();
    let mut by_seq: BTreeMap<(u64, u64), u64> = BTreeMap::new();
    let mut dups = Vec::new();
    for r in log {
        if let Some(o) = first.insert(r.value.as_str(), r.offset) {
            dups.push(format!("{} is in {tp} at offsets {o} and {}", r.value, r.offset));
        } else if let Some(o) = by_seq.insert((r.producer_id, r.seq), r.offset).filter(|_| r.producer_id != 0) {
            dups.push(format!(
                "producer {} sequence {} is in {tp} at offsets {o} and {}",
                r.producer_id, r.seq, r.offset
            ));
        }
    }
    v.violations_upto("duplicate record", dups, LIST_AT_MOST);
}

/// Each producer session's values (`<session>-<counter>`) appear with growing counters; a
/// value appended twice is a duplicate, not also a reordering.
fn in_order(tp: &TopicPartition, log: &[Record], v: &mut Verdict) {
    let mut last: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    let mut seen: BTreeMap<&str, ()> = BTreeMap::new();
    let mut reordered = Vec::new();
    for r in log {
        let first_time = seen.insert(r.value.as_str(), ()).is_none();
        let Some((session, counter)) = r.value.rsplit_once('-').and_then(|(s, c)| Some((s, c.parse::<u64>().ok()?)))
        else {
            continue;
        };
        match last.get(session) {
            Some(&(c, o)) if counter < c && first_time => reordered.push(format!(
                "{} is in {tp} at offset {} after {session}-{c} (offset {o}), which was produced later",
                r.value, r.offset
            )),
            Some(&(c, _)) if counter < c => {}
            _ => {
                last.insert(session, (counter, r.offset));
            }
        }
    }
    v.violations_upto("reordered record", reordered, LIST_AT_MOST);
}

/// A follower must hold a prefix of the leader's log; of the data topic, all of it (producers
/// stopped well before the end). The offsets partition may trail by an in-flight commit.
fn converged(tp: &TopicPartition, leader: &str, leader_log: &[Record], node: &str, log: &[Record], v: &mut Verdict) {
    if let Some(o) = log.iter().zip(leader_log).position(|(a, b)| a != b) {
        v.violation("replicas diverged", format!("{node}'s {tp} differs from leader {leader}'s at offset {o}"));
    } else if log.len() > leader_log.len() {
        v.violation(
            "replicas diverged",
            format!("{node}'s {tp} has {} records, more than leader {leader}'s {}", log.len(), leader_log.len()),
        );
    } else if log.len() < leader_log.len() && !tp.is_internal() {
        v.violation(
            "liveness",
            format!("{node}'s {tp} has {} of leader {leader}'s {} records at the end", log.len(), leader_log.len()),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka_partition::history::Acked;
    use crate::scenario::Lost;

    #[test]
    fn an_acknowledged_record_not_read_back_after_recovery_is_data_lost() {
        let tp = TopicPartition::new("edits", 0);
        let acked = |value: &str, offset, t_ms| Acked {
            value: value.into(),
            tp: tp.clone(),
            offset,
            t_ms,
            acks: Acks::All,
            producer_id: 1,
            seq: offset,
        };
        let mut h = History::default();
        h.acked = vec![acked("a", 0, 1_000), acked("b", 1, 2_000)];
        let judge = |read: Vec<(u64, String)>| {
            let mut v = Verdict::default();
            read_back(&h, &tp, Some(&read), &mut v);
            (v.violations.into_iter().map(|v| v.kind).collect::<Vec<_>>(), v.lost)
        };
        let (kinds, lost) = judge(vec![(0, "a".into()), (1, "b".into())]);
        assert!(kinds.is_empty() && lost.is_empty());
        let (kinds, lost) = judge(vec![(0, "a".into())]);
        assert_eq!(kinds, vec!["lost record"]);
        assert_eq!(lost, vec![Lost { what: "record".into(), acked_at_ms: 2_000 }]);
    }
}
