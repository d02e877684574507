//! The cache's own promises: a hit returns exactly what the source of truth holds, an expired
//! key is never served, and writes are acknowledged again once the faults are over. What the
//! cache lost is recorded, not judged: a lost entry costs a miss that is refilled from the source.
//!
//! After the ending's power loss of every member, the verifier must find a master through the
//! Sentinels, and that master must hold nothing: the members run without persistence
//! (`appendonly no`, `save ""`), so a key that survives came from memory no node should have
//! (`unexpected survivor`). What the power loss took is counted.

use std::collections::BTreeSet;

use sim::{Observations, Outcome};
use system::redis::RedisCluster;

use super::checker::{acks, read_back, SentinelView, LIST_AT_MOST};
use super::history::CacheObserved;
use super::workload::EXPIRY_SLACK_MS;
use crate::scenario::{Checker, Verdict};

pub struct CacheChecker {
    pub redis: RedisCluster,
    /// Clients stop writing here: recovery can only be judged from faults before it.
    pub writers_stop_ms: u64,
}

/// What the reads say.
#[derive(Default)]
struct Reads {
    hits: u64,
    misses: u64,
    session_checks: u64,
    wrong: Vec<String>,
    expired: Vec<String>,
}

impl Checker for CacheChecker {
    fn check(&self, outcome: &Outcome, verdict: &mut Verdict) {
        let reads = outcome.observations(|o| self.reads(o));
        verdict.violations_upto("cache served wrong data", reads.wrong, LIST_AT_MOST);
        verdict.violations_upto("expired key served", reads.expired, LIST_AT_MOST);
        let total = reads.hits + reads.misses;
        verdict.metric("cache_hits", reads.hits as f64);
        verdict.metric("cache_hit_ratio", if total == 0 { 0.0 } else { reads.hits as f64 / total as f64 });
        verdict.metric("cache_expiry_checks", reads.session_checks as f64);
        self.recovery(outcome, verdict);
        self.lost(outcome, verdict);
        self.recovered(outcome, verdict);
    }
}

impl CacheChecker {
    fn reads(&self, o: &sim::Observations) -> Reads {
        let mut r = Reads::default();
        let ours = |node: &str| self.redis.nodes().iter().any(|n| n == node);
        for seen in o.of::<CacheObserved>() {
            match seen.value {
                CacheObserved::Read { key, node, returned, source } if ours(&node) => match returned {
                    None => r.misses += 1,
                    Some(v) => {
                        r.hits += 1;
                        if v != source {
                            r.wrong.push(format!(
                                "{key} from {node} at {} ms was {v:?}, the source says {source:?}",
                                seen.t_ms
                            ));
                        }
                    }
                },
                CacheObserved::SessionRead { key, node, acked_at_ms, ttl_ms, returned } if ours(&node) => {
                    if seen.t_ms < acked_at_ms + ttl_ms + EXPIRY_SLACK_MS {
                        continue;
                    }
                    r.session_checks += 1;
                    if returned.is_some() {
                        r.expired.push(format!(
                            "{key} (PX {ttl_ms}, acknowledged at {acked_at_ms} ms) returned by {node} at {} ms",
                            seen.t_ms
                        ));
                    }
                }
                _ => {}
            }
        }
        r
    }

    /// The state after the ending's power loss, as the verifier read it.
    fn recovered(&self, outcome: &Outcome, verdict: &mut Verdict) {
        let (recovery_ms, found) = outcome.observations(|o| {
            let found = o.of::<CacheObserved>().find_map(|c| match c.value {
                CacheObserved::Recovered { node, keys } if self.redis.nodes().contains(&node) => Some((node, keys)),
                _ => None,
            });
            (o.recovery_started_ms(), found)
        });
        if recovery_ms.is_none() {
            return;
        }
        let Some((node, keys)) = found else {
            verdict.violation("liveness", "after the power loss the verifier found no master through the Sentinels");
            return;
        };
        verdict.metric("cache_keys_after_power_loss", keys.len() as f64);
        let listed: Vec<String> = keys
            .iter()
            .map(|k| format!("{k} on {node} after a power loss of every member, which run with appendonly no"))
            .collect();
        verdict.violations_upto("unexpected survivor", listed, LIST_AT_MOST);
    }

    /// A write is acknowledged after the last heal (or the last fault, or the start).
    fn recovery(&self, outcome: &Outcome, verdict: &mut Verdict) {
        let (from, acks) =
            outcome.observations(|o| (o.last_heal_ms().or(o.last_fault_ms()).unwrap_or(0), acks(o, &self.redis)));
        if from >= self.writers_stop_ms {
            return;
        }
        match acks.iter().find(|a| a.t_ms > from) {
            Some(a) => verdict.metric("first_write_after_heal_ms", (a.t_ms - from) as f64),
            None => {
                verdict.violation("liveness", format!("no cache write acknowledged after the last fault at {from} ms"))
            }
        }
    }

    fn lost(&self, outcome: &Outcome, verdict: &mut Verdict) {
        if outcome.observations(|o| self.lost_in(o, verdict)) {
            outcome.world.sometimes("redis.cache_lost_writes");
        }
    }

    /// Acknowledged writes the final master no longer holds (of those whose TTL outlives the
    /// read-back), each data lost, and how many of them a demoted master had acknowledged;
    /// whether any was lost.
    fn lost_in(&self, o: &Observations, verdict: &mut Verdict) -> bool {
        let (view, acks, back) = (SentinelView::read(o, &self.redis), acks(o, &self.redis), read_back(o, &self.redis));
        let Some((back_ms, _, keys)) = back else {
            verdict.violation("liveness", "the final read-back found no master");
            return false;
        };
        let kept: BTreeSet<&str> = keys.iter().map(String::as_str).collect();
        let expected: Vec<_> = acks.iter().filter(|a| a.t_ms < back_ms && a.outlives(back_ms)).collect();
        let lost: Vec<_> = expected.iter().filter(|a| !kept.contains(a.key.as_str())).collect();
        for a in &lost {
            verdict.data_lost("cache write", a.t_ms);
        }
        let on_demoted = lost.iter().filter(|a| a.node != view.master_at(a.t_ms)).count();
        verdict.metric("cache_acked_writes", expected.len() as f64);
        verdict.metric("cache_lost_writes", lost.len() as f64);
        verdict.metric("cache_lost_writes_on_demoted_master", on_demoted as f64);
        let ratio = if expected.is_empty() { 0.0 } else { lost.len() as f64 / expected.len() as f64 };
        verdict.metric("cache_lost_ratio", ratio);
        !lost.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use sim::Observation;

    use super::*;
    use crate::scenario::Lost;

    fn lost(kept: &[&str]) -> Vec<Lost> {
        let mut o = Observations::default();
        let mut cache =
            |t_ms, e: CacheObserved| o.push(t_ms, "app-1", CacheObserved::KIND, serde_json::to_value(e).unwrap());
        let ack = |key: &str| CacheObserved::WriteAcked { key: key.into(), node: "redis-1".into(), ttl_ms: 120_000 };
        cache(1_000, ack("doc:1:v1"));
        cache(2_000, ack("doc:2:v1"));
        let keys = kept.iter().map(|k| k.to_string()).collect();
        cache(30_000, CacheObserved::ReadBack { node: "redis-2".into(), keys });
        let checker = CacheChecker { redis: crate::redis_failover::spec(None).names(), writers_stop_ms: 25_000 };
        let mut v = Verdict::default();
        checker.lost_in(&o, &mut v);
        assert!(v.violations.is_empty(), "{:?}", v.violations);
        v.lost
    }

    #[test]
    fn an_acknowledged_write_the_read_back_lacks_is_data_lost() {
        assert!(lost(&["doc:1:v1", "doc:2:v1"]).is_empty());
        assert_eq!(lost(&["doc:1:v1"]), vec![Lost { what: "cache write".into(), acked_at_ms: 2_000 }]);
    }
}
