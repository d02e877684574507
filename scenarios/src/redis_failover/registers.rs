//! Mutable registers: no read returns a value older than one the same master acknowledged, in
//! the same tenure, before the read began; and no deleted key comes back on it. Writes lost to a
//! failover are counted, not judged.
//!
//! What Redis promises here, and what it does not. A master applies a write in memory before
//! acknowledging it, and serves reads from that memory: as long as one node stays master (no
//! restart, no role change: its tenure, read from its [`RoleChanged`] observations), every read it
//! serves reflects every write it acknowledged before the read began. Across a failover there is
//! no such promise: replication is asynchronous, so the promoted replica may lack writes the old
//! master acknowledged (`min-replicas-to-write` narrows that window but does not close it, and
//! `WAIT` is not modelled). A read on a new master that returns a value older than a write an old
//! master acknowledged is therefore counted as a write lost at a failover, with the switch that
//! lost it, and never reported as a violation (but as data lost, `register write`).
//!
//! Judged, for a read `r` of key `k` served by node `R`, against every write `w` of `k` that `R`
//! acknowledged before `r` was invoked, with no role change of `R` from `w`'s invocation to `r`'s
//! completion:
//! - `r` returned write `x`, acknowledged before `w` was invoked (so `R` applied `x` before `w`):
//!   `stale read`, or `resurrected key` when `w` was a delete;
//! - `r` returned nothing, `w` was a `SET`, and no delete of `k` could have come after `w` (every
//!   delete invoked before `r` completed was acknowledged before `w` was invoked): `stale read`.
//!
//! A write that failed (no answer) may have been applied at any later time, so it never makes a
//! read stale, and it may explain an absent key. A read returning a value no write of its key
//! produced is `register read wrong value`.
//!
//! Reads after the ending's power loss are not judged here: with `appendonly no` every member
//! comes back empty, which the cache checker judges ([`super::cache`]); the registers whose
//! newest acknowledged write was a `SET` are counted as lost to the power loss.

use std::collections::BTreeMap;

use sim::{Observations, Outcome};
use system::redis::{RedisCluster, RoleChanged};

use super::checker::{SentinelView, LIST_AT_MOST};
use super::history::RegisterObserved;
use crate::scenario::{Checker, Verdict};

pub struct RegisterChecker {
    pub redis: RedisCluster,
}

/// A register write: acknowledged (`node` and `acked_ms` set) or failed.
#[derive(Clone, Debug)]
struct Write {
    key: String,
    seq: u64,
    delete: bool,
    invoked_ms: u64,
    acked: Option<(String, u64)>,
}

#[derive(Clone, Debug)]
struct Read {
    key: String,
    node: String,
    invoked_ms: u64,
    done_ms: u64,
    seq: Option<u64>,
}

/// What the history holds, read once from the observations.
struct History {
    writes: BTreeMap<u64, Write>,
    reads: Vec<Read>,
    /// When each node of this cluster changed role (a restart included).
    role_changes: BTreeMap<String, Vec<u64>>,
}

impl History {
    fn read(o: &Observations, redis: &RedisCluster) -> Self {
        let ours = |n: &str| redis.nodes().iter().any(|m| m == n);
        let mut writes = BTreeMap::new();
        let mut reads = Vec::new();
        for seen in o.of::<RegisterObserved>() {
            match seen.value {
                RegisterObserved::Acked { key, seq, delete, node, invoked_ms } if ours(&node) => {
                    writes.insert(seq, Write { key, seq, delete, invoked_ms, acked: Some((node, seen.t_ms)) });
                }
                RegisterObserved::Acked { key, seq, delete, invoked_ms, .. }
                | RegisterObserved::Failed { key, seq, delete, invoked_ms } => {
                    writes.insert(seq, Write { key, seq, delete, invoked_ms, acked: None });
                }
                RegisterObserved::Read { key, node, invoked_ms, seq } if ours(&node) => {
                    reads.push(Read { key, node, invoked_ms, done_ms: seen.t_ms, seq });
                }
                RegisterObserved::Read { .. } => {}
            }
        }
        let mut role_changes: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for seen in o.of::<RoleChanged>().filter(|s| ours(s.node)) {
            role_changes.entry(seen.node.to_string()).or_default().push(seen.t_ms);
        }
        History { writes, reads, role_changes }
    }

    /// `node` kept its role from `from_ms` through `to_ms`.
    fn same_tenure(&self, node: &str, from_ms: u64, to_ms: u64) -> bool {
        self.role_changes.get(node).is_none_or(|ts| !ts.iter().any(|t| *t >= from_ms && *t <= to_ms))
    }
}

/// What one read says.
enum Finding {
    Fine,
    /// (kind, message) of a violation.
    Violation(&'static str, String),
    /// The read missed these acknowledged writes of other masters or tenures: lost to a failover.
    Lost(Vec<u64>),
}

impl Checker for RegisterChecker {
    fn check(&self, outcome: &Outcome, verdict: &mut Verdict) {
        if outcome.observations(|o| self.judge(o, verdict)) {
            outcome.world.sometimes("redis.register_write_lost_at_failover");
        }
    }
}

impl RegisterChecker {
    /// Judges the register history in `o`; whether a failover lost an acknowledged write.
    fn judge(&self, o: &Observations, verdict: &mut Verdict) -> bool {
        let (mut h, view, recovery_ms) =
            (History::read(o, &self.redis), SentinelView::read(o, &self.redis), o.recovery_started_ms());
        if let Some(from_ms) = recovery_ms {
            h.reads.retain(|r| r.invoked_ms < from_ms);
            verdict.metric("register_values_lost_at_power_loss", live_registers(&h) as f64);
        }
        let mut stale = Vec::new();
        let mut resurrected = Vec::new();
        let mut wrong = Vec::new();
        let mut lost: BTreeMap<u64, u64> = BTreeMap::new();
        for r in &h.reads {
            match judge(&h, r) {
                Finding::Fine => {}
                Finding::Violation("resurrected key", m) => resurrected.push(m),
                Finding::Violation("register read wrong value", m) => wrong.push(m),
                Finding::Violation(_, m) => stale.push(m),
                Finding::Lost(seqs) => {
                    // Charged to the newest configuration the Sentinels held when the read began.
                    let epoch = view.at(r.invoked_ms).1;
                    for seq in seqs {
                        lost.entry(seq).or_insert(epoch);
                    }
                }
            }
        }
        for seq in lost.keys() {
            let acked_ms = h.writes.get(seq).and_then(|w| w.acked.as_ref()).map_or(0, |(_, at)| *at);
            verdict.data_lost("register write", acked_ms);
        }
        verdict.violations_upto("stale read", stale, LIST_AT_MOST);
        verdict.violations_upto("resurrected key", resurrected, LIST_AT_MOST);
        verdict.violations_upto("register read wrong value", wrong, LIST_AT_MOST);
        let acked = h.writes.values().filter(|w| w.acked.is_some()).count();
        let epochs: std::collections::BTreeSet<u64> = lost.values().copied().collect();
        verdict.metric("register_acked_writes", acked as f64);
        verdict.metric("register_reads", h.reads.len() as f64);
        verdict.metric("register_writes_lost_at_failover", lost.len() as f64);
        verdict.metric("register_failovers_that_lost_writes", epochs.len() as f64);
        !lost.is_empty()
    }
}

/// Registers whose newest acknowledged write (by acknowledgement time) set a value.
fn live_registers(h: &History) -> usize {
    let mut newest: BTreeMap<&str, (u64, bool)> = BTreeMap::new();
    for w in h.writes.values() {
        if let Some((_, at)) = &w.acked {
            let e = newest.entry(&w.key).or_insert((*at, w.delete));
            if *at >= e.0 {
                *e = (*at, w.delete);
            }
        }
    }
    newest.values().filter(|(_, delete)| !delete).count()
}

/// Judges one read against the writes of its key acknowledged before it began.
fn judge(h: &History, r: &Read) -> Finding {
    let returned = r.seq.and_then(|s| h.writes.get(&s));
    if let Some(s) = r.seq.filter(|_| returned.is_none_or(|x| x.key != r.key)) {
        let whose = returned.map_or("no write of the run".to_string(), |x| format!("a write of {}", x.key));
        let message = format!(
            "{} read on {} ({}..{} ms) returned value {s}, which {whose} produced",
            r.key, r.node, r.invoked_ms, r.done_ms
        );
        return Finding::Violation("register read wrong value", message);
    }
    let before: Vec<&Write> = h
        .writes
        .values()
        .filter(|w| w.key == r.key && w.acked.as_ref().is_some_and(|(_, at)| *at < r.invoked_ms))
        .collect();
    let mut lost = Vec::new();
    for w in before {
        let (node, acked_ms) = w.acked.as_ref().expect("only acknowledged writes");
        let tenure = *node == r.node && h.same_tenure(node, w.invoked_ms, r.done_ms);
        let superseded = match (r.seq, returned) {
            // `x` was acknowledged before `w` was invoked: `w` comes after it everywhere.
            (Some(_), Some(x)) => x.seq != w.seq && x.acked.as_ref().is_some_and(|(_, at)| *at < w.invoked_ms),
            (Some(_), None) => false,
            // Nothing returned: `w` set the key and no delete can have come after it.
            (None, _) => !w.delete && !deleted_after(h, w, r.done_ms),
        };
        if !superseded {
            continue;
        }
        if !tenure {
            lost.push(w.seq);
            continue;
        }
        let got = r.seq.map_or("nothing".to_string(), |s| format!("write {s}"));
        let what = if w.delete { "deleted" } else { "overwritten" };
        let message = format!(
            "{} read on {} ({}..{} ms) returned {got}; {node} had {what} it with write {} acknowledged at \
             {acked_ms} ms, as master throughout",
            r.key, r.node, r.invoked_ms, r.done_ms, w.seq
        );
        let kind = if w.delete { "resurrected key" } else { "stale read" };
        return Finding::Violation(kind, message);
    }
    if lost.is_empty() {
        Finding::Fine
    } else {
        Finding::Lost(lost)
    }
}

/// Some delete of `w`'s key may have been applied after `w`: invoked before `until_ms` and not
/// acknowledged before `w` was invoked (acknowledged or not: it may explain an absent key).
fn deleted_after(h: &History, w: &Write, until_ms: u64) -> bool {
    h.writes.values().any(|d| {
        d.key == w.key
            && d.delete
            && d.invoked_ms <= until_ms
            && d.acked.as_ref().is_none_or(|(_, at)| *at >= w.invoked_ms)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sim::Observation;

    use crate::redis_failover::history::RegisterObserved as R;

    fn observed(events: Vec<(u64, R)>) -> Observations {
        let mut o = Observations::default();
        for (t_ms, e) in events {
            o.push(t_ms, "app-1", R::KIND, serde_json::to_value(e).expect("serializes"));
        }
        o
    }

    fn lost(events: Vec<(u64, R)>) -> Vec<crate::scenario::Lost> {
        let checker = RegisterChecker { redis: crate::redis_failover::spec(None).names() };
        let mut v = Verdict::default();
        checker.judge(&observed(events), &mut v);
        assert!(v.violations.is_empty(), "{:?}", v.violations);
        v.lost
    }

    #[test]
    fn a_write_a_read_on_another_master_misses_is_data_lost() {
        let set = R::Acked { key: "reg:0".into(), seq: 1, delete: false, node: "redis-1".into(), invoked_ms: 900 };
        let read = |node: &str, seq| R::Read { key: "reg:0".into(), node: node.into(), invoked_ms: 2_000, seq };
        assert!(lost(vec![(1_000, set.clone()), (2_010, read("redis-1", Some(1)))]).is_empty());
        let lost = lost(vec![(1_000, set), (2_010, read("redis-2", None))]);
        assert_eq!(lost, vec![crate::scenario::Lost { what: "register write".into(), acked_at_ms: 1_000 }]);
    }
}
