//! The `postgres-failover` invariants, as two checkers built from the cluster handle and bounds.
//!
//! [`SafetyChecker`]: every acknowledged commit judged by its `synchronous_commit` class (`on`
//! never lost; `local` lost only to a failover, counted; every loss is data lost for the report),
//! no older primary acknowledging after a newer one accepted a write (the dual-writer window
//! measured), one primary per epoch, replicas never ahead of the primary. [`LivenessChecker`]:
//! every fault that took the then-primary away is followed by a primary accepting writes within
//! a bound, commits resume after the last heal, and a world that ends healed ends converged.
//!
//! Both read only the observations and the members' disks: the members' WAL files are read back
//! at the end, as an operator would inspect the data directories, and the newest of them
//! (highest epoch, then index) is the final primary's timeline every other log is held to. Fault
//! times and kinds come from the faults the world applied, so a run given another schedule (a
//! file, a shrunk one, none) is judged by the same rules.

use std::collections::{BTreeMap, BTreeSet};

use sim::{Fault, Outcome};
use system::postgres::data::SyncCommit;
use system::postgres::wal::{Body, Position, Wal};
use system::postgres::PgCluster;

use super::history::{AppliedFault, History, Promotion};
use crate::scenario::{Checker, Verdict};

/// At most this many violations of one kind are listed; a count says how many more.
const LIST_AT_MOST: usize = 5;

/// The most advanced log, the final primary's: the last promoted member's when it is among the
/// most advanced (caught-up standbys hold the same log).
pub(crate) fn newest<'a>(logs: &'a [(String, Wal)], h: &History) -> Option<&'a (String, Wal)> {
    let best = logs.iter().map(|(_, w)| w.position()).max()?;
    let last_promoted = h.promotions.last().map(|p| p.node.as_str());
    logs.iter()
        .filter(|(_, w)| w.position() == best)
        .max_by_key(|(n, _)| (Some(n.as_str()) == last_promoted, std::cmp::Reverse(n.clone())))
}

/// Safety: what was acknowledged survives, one primary per epoch, replicas are never ahead.
pub struct SafetyChecker {
    pub pg: PgCluster,
}

impl Checker for SafetyChecker {
    fn check(&self, outcome: &Outcome, v: &mut Verdict) {
        let h = outcome.observations(|o| History::read(o, &self.pg));
        let logs = self.pg.durable_logs(outcome);
        match newest(&logs, &h) {
            Some((final_node, final_wal)) => lost_commits(&h, final_node, final_wal, v),
            None => v.violation("lost commit", "the cluster has no member"),
        }
        fencing(&h, v);
        super::probes::record(&h, outcome);
        replica_reads(&h, v);
        let sim_s = outcome.sim_time_ms.max(1) as f64 / 1000.0;
        v.metric("commits_per_sim_s", h.acks.len() as f64 / sim_s);
        v.metric("attempted_commits", h.attempts as f64);
        v.metric("indeterminate_commits", h.indeterminate as f64);
        v.metric("rewinds", h.rewinds.len() as f64);
    }
}

/// Every acknowledged commit is judged by the class it was committed under. An `on` commit must
/// be on the final timeline, at the position it was acknowledged at, whatever happened. A
/// `local` commit was fsynced by the primary that acknowledged it, so it survives any crash of
/// that member as long as it stays primary: when the next primary after it is that same member
/// (a crash-restart inside its lease, re-elected), its new timeline must start past it. It may
/// be lost only when another member was promoted after it (a failover that did not have it);
/// such a loss is counted against the first such failover, not a violation.
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
    // Lost `local` commits per failover (the epoch of the promotion that lost them).
    let mut lost_to: BTreeMap<u64, u64> = BTreeMap::new();
    for a in &h.acks {
        if on_timeline.get(a.txn.as_str()) == Some(&Position { epoch: a.epoch, index: a.index }) {
            continue;
        }
        // Every acknowledged commit the recovered timeline lacks is data lost, whether its class
        // allowed the loss or not: the report counts what users lost, the violations what broke.
        v.data_lost(lost_what(a.class), a.at_ms);
        let what = format!(
            "{} {} (synchronous_commit = {}) acknowledged by {} (epoch {}, index {}) at {} ms is missing from the final primary {final_node}",
            a.kind.name(),
            a.txn,
            class_name(a.class),
            a.node,
            a.epoch,
            a.index,
            a.at_ms
        );
        let later = |p: &&Promotion| p.epoch > a.epoch;
        let next = h.promotions.iter().filter(later).min_by_key(|p| p.epoch);
        let failover = h.promotions.iter().filter(later).filter(|p| p.node != a.node).min_by_key(|p| p.epoch);
        match (next, failover) {
            _ if a.must_survive() => lost.push(what),
            // Its own member came back as the next primary without it: lost to a crash of the
            // member that acknowledged it, whatever failovers came later.
            (Some(n), _) if n.node == a.node && n.index <= a.index => lost.push(format!(
                "{what}: {} came back as the primary of epoch {} from index {} without it",
                n.node, n.epoch, n.index
            )),
            (_, Some(p)) => *lost_to.entry(p.epoch).or_default() += 1,
            (_, None) => lost.push(format!("{what}, and no other member was promoted after it")),
        }
    }
    let lost_local: u64 = lost_to.values().sum();
    v.metric("protected_commits", h.acks.iter().filter(|a| a.must_survive()).count() as f64);
    v.metric("local_commits", h.acks.iter().filter(|a| !a.must_survive()).count() as f64);
    v.metric("lost_commits", lost.len() as f64);
    v.metric("local_commits_lost_to_failovers", lost_local as f64);
    v.metric("failovers_losing_local_commits", lost_to.len() as f64);
    v.metric("local_commits_lost_to_one_failover_max", lost_to.values().copied().max().unwrap_or(0) as f64);
    v.violations_upto("lost commit", lost, LIST_AT_MOST);
}

/// What a lost commit is called in the report's data lost.
pub(crate) fn lost_what(class: SyncCommit) -> &'static str {
    match class {
        SyncCommit::On => "commit",
        SyncCommit::Local => "local commit",
    }
}

fn class_name(class: SyncCommit) -> &'static str {
    match class {
        SyncCommit::On => "on",
        SyncCommit::Local => "local",
    }
}

/// Fencing, judged by who acknowledged what: once the primary of an epoch accepted its first
/// write, no primary of an older epoch acknowledges a commit (the members' own record of each
/// acknowledgement, whether or not the answer reached its client). And one primary per epoch.
/// The dual-writer window (how long, after a newer primary's first write, an older one still
/// acknowledged) is measured.
fn fencing(h: &History, v: &mut Verdict) {
    let mut lines = Vec::new();
    let mut dual_writer_ms = 0u64;
    for (epoch, (newer, first_ms)) in &h.first_writes {
        let late = h.server_acks.iter().filter(|a| a.epoch < *epoch && a.at_ms > *first_ms);
        for a in late {
            dual_writer_ms = dual_writer_ms.max(a.at_ms - first_ms);
            lines.push(format!(
                "{} (primary of epoch {}) acknowledged index {} at {} ms, after {newer} (primary of epoch {epoch}) accepted its first write at {first_ms} ms",
                a.node, a.epoch, a.index, a.at_ms
            ));
        }
    }
    let mut by_epoch: BTreeMap<u64, BTreeSet<&str>> = BTreeMap::new();
    for p in &h.promotions {
        by_epoch.entry(p.epoch).or_default().insert(&p.node);
    }
    for (epoch, nodes) in by_epoch.iter().filter(|(_, n)| n.len() > 1) {
        lines.push(format!("epoch {epoch} had primaries {nodes:?}"));
    }
    v.metric("dual_writer_ms", dual_writer_ms as f64);
    v.violations_upto("split brain", lines, LIST_AT_MOST);
}

/// A replica may be stale, never ahead: every row it serves was flushed by its epoch's primary.
fn replica_reads(h: &History, v: &mut Verdict) {
    let mut lines = Vec::new();
    let (mut max_lag_ms, mut max_lag_records) = (0, 0);
    for (at_ms, r) in &h.reads {
        max_lag_ms = max_lag_ms.max(r.lag_ms);
        max_lag_records = max_lag_records.max(r.lag_records);
        let ahead = r.rows.iter().find(|(_, e, i)| !committed(h, *e, *i, *at_ms));
        if let Some((key, e, i)) = ahead {
            lines.push(format!(
                "{} served {key} written at epoch {e} index {i} at {at_ms} ms, before the primary committed it",
                r.node
            ));
        } else if !committed(h, r.applied.epoch, r.applied.index, *at_ms) {
            lines.push(format!(
                "{} reported applying {:?} at {at_ms} ms, beyond the primary's flush",
                r.node, r.applied
            ));
        }
    }
    v.metric("replica_reads", h.reads.len() as f64);
    v.metric("replica_lag_max_ms", max_lag_ms as f64);
    v.metric("replica_lag_max_records", max_lag_records as f64);
    v.violations_upto("replica ahead of primary", lines, LIST_AT_MOST);
}

/// Whether record `index` of `epoch` was committed by `at_ms`: flushed by that epoch's
/// primary, or inherited by a later primary promoted past it (records an old primary flushed
/// while being demoted become part of its log without a flush report).
fn committed(h: &History, epoch: u64, index: u64, at_ms: u64) -> bool {
    index <= h.flushed_by(epoch, at_ms)
        || h.promotions.iter().any(|p| p.at_ms <= at_ms && p.epoch > epoch && p.index > index)
}

/// Liveness: failovers within a bound, commits after the heal, convergence at a healed end.
pub struct LivenessChecker {
    pub pg: PgCluster,
    /// A primary must accept writes again within this long of a fault that took it away.
    pub failover_bound_ms: u64,
    /// When the workload stops writing.
    pub workload_end_ms: u64,
    /// Commits must resume after the last heal if at least this long of workload follows it.
    pub resume_window_ms: u64,
    /// Members must have converged by the end if the world was healed at least this long before.
    pub settle_ms: u64,
}

impl Checker for LivenessChecker {
    fn check(&self, outcome: &Outcome, v: &mut Verdict) {
        let h = outcome.observations(|o| History::read(o, &self.pg));
        self.failovers(&h, outcome.sim_time_ms, v);
        self.commits_resume(&h, v);
        if let Some(healed_ms) = healed_at(&h.faults) {
            if healed_ms + self.settle_ms <= outcome.sim_time_ms {
                let logs = self.pg.durable_logs(outcome);
                if let Some((final_node, final_wal)) = newest(&logs, &h) {
                    converged(&logs, final_node, final_wal, v);
                }
            }
        }
    }
}

impl LivenessChecker {
    /// Each fault that took the then-primary away (kill, isolate, partition, pause) is followed
    /// within the bound by a primary accepting writes: a new one, or the same one once the
    /// fault was undone before its lease ran out. A fault too close to the end (`end_ms`) for
    /// the bound to elapse is judged only if a primary did come back.
    fn failovers(&self, h: &History, end_ms: u64, v: &mut Verdict) {
        let mut slowest_ms: Option<u64> = None;
        for f in h.faults.iter().filter(|f| takes_away(&f.fault)) {
            for (primary, epoch) in h.primaries_at(f.at_ms) {
                if !f.nodes.iter().any(|n| n == primary) {
                    continue;
                }
                let what = format!("the {} of primary {primary} (epoch {epoch}) at {} ms", f.fault.kind(), f.at_ms);
                // With no synchronous standby named for its epoch (none yet after a promotion,
                // or `/sync` degraded to none), Patroni lets no other member lead: writes come
                // back only with this primary, after the fault is undone, so no bound applies.
                let named = h.sync_standbys.iter().rfind(|(e, _, t)| *e == epoch && *t <= f.at_ms);
                let can_fail_over = named.is_some_and(|(_, standby, _)| standby.is_some());
                match back_after(h, f, primary, epoch) {
                    Some(_) if !can_fail_over => v.metric("faults_with_no_failover_candidate", 1.0),
                    Some((at, promoted)) if at - f.at_ms <= self.failover_bound_ms => {
                        if promoted {
                            slowest_ms = slowest_ms.max(Some(at - f.at_ms));
                        }
                    }
                    Some((at, _)) => v.violation(
                        "liveness",
                        format!(
                            "writes resumed {} ms after {what}, over the {} ms bound",
                            at - f.at_ms,
                            self.failover_bound_ms
                        ),
                    ),
                    None if f.at_ms + self.failover_bound_ms > end_ms => {}
                    None => v.violation("liveness", format!("no new primary after {what}")),
                }
            }
        }
        if let Some(ms) = slowest_ms {
            v.metric("failover_ms", ms as f64);
        }
    }

    /// After the last heal (or the last fault, or the start), commits are acknowledged again.
    fn commits_resume(&self, h: &History, v: &mut Verdict) {
        let heal = h.faults.iter().rev().find(|f| matches!(f.fault, Fault::HealAll)).map(|f| f.at_ms);
        let from = heal.or(h.faults.last().map(|f| f.at_ms)).unwrap_or(0);
        if from + self.resume_window_ms > self.workload_end_ms {
            return;
        }
        match h.acks.iter().find(|a| a.at_ms > from) {
            Some(a) => v.metric("first_commit_after_heal_ms", (a.at_ms - from) as f64),
            None => {
                v.violation("liveness", format!("no commit acknowledged after the last heal or fault at {from} ms"))
            }
        }
    }
}

/// Faults that take a node away from the cluster (a crash-restart ends a primary's tenure too:
/// it comes back as a standby and must be promoted again).
fn takes_away(fault: &Fault) -> bool {
    matches!(fault, Fault::Kill(_) | Fault::Restart(_) | Fault::Isolate(_) | Fault::Partition { .. } | Fault::Pause(_))
}

/// When a primary accepted writes again after `f` took `primary` (of `epoch`) away, and
/// whether by a promotion: a member promoted to a later epoch, or `primary` itself
/// acknowledging in `epoch` after the fault was undone.
fn back_after(h: &History, f: &AppliedFault, primary: &str, epoch: u64) -> Option<(u64, bool)> {
    let promoted = h.promotions.iter().filter(|p| p.at_ms >= f.at_ms && p.epoch > epoch).map(|p| p.at_ms).min();
    let undone = h.faults.iter().filter(|u| u.at_ms >= f.at_ms && undoes(&f.fault, u, primary)).map(|u| u.at_ms).min();
    let rode_out = undone
        .and_then(|u| h.acks.iter().find(|a| a.at_ms >= u && a.node == primary && a.epoch == epoch).map(|a| a.at_ms));
    match (promoted, rode_out) {
        (Some(p), Some(r)) if r < p => Some((r, false)),
        (Some(p), _) => Some((p, true)),
        (None, r) => r.map(|r| (r, false)),
    }
}

/// Whether `later` undoes `fault` for `node` (a killed node comes back as a standby: nothing
/// undoes a kill of a primary).
fn undoes(fault: &Fault, later: &AppliedFault, node: &str) -> bool {
    match (fault, &later.fault) {
        (_, Fault::HealAll) => !matches!(fault, Fault::Kill(_)),
        (Fault::Pause(_), Fault::Resume(_)) => later.nodes.iter().any(|n| n == node),
        (Fault::Isolate(_) | Fault::Partition { .. }, Fault::HealNetwork) => true,
        _ => false,
    }
}

/// When the world was last made whole: the last `HealAll` with no disruptive fault after it
/// (or the start, when there was no disruptive fault at all). None: it ended disrupted.
fn healed_at(faults: &[AppliedFault]) -> Option<u64> {
    let undo = |f: &Fault| matches!(f, Fault::HealAll | Fault::HealNetwork | Fault::Resume(_) | Fault::Restart(_));
    let last_disruption = faults.iter().filter(|f| !undo(&f.fault)).map(|f| f.at_ms).max();
    let last_heal = faults.iter().filter(|f| matches!(f.fault, Fault::HealAll)).map(|f| f.at_ms).max();
    match (last_disruption, last_heal) {
        (None, heal) => Some(heal.unwrap_or(0)),
        (Some(d), Some(heal)) if heal >= d => Some(heal),
        _ => None,
    }
}

/// After the heal and a quiet end, every member holds exactly the final primary's log.
fn converged(logs: &[(String, Wal)], final_node: &str, final_wal: &Wal, v: &mut Verdict) {
    for (node, wal) in logs.iter().filter(|(n, _)| n != final_node) {
        let agree = wal.records().iter().zip(final_wal.records()).take_while(|(a, b)| a == b).count() as u64;
        if agree < wal.last_index() {
            v.violation(
                "replicas diverged",
                format!(
                    "{node} differs from the final primary {final_node} at index {} (it holds {:?}, the primary {:?})",
                    agree + 1,
                    wal.position(),
                    final_wal.position()
                ),
            );
        } else if wal.last_index() < final_wal.last_index() {
            v.violation(
                "liveness",
                format!(
                    "{node} did not catch up by the end ({:?}, the final primary {final_node} is at {:?})",
                    wal.position(),
                    final_wal.position()
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use system::postgres::wal::WalRecord;

    use super::*;
    use crate::postgres_failover::history::{Ack, OpKind};
    use crate::scenario::Lost;

    fn ack(txn: &str, class: SyncCommit, index: u64) -> Ack {
        let node = "pg-1".into();
        Ack { txn: txn.into(), kind: OpKind::SignUp, class, node, epoch: 1, index, at_ms: 1_000 * index }
    }

    /// Epoch 1's timeline holding `txns` from index 2.
    fn wal(txns: &[&str]) -> Wal {
        let mut w = Wal::default();
        let _ = w.push(WalRecord { index: 1, epoch: 1, commit_wall_ms: 0, body: Body::Promote });
        for (i, txn) in txns.iter().enumerate() {
            let body = Body::Commit { txn: (*txn).into(), writes: vec![] };
            let _ = w.push(WalRecord { index: i as u64 + 2, epoch: 1, commit_wall_ms: 0, body });
        }
        w
    }

    fn judged(h: &History, final_wal: &Wal) -> (Vec<String>, Vec<Lost>) {
        let mut v = Verdict::default();
        lost_commits(h, "pg-2", final_wal, &mut v);
        (v.violations.into_iter().map(|v| v.kind).collect(), v.lost)
    }

    #[test]
    fn acknowledged_commits_missing_from_the_final_timeline_are_data_lost() {
        let failover = Promotion { node: "pg-2".into(), epoch: 2, index: 3, at_ms: 5_000 };
        let acks = vec![ack("a", SyncCommit::On, 2), ack("b", SyncCommit::On, 3), ack("c", SyncCommit::Local, 4)];
        let h = History { acks, promotions: vec![failover], ..History::default() };
        let (kinds, lost) = judged(&h, &wal(&["a", "b", "c"]));
        assert!(kinds.is_empty() && lost.is_empty(), "nothing missing, nothing lost: {kinds:?} {lost:?}");
        // `b` (on) is a violation and data lost; `c` (local) lost to the failover is data lost only.
        let (kinds, lost) = judged(&h, &wal(&["a"]));
        assert_eq!(kinds, vec!["lost commit"]);
        let commit = |what: &str, acked_at_ms| Lost { what: what.into(), acked_at_ms };
        assert_eq!(lost, vec![commit("commit", 3_000), commit("local commit", 4_000)]);
    }
}
