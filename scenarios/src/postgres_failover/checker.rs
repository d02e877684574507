//! The `postgres-failover` invariants. The members' WAL files are read back from their disks at
//! the end of the run, as an operator would inspect the data directories; the newest of them
//! (highest epoch, then index) is the final primary's timeline every other log is held to.

use std::collections::{BTreeMap, BTreeSet};

use sim::Outcome;
use system::postgres::wal::{Body, Position, Wal};

use super::history::History;
use super::{names, FAILOVER_BOUND_MS, HEAL_AT_MS};
use crate::scenario::Verdict;

/// At most this many violations of one kind are listed; a count says how many more.
const LIST_AT_MOST: usize = 5;

/// Each member's WAL as found on its disk at the end.
pub(crate) fn final_logs(outcome: &Outcome) -> Vec<(String, Wal)> {
    names().durable_logs(outcome)
}

/// The most advanced log, the final primary's: the last promoted member's when it is among the
/// most advanced (caught-up standbys hold the same log).
pub(crate) fn newest<'a>(logs: &'a [(String, Wal)], h: &History) -> Option<&'a (String, Wal)> {
    let best = logs.iter().map(|(_, w)| w.position()).max()?;
    let last_promoted = h.promotions.last().map(|p| p.0.as_str());
    logs.iter()
        .filter(|(_, w)| w.position() == best)
        .max_by_key(|(n, _)| (Some(n.as_str()) == last_promoted, std::cmp::Reverse(n.clone())))
}

pub fn check(outcome: &Outcome, h: &History, fault_at_ms: u64, fault: &str) -> Verdict {
    let mut v = Verdict::default();
    let logs = final_logs(outcome);
    let Some((final_node, final_wal)) = newest(&logs, h) else {
        v.violation("lost commit", "no member has a WAL at all");
        return v;
    };
    lost_commits(h, final_node, final_wal, &mut v);
    split_brain(h, &mut v);
    replica_reads(h, &mut v);
    liveness(h, fault_at_ms, fault, &mut v);
    converged(&logs, final_node, final_wal, &mut v);
    let sim_s = outcome.sim_time_ms as f64 / 1000.0;
    v.metric("commits_per_sim_s", h.acks.len() as f64 / sim_s);
    v.metric("indeterminate_commits", h.indeterminate as f64);
    v.metric("rewinds", h.rewinds.len() as f64);
    v
}

fn list(v: &mut Verdict, mut lines: Vec<String>, kind: &str) {
    let more = lines.len().saturating_sub(LIST_AT_MOST);
    lines.truncate(LIST_AT_MOST);
    for l in lines {
        v.violation_line(l);
    }
    if more > 0 {
        v.violation(kind, format!("{more} more"));
    }
}

/// Acknowledged commits on credentials and permissions ("protected", whatever durability the
/// store was configured with) must be on the final timeline, at the position they were
/// acknowledged at. Others may be lost (asynchronous commit): counted.
fn lost_commits(h: &History, final_node: &str, final_wal: &Wal, v: &mut Verdict) {
    let on_timeline: BTreeMap<&str, Position> = final_wal
        .records()
        .iter()
        .filter_map(|r| match &r.body {
            Body::Commit { txn, .. } => Some((txn.as_str(), Position { epoch: r.epoch, index: r.index })),
            Body::Promote => None,
        })
        .collect();
    let mut lost = Vec::new();
    let mut lost_async = 0u64;
    for a in &h.acks {
        let want = Position { epoch: a.epoch, index: a.index };
        if on_timeline.get(a.txn.as_str()) == Some(&want) {
            continue;
        }
        if a.must_survive() {
            lost.push(format!(
                "lost commit: {} {} acknowledged by {} (epoch {}, index {}) at {} ms is missing from the final primary {final_node}",
                a.kind.name(),
                a.txn,
                a.node,
                a.epoch,
                a.index,
                a.at_ms
            ));
        } else {
            lost_async += 1;
        }
    }
    let durable = h.acks.iter().filter(|a| a.must_survive()).count();
    v.metric("protected_commits", durable as f64);
    v.metric("lost_protected_commits", lost.len() as f64);
    v.metric("lost_unprotected_commits", lost_async as f64);
    list(v, lost, "lost commit");
}

/// One epoch, one primary: every acknowledgement and promotion of an epoch names one node.
fn split_brain(h: &History, v: &mut Verdict) {
    let mut by_epoch: BTreeMap<u64, BTreeSet<&str>> = BTreeMap::new();
    for (node, epoch, _, _) in &h.promotions {
        by_epoch.entry(*epoch).or_default().insert(node);
    }
    let mut lines = Vec::new();
    for a in &h.acks {
        let promoted = by_epoch.get(&a.epoch).is_some_and(|s| s.contains(a.node.as_str()));
        if !promoted {
            lines.push(format!("split brain: {} acknowledged {} in epoch {} without being its primary", a.node, a.txn, a.epoch));
        }
    }
    for (epoch, nodes) in &by_epoch {
        if nodes.len() > 1 {
            lines.push(format!("split brain: epoch {epoch} had primaries {nodes:?}"));
        }
    }
    list(v, lines, "split brain");
}

/// A replica may be stale, never ahead: every row it serves was flushed by its epoch's primary.
fn replica_reads(h: &History, v: &mut Verdict) {
    let mut lines = Vec::new();
    let (mut max_lag_ms, mut max_lag_records) = (0, 0);
    for r in &h.reads {
        max_lag_ms = max_lag_ms.max(r.lag_ms);
        max_lag_records = max_lag_records.max(r.lag_records);
        let applied_ok = committed(h, r.applied.epoch, r.applied.index, r.at_ms);
        let ahead = r.rows.iter().find(|(_, e, i)| !committed(h, *e, *i, r.at_ms));
        if let Some((key, e, i)) = ahead {
            lines.push(format!(
                "replica ahead of primary: {} served {key} written at epoch {e} index {i} at {} ms, before the primary committed it",
                r.node, r.at_ms
            ));
        } else if !applied_ok {
            lines.push(format!(
                "replica ahead of primary: {} reported applying {:?} at {} ms, beyond the primary's flush",
                r.node, r.applied, r.at_ms
            ));
        }
    }
    v.metric("replica_reads", h.reads.len() as f64);
    v.metric("replica_lag_max_ms", max_lag_ms as f64);
    v.metric("replica_lag_max_records", max_lag_records as f64);
    list(v, lines, "replica ahead of primary");
}

/// Whether record `index` of `epoch` was committed by `at_ms`: flushed by that epoch's
/// primary, or inherited by a later primary promoted past it (records an old primary flushed
/// while being demoted become part of its log without a flush report).
fn committed(h: &History, epoch: u64, index: u64, at_ms: u64) -> bool {
    index <= h.flushed_by(epoch, at_ms) || h.promotions.iter().any(|p| p.3 <= at_ms && p.1 > epoch && p.2 > index)
}

/// A new primary within the bound of the fault; commits again after the heal.
fn liveness(h: &History, fault_at_ms: u64, fault: &str, v: &mut Verdict) {
    let before = h.promotions.iter().filter(|p| p.3 <= fault_at_ms).map(|p| p.1).max().unwrap_or(0);
    match h.promotions.iter().find(|p| p.3 > fault_at_ms && p.1 > before) {
        Some((_, _, _, at)) if at - fault_at_ms <= FAILOVER_BOUND_MS => v.metric("failover_ms", (at - fault_at_ms) as f64),
        Some((node, epoch, _, at)) => v.violation("liveness", format!("{node} became primary (epoch {epoch}) {} ms after the {fault} at {fault_at_ms} ms, over the {FAILOVER_BOUND_MS} ms bound",
            at - fault_at_ms
        )),
        None => v.violation("liveness", format!("no new primary after the {fault} of the primary at {fault_at_ms} ms")),
    }
    match h.acks.iter().find(|a| a.at_ms > HEAL_AT_MS) {
        Some(a) => v.metric("first_commit_after_heal_ms", (a.at_ms - HEAL_AT_MS) as f64),
        None => v.violation("liveness", format!("no commit acknowledged after the heal at {HEAL_AT_MS} ms")),
    }
}

/// After the heal and a quiet end, every member holds exactly the final primary's log.
fn converged(logs: &[(String, Wal)], final_node: &str, final_wal: &Wal, v: &mut Verdict) {
    for (node, wal) in logs.iter().filter(|(n, _)| n != final_node) {
        let agree = wal.records().iter().zip(final_wal.records()).take_while(|(a, b)| a == b).count() as u64;
        if agree < wal.last_index() {
            v.violation("replicas diverged", format!("{node} differs from the final primary {final_node} at index {} (it holds {:?}, the primary {:?})",
                agree + 1,
                wal.position(),
                final_wal.position()
            ));
        } else if wal.last_index() < final_wal.last_index() {
            v.violation("liveness", format!("{node} did not catch up by the end ({:?}, the final primary {final_node} is at {:?})",
                wal.position(),
                final_wal.position()
            ));
        }
    }
}
