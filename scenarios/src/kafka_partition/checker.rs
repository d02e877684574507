//! The `kafka-partition` verdict: the log and group invariants (own files), the liveness bounds
//! after the heal, and the run's metrics — leader failover time, produce recovery, rebalance
//! time and throughput.

use std::collections::{BTreeMap, BTreeSet};

use sim::{Fault, Outcome, Scheduled, Target};
use system::kafka::cluster::FinalPartition;
use system::kafka::{KafkaCluster, TopicPartition};

use super::history::History;
use super::log_checker;
use super::{
    offsets_checker, CONSUMERS, DURATION_MS, HEAL_AT_MS, PARTITIONS, PRODUCE_RECOVERY_BOUND_MS, PRODUCE_UNTIL_MS,
    REBALANCE_BOUND_MS,
};
use crate::scenario::Verdict;

pub fn check(outcome: &Outcome, kafka: &KafkaCluster, h: &History, faults: &[Scheduled]) -> Verdict {
    let mut v = Verdict::default();
    let logs = kafka.final_logs(&outcome.world);
    log_checker::check(h, &logs, &mut v);
    offsets_checker::check(h, &logs, &mut v);
    rebalanced(h, &mut v);
    consumed(h, &logs, &mut v);
    produce_recovered(h, &mut v);
    failover_metrics(outcome, kafka, h, faults, &mut v);
    let processed: BTreeSet<(&TopicPartition, u64)> = h.processed.iter().map(|p| (&p.tp, p.offset)).collect();
    v.metric(
        "produced_per_sim_s",
        h.acked.len() as f64 / (PRODUCE_UNTIL_MS as f64 / 1000.0),
    );
    v.metric(
        "consumed_per_sim_s",
        processed.len() as f64 / (DURATION_MS as f64 / 1000.0),
    );
    v.metric(
        "produce_attempts_per_batch",
        h.produce_attempts as f64 / batches(h).max(1) as f64,
    );
    v.metric("duplicate_acks_count", h.duplicate_acks as f64);
    v.metric(
        "acks_all",
        f64::from(u8::from(kafka.acks() == system::kafka::Acks::All)),
    );
    v
}

fn batches(h: &History) -> usize {
    h.acked
        .iter()
        .map(|a| (a.producer_id, a.tp.clone(), a.t_ms))
        .collect::<BTreeSet<_>>()
        .len()
}

/// The group is whole again within [`REBALANCE_BOUND_MS`] of the heal: every consumer holds
/// an assignment of the same generation and together they cover every partition.
fn rebalanced(h: &History, v: &mut Verdict) {
    let mut last: BTreeMap<&str, &super::history::Membership> = BTreeMap::new();
    for m in &h.memberships {
        last.insert(m.consumer.as_str(), m);
    }
    let generations: BTreeSet<Option<u64>> = CONSUMERS
        .iter()
        .map(|c| last.get(c).and_then(|m| m.generation))
        .collect();
    let covered: BTreeSet<&TopicPartition> = last.values().flat_map(|m| m.partitions.iter()).collect();
    let whole = generations.len() == 1 && !generations.contains(&None) && covered.len() == PARTITIONS as usize;
    if !whole {
        v.violation("liveness", format!("the consumer group is not stable at the end (generations {generations:?}, {} of {PARTITIONS} partitions assigned)",
            covered.len()
        ));
        return;
    }
    let settled = last.values().map(|m| m.t_ms).max().unwrap_or(0);
    let after_heal = settled.saturating_sub(HEAL_AT_MS);
    v.metric("rebalance_after_heal_ms", after_heal as f64);
    if after_heal > REBALANCE_BOUND_MS {
        v.violation("liveness", format!("the group settled {after_heal} ms after the heal (bound {REBALANCE_BOUND_MS} ms)"
        ));
    }
}

/// Every acknowledged record still in the log was consumed by the end.
fn consumed(h: &History, logs: &BTreeMap<TopicPartition, FinalPartition>, v: &mut Verdict) {
    let processed: BTreeSet<&str> = h.processed.iter().map(|p| p.value.as_str()).collect();
    let in_log: BTreeSet<&str> = logs
        .iter()
        .filter(|(tp, _)| !tp.is_internal())
        .filter_map(|(_, fp)| fp.leader_log())
        .flat_map(|log| log.iter().map(|r| r.value.as_str()))
        .collect();
    let unconsumed: Vec<&str> = h
        .acked
        .iter()
        .map(|a| a.value.as_str())
        .filter(|v| in_log.contains(v) && !processed.contains(v))
        .collect();
    if let Some(first) = unconsumed.first() {
        v.violation("liveness", format!("{} acknowledged records were never consumed (first: {first})",
            unconsumed.len()
        ));
    }
}

fn produce_recovered(h: &History, v: &mut Verdict) {
    match h.acked.iter().map(|a| a.t_ms).filter(|t| *t >= HEAL_AT_MS).min() {
        Some(t) => {
            v.metric("produce_recovery_after_heal_ms", (t - HEAL_AT_MS) as f64);
            if t - HEAL_AT_MS > PRODUCE_RECOVERY_BOUND_MS {
                v.violation("liveness", format!("first acknowledgement after the heal came {} ms after it",
                    t - HEAL_AT_MS
                ));
            }
        }
        None => v.violation("liveness", "no record was acknowledged after the heal"),
    }
}

/// Leader failover time: from a fault that takes a partition's leader away from the
/// controllers (kill, isolation, pause, zone loss) to the controller committing a new leader.
fn failover_metrics(outcome: &Outcome, kafka: &KafkaCluster, h: &History, faults: &[Scheduled], v: &mut Verdict) {
    let mut times = Vec::new();
    for (i, s) in faults.iter().enumerate() {
        let Some(target) = leader_loss_target(kafka, &s.fault) else {
            continue;
        };
        let until = faults[i + 1..]
            .iter()
            .find(|n| is_fault(&n.fault))
            .map_or(HEAL_AT_MS, |n| n.at_ms);
        for tp in kafka.partitions() {
            let Some(old) = h.leader_at(&tp, s.at_ms) else { continue };
            if !hits(outcome, kafka, target, old, h, s.at_ms) {
                continue;
            }
            let next = h
                .leader_changes
                .iter()
                .filter(|c| c.tp == tp && c.t_ms > s.at_ms && c.t_ms < until)
                .find(|c| c.to.is_some_and(|l| l != old));
            if let Some(c) = next {
                times.push(c.t_ms - s.at_ms);
            }
        }
    }
    if !times.is_empty() {
        v.metric(
            "leader_failover_ms",
            times.iter().sum::<u64>() as f64 / times.len() as f64,
        );
        v.metric("leader_failover_max_ms", *times.iter().max().unwrap_or(&0) as f64);
        v.metric("leader_failovers_count", times.len() as f64);
    }
    v.metric(
        "leader_elections_count",
        h.leader_changes
            .iter()
            .filter(|c| c.from.is_some() && c.to.is_some())
            .count() as f64,
    );
}

fn is_fault(f: &Fault) -> bool {
    !matches!(
        f,
        Fault::HealAll | Fault::HealNetwork | Fault::Resume(_) | Fault::Disk { .. }
    )
}

/// The broker set a fault cuts from the controllers, if it does.
fn leader_loss_target<'a>(kafka: &KafkaCluster, f: &'a Fault) -> Option<&'a Target> {
    match f {
        Fault::Kill(t) | Fault::Isolate(t) | Fault::Pause(t) => Some(t),
        Fault::Partition { a, b: Target::Nodes(b) } if b.iter().any(|n| kafka.controllers().contains(n)) => Some(a),
        _ => None,
    }
}

/// Whether `target`, resolved at `t_ms`, includes `leader` (which then led some partition).
fn hits(outcome: &Outcome, kafka: &KafkaCluster, target: &Target, leader: u32, h: &History, t_ms: u64) -> bool {
    let is_leader = |n: &str| kafka.broker_id(n) == Some(leader);
    match target {
        Target::Role(role) => {
            let named = kafka.partitions().into_iter().find(|p| kafka.role_leader(p) == *role);
            named.and_then(|p| h.leader_at(&p, t_ms)) == Some(leader)
        }
        Target::Node(n) => is_leader(n),
        Target::Nodes(ns) => ns.iter().any(|n| is_leader(n)),
        Target::Zone(z) => outcome.world.topology.in_zone(z).any(is_leader),
        _ => false,
    }
}
