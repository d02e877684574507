//! The `kafka-partition` verdict beyond the log and offset invariants (own files): the liveness
//! bounds after the faults, and the run's metrics — leader failover time, produce recovery,
//! rebalance time and throughput.
//!
//! Recovery is measured from what happened, never from the schedule a seed drew: from the last
//! fault that healed everything (or else the last fault, or else the start), and for the group
//! also from the last time a member left on purpose. A bound is judged only when the run left
//! time enough after that point to meet it.

use std::collections::{BTreeMap, BTreeSet};

use sim::observation::FaultApplied;
use sim::{Fault, Outcome, Target};
use system::kafka::{BrokerId, KafkaCluster, TopicPartition};

use super::history::{GroupHistory, History, Membership};
use crate::scenario::{Checker, Verdict};

/// The consumer group recovers and the producers are acknowledged again after the faults, and
/// every acknowledged record in the log is consumed.
pub struct ProgressChecker {
    pub kafka: KafkaCluster,
    pub group: String,
    /// The topic the group consumes.
    pub topic: String,
    pub consumers: Vec<String>,
    /// The group must be whole again this long after the last disturbance.
    pub rebalance_bound_ms: u64,
    /// Producers must be acknowledged again this long after the last heal.
    pub produce_recovery_bound_ms: u64,
    /// Producers start no batch after this (workload configuration).
    pub produce_until_ms: u64,
}

impl Checker for ProgressChecker {
    fn check(&self, outcome: &Outcome, v: &mut Verdict) {
        let (h, recovery_from_ms, clients_stopped_ms) = outcome.observations(|o| {
            let from = o.last_heal_ms().or(o.last_fault_ms()).unwrap_or(0);
            (History::read(o, &self.kafka), from, o.ending_started_ms())
        });
        let g = h.group(&self.group);
        // The workload's end: where the run's ending stopped the clients, if it has one.
        let end_ms = clients_stopped_ms.unwrap_or(outcome.sim_time_ms);
        let whole = self.rebalanced(g, recovery_from_ms, end_ms, v);
        if whole {
            self.consumed(outcome, &h, g, v);
        }
        self.produce_recovered(&h, recovery_from_ms, v);
        let processed: BTreeSet<(&TopicPartition, u64)> = g.processed.iter().map(|p| (&p.tp, p.offset)).collect();
        let produce_s = self.produce_until_ms.min(end_ms).max(1) as f64 / 1000.0;
        v.metric("produced_per_sim_s", h.acked.len() as f64 / produce_s);
        v.metric("consumed_per_sim_s", processed.len() as f64 / (end_ms.max(1) as f64 / 1000.0));
        v.metric("produce_attempts_per_batch", h.produce_attempts as f64 / h.produce_batches.max(1) as f64);
        v.metric("duplicate_acks_count", h.duplicate_acks as f64);
        v.metric("acks_all", f64::from(u8::from(self.kafka.acks() == system::kafka::Acks::All)));
    }
}

impl ProgressChecker {
    /// The group is whole again within the bound: every consumer holds an assignment of the
    /// same generation and together they cover every partition. Returns whether it is whole.
    fn rebalanced(&self, g: &GroupHistory, recovery_from_ms: u64, end_ms: u64, v: &mut Verdict) -> bool {
        let mut last: BTreeMap<&str, &Membership> = BTreeMap::new();
        for m in &g.memberships {
            last.insert(m.consumer.as_str(), m);
        }
        let generations: BTreeSet<Option<u64>> =
            self.consumers.iter().map(|c| last.get(c.as_str()).and_then(|m| m.generation)).collect();
        let covered: BTreeSet<&TopicPartition> = last.values().flat_map(|m| m.partitions.iter()).collect();
        let partitions = self.kafka.partitions_of(&self.topic).len();
        let whole = generations.len() == 1 && !generations.contains(&None) && covered.len() == partitions;
        // A member leaving on purpose disturbs the group as a fault does.
        let left_ms = g.memberships.iter().filter(|m| m.left).map(|m| m.t_ms).max().unwrap_or(0);
        let from = recovery_from_ms.max(left_ms);
        if end_ms < from + self.rebalance_bound_ms {
            return whole;
        }
        if !whole {
            let n = covered.len();
            let message = format!(
                "the consumer group is not stable at the end (generations {generations:?}, {n} of {partitions} partitions assigned)"
            );
            v.violation("liveness", message);
            return false;
        }
        let settled = last.values().map(|m| m.t_ms).max().unwrap_or(0);
        let after = settled.saturating_sub(from);
        v.metric("rebalance_after_heal_ms", after as f64);
        if after > self.rebalance_bound_ms {
            let bound = self.rebalance_bound_ms;
            v.violation("liveness", format!("the group settled {after} ms after the heal (bound {bound} ms)"));
        }
        true
    }

    /// Every acknowledged record still in the log was consumed by the end.
    fn consumed(&self, outcome: &Outcome, h: &History, g: &GroupHistory, v: &mut Verdict) {
        let processed: BTreeSet<&str> = g.processed.iter().map(|p| p.value.as_str()).collect();
        let logs = self.kafka.final_logs(&outcome.world);
        let in_log: BTreeSet<&str> = logs
            .iter()
            .filter(|(tp, _)| tp.topic == self.topic)
            .filter_map(|(_, fp)| fp.leader_log())
            .flat_map(|log| log.iter().map(|r| r.value.as_str()))
            .collect();
        let unconsumed: Vec<&str> = h
            .acked
            .iter()
            .filter(|a| a.tp.topic == self.topic)
            .map(|a| a.value.as_str())
            .filter(|v| in_log.contains(v) && !processed.contains(v))
            .collect();
        if let Some(first) = unconsumed.first() {
            let n = unconsumed.len();
            v.violation("liveness", format!("{n} acknowledged records were never consumed (first: {first})"));
        }
    }

    /// Producers are acknowledged again within the bound after the last heal (when they still
    /// produce then).
    fn produce_recovered(&self, h: &History, from: u64, v: &mut Verdict) {
        if from + self.produce_recovery_bound_ms > self.produce_until_ms {
            return;
        }
        match h.acked.iter().map(|a| a.t_ms).filter(|t| *t >= from).min() {
            Some(t) => {
                v.metric("produce_recovery_after_heal_ms", (t - from) as f64);
                if t - from > self.produce_recovery_bound_ms {
                    let after = t - from;
                    v.violation("liveness", format!("first acknowledgement after the heal came {after} ms after it"));
                }
            }
            None => v.violation("liveness", "no record was acknowledged after the heal"),
        }
    }
}

/// Leader failover time: from a fault that cut a partition's leader from the controllers (a
/// kill, isolation or pause of it, its zone's loss, or a partition with the controllers on the
/// other side) to the controllers committing another leader. Metrics only.
pub struct FailoverMetrics {
    pub kafka: KafkaCluster,
}

impl Checker for FailoverMetrics {
    fn check(&self, outcome: &Outcome, v: &mut Verdict) {
        let (h, faults) = outcome.observations(|o| {
            let faults: Vec<(u64, FaultApplied)> = o.faults().map(|f| (f.t_ms, f.value)).collect();
            (History::read(o, &self.kafka), faults)
        });
        let times = self.failover_times(outcome, &h, &faults);
        if !times.is_empty() {
            let mean = times.iter().sum::<u64>() as f64 / times.len() as f64;
            v.metric("leader_failover_ms", mean);
            v.metric("leader_failover_max_ms", *times.iter().max().unwrap_or(&0) as f64);
            v.metric("leader_failovers_count", times.len() as f64);
        }
        let elections = h.leader_changes.iter().filter(|c| c.from.is_some() && c.to.is_some()).count();
        v.metric("leader_elections_count", elections as f64);
    }
}

impl FailoverMetrics {
    fn failover_times(&self, outcome: &Outcome, h: &History, faults: &[(u64, FaultApplied)]) -> Vec<u64> {
        let mut times = Vec::new();
        for (i, (at_ms, f)) in faults.iter().enumerate() {
            // Until the next fault: a later failover may be that fault's doing.
            let until = faults[i + 1..].iter().find(|(_, n)| is_fault(&n.fault)).map_or(u64::MAX, |(t, _)| *t);
            for tp in self.kafka.partitions() {
                let Some(old) = h.leader_at(&tp, *at_ms) else { continue };
                if !self.cuts_from_controllers(outcome, f, old) {
                    continue;
                }
                let next = h
                    .leader_changes
                    .iter()
                    .filter(|c| c.tp == tp && c.t_ms > *at_ms && c.t_ms < until)
                    .find(|c| c.to.is_some_and(|l| l != old));
                if let Some(c) = next {
                    times.push(c.t_ms - at_ms);
                }
            }
        }
        times
    }

    /// Whether the applied fault cut broker `leader` from the controllers.
    fn cuts_from_controllers(&self, outcome: &Outcome, f: &FaultApplied, leader: BrokerId) -> bool {
        let Some(node) = self.kafka.broker_node(leader) else { return false };
        let touched = |n: &str| f.nodes.iter().any(|m| m == n);
        match &f.fault {
            Fault::Kill(_) | Fault::Isolate(_) | Fault::Pause(_) => touched(node),
            Fault::Partition { a, b } => {
                let (sa, sb) = sides(outcome, f, a, b);
                let controller_in = |side: &BTreeSet<String>| self.kafka.controllers().iter().any(|c| side.contains(c));
                (sa.contains(node) && controller_in(&sb)) || (sb.contains(node) && controller_in(&sa))
            }
            _ => false,
        }
    }
}

/// The two sides of an applied partition: a side named by role resolved when it fired, so it
/// is what the other side's names leave of the nodes the fault touched.
fn sides(outcome: &Outcome, f: &FaultApplied, a: &Target, b: &Target) -> (BTreeSet<String>, BTreeSet<String>) {
    let all: BTreeSet<String> = f.nodes.iter().cloned().collect();
    let (na, nb) = (named(outcome, a), named(outcome, b));
    let rest = |other: &Option<BTreeSet<String>>| {
        all.difference(other.as_ref().unwrap_or(&BTreeSet::new())).cloned().collect()
    };
    let sa = na.clone().unwrap_or_else(|| rest(&nb));
    let sb = nb.unwrap_or_else(|| rest(&na));
    (sa, sb)
}

/// The nodes a target names by itself (not by role).
fn named(outcome: &Outcome, t: &Target) -> Option<BTreeSet<String>> {
    let topology = &outcome.world.topology;
    match t {
        Target::Node(n) => Some([n.clone()].into()),
        Target::Nodes(ns) => Some(ns.iter().cloned().collect()),
        Target::Zone(z) => Some(topology.in_zone(z).map(String::from).collect()),
        Target::Region(r) => Some(topology.in_region(r).map(String::from).collect()),
        Target::All => Some(topology.names().map(String::from).collect()),
        Target::Role(_) => None,
    }
}

fn is_fault(f: &Fault) -> bool {
    !matches!(f, Fault::HealAll | Fault::HealNetwork | Fault::Resume(_) | Fault::Disk { .. })
}
