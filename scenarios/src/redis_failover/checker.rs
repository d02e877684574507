//! The `redis-failover` invariants and what the cache lost.

use sim::Outcome;

use super::history::History;
use super::{FAILOVER_BOUND_MS, FOLLOW_BOUND_MS, HEAL_AT_MS};
use crate::scenario::Verdict;

const LIST_AT_MOST: usize = 5;

pub fn check(outcome: &Outcome, h: &History, initial: &str, fault_at_ms: u64, fault: &str) -> Verdict {
    let mut v = Verdict::default();
    failover(h, fault_at_ms, fault, &mut v);
    demoted_masters(h, initial, &mut v);
    for line in h.bad_reads.iter().take(LIST_AT_MOST) {
        v.violation_line(line.clone());
    }
    if h.bad_reads.len() > LIST_AT_MOST {
        v.violation("cache served wrong data", format!("{} more", h.bad_reads.len() - LIST_AT_MOST));
    }
    lost(outcome, h, initial, &mut v);
    match h.writes.iter().find(|w| w.at_ms > HEAL_AT_MS) {
        Some(w) => v.metric("first_write_after_heal_ms", (w.at_ms - HEAL_AT_MS) as f64),
        None => v.violation("liveness", format!("no cache write acknowledged after the heal at {HEAL_AT_MS} ms")),
    }
    let reads = h.hits + h.misses;
    v.metric("cache_hits", h.hits as f64);
    v.metric("cache_hit_ratio", if reads == 0 { 0.0 } else { h.hits as f64 / reads as f64 });
    v.metric("cache_expiry_checks", h.expiry_checks as f64);
    v
}

/// A Sentinel promoted a new master within the bound, and clients wrote to it afterwards.
fn failover(h: &History, fault_at_ms: u64, fault: &str, v: &mut Verdict) {
    let Some((_, from, to, epoch, at)) = h.switches.iter().filter(|s| s.4 > fault_at_ms).min_by_key(|s| s.4) else {
        v.violation("sentinel failover", format!("no failover after the {fault} of the master at {fault_at_ms} ms"));
        return;
    };
    let took = at - fault_at_ms;
    v.metric("sentinel_failover_ms", took as f64);
    if took > FAILOVER_BOUND_MS {
        v.violation("sentinel failover", format!("{from} -> {to} (epoch {epoch}) took {took} ms after the {fault}, over the {FAILOVER_BOUND_MS} ms bound"
        ));
    }
    if !h.writes.iter().any(|w| w.node == *to && w.at_ms > *at) {
        v.violation(
            "clients did not follow",
            format!("no write acknowledged by the new master {to} after the failover at {at} ms"),
        );
    }
}

/// Once the faults have healed and the bound has passed, only the Sentinels' master acks.
fn demoted_masters(h: &History, initial: &str, v: &mut Verdict) {
    let deadline = HEAL_AT_MS + FOLLOW_BOUND_MS;
    let mut stale = 0;
    let mut late = Vec::new();
    for w in &h.writes {
        let master = h.master_at(initial, w.at_ms);
        if w.node == master {
            continue;
        }
        stale += 1;
        if w.at_ms > deadline {
            late.push(format!(
                "demoted master: {} acknowledged by {} at {} ms, {} ms after the heal, while the Sentinels' master was {master}",
                w.key,
                w.node,
                w.at_ms,
                w.at_ms - HEAL_AT_MS
            ));
        }
    }
    v.metric("writes_to_demoted_master", stale as f64);
    let more = late.len().saturating_sub(LIST_AT_MOST);
    for line in late.into_iter().take(LIST_AT_MOST) {
        v.violation_line(line);
    }
    if more > 0 {
        v.violation("demoted master", format!("{more} more"));
    }
}

/// Acknowledged writes the final master no longer holds (documents outlive the run). Recorded
/// as metrics and "sometimes" marks: losing them is the cache's nature, not a violation.
fn lost(outcome: &Outcome, h: &History, initial: &str, v: &mut Verdict) {
    let Some((_master, at, keys)) = &h.readback else {
        v.violation("liveness", "the final read-back found no master");
        return;
    };
    let acked: Vec<_> = h.writes.iter().filter(|w| w.at_ms < *at).collect();
    let lost: Vec<_> = acked.iter().filter(|w| !keys.contains(&w.key)).collect();
    let on_demoted = lost.iter().filter(|w| w.node != h.master_at(initial, w.at_ms)).count();
    v.metric("cache_acked_writes", acked.len() as f64);
    v.metric("cache_lost_writes", lost.len() as f64);
    v.metric("cache_lost_writes_on_demoted_master", on_demoted as f64);
    v.metric("cache_lost_ratio", if acked.is_empty() { 0.0 } else { lost.len() as f64 / acked.len() as f64 });
    if !lost.is_empty() {
        outcome.world.sometimes("redis.cache_lost_writes");
    }
    if on_demoted > 0 || acked.iter().any(|w| w.node != h.master_at(initial, w.at_ms)) {
        outcome.world.sometimes("redis.writes_to_demoted_master");
    }
}
