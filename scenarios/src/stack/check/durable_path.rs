//! The durable path's promises, judged from what survives (the verifier's reads straight from
//! Kafka and MongoDB after the ending's power loss and recovery, and the snapshot watcher's
//! reads during the run; [`crate::stack::durable_read`]), never from what a consumer said it
//! did:
//!
//! - [`OpsOnceChecker`]: each operation is stored once (no two stored operations of a document
//!   carry the same operation id), and every stored operation's bytes hash to its id;
//! - [`OffsetChecker`]: offsets never skip an unpersisted record: every valid record of
//!   `doc-updates` below the consumer group's committed offset of its partition is stored in
//!   MongoDB. Operations are never deleted (compaction only lets a reader skip them), so
//!   "stored" is read from `crdt_ops` alone; a committed offset the recovered log does not
//!   reach is reported too (the group would skip whatever is written there next);
//! - [`SnapshotChecker`]: snapshots are immutable once written: every read of a (document,
//!   version), from the index or from the stored state, has the same digest; a version once
//!   seen never vanishes; versions run 1, 2, ... without gaps up to the head, and each was
//!   written under a larger fencing token than the one before.
//!
//! A read that never answered is `durable unreadable`: nothing was judged.

use std::collections::{BTreeMap, BTreeSet};

use sim::Outcome;
use system::docs::store::ops_prefix;

use crate::scenario::{Checker, Verdict};
use crate::stack::durable_read::READ_WINDOW_CLOSED;
use crate::stack::observe::{CommittedLog, OpRow, SnapshotsSeen, StoredOps};

/// The verifier's read of each document's stored operations.
fn stored_ops(outcome: &Outcome) -> BTreeMap<String, Result<Vec<OpRow>, String>> {
    let mut out = BTreeMap::new();
    outcome.observations(|o| {
        for s in o.of::<StoredOps>() {
            out.insert(s.value.doc, s.value.ops);
        }
    });
    out
}

pub struct OpsOnceChecker;

impl Checker for OpsOnceChecker {
    fn check(&self, outcome: &Outcome, verdict: &mut Verdict) {
        let (mut dups, mut bad, mut unreadable) = (Vec::new(), Vec::new(), Vec::new());
        let mut total = 0usize;
        for (doc, ops) in stored_ops(outcome) {
            let ops = match ops {
                Ok(ops) => ops,
                Err(e) => {
                    unreadable.push(format!("{doc}: stored operations: {e}"));
                    continue;
                }
            };
            total += ops.len();
            let mut keys: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for op in &ops {
                keys.entry(op.op_id.as_str()).or_default().push(op.key.as_str());
                if !op.hash_ok || !op.key.starts_with(&ops_prefix(&doc)) {
                    bad.push(format!("{doc}: stored operation {} does not hash to its id {}", op.key, op.op_id));
                }
            }
            for (id, ks) in keys.into_iter().filter(|(_, ks)| ks.len() > 1) {
                dups.push(format!("{doc}: operation {id} stored {} times: {ks:?}", ks.len()));
            }
        }
        verdict.metric("stored_ops", total as f64);
        verdict.violations_upto("duplicate op", dups, 10);
        verdict.violations_upto("op id mismatch", bad, 10);
        verdict.violations_upto("durable unreadable", unreadable, 10);
    }
}

pub struct OffsetChecker;

impl Checker for OffsetChecker {
    fn check(&self, outcome: &Outcome, verdict: &mut Verdict) {
        let stored: BTreeMap<String, Result<BTreeSet<String>, String>> = stored_ops(outcome)
            .into_iter()
            .map(|(doc, ops)| (doc, ops.map(|ops| ops.into_iter().map(|o| o.op_id).collect())))
            .collect();
        let mut logs: BTreeMap<u32, CommittedLog> = BTreeMap::new();
        outcome.observations(|o| {
            for s in o.of::<CommittedLog>() {
                logs.insert(s.value.partition, s.value);
            }
        });
        let (mut skipped, mut unreadable, mut beyond) = (Vec::new(), Vec::new(), Vec::new());
        let mut checked = 0usize;
        if logs.is_empty() {
            unreadable.push("the verifier recorded no partition of the update log".to_string());
        }
        for (p, log) in &logs {
            let committed = match &log.committed {
                Ok(c) => c.unwrap_or(0),
                Err(e) => {
                    unreadable.push(format!("partition {p}: committed offset: {e}"));
                    continue;
                }
            };
            if let Some(e) = &log.read_error {
                if !e.starts_with(READ_WINDOW_CLOSED) {
                    beyond.push(format!("partition {p}: committed {committed}, but {e}"));
                } else {
                    unreadable.push(format!("partition {p}: {e}"));
                }
            }
            for r in &log.records {
                if r.offset >= committed {
                    continue;
                }
                checked += 1;
                match stored.get(&r.doc) {
                    Some(Ok(ids)) if ids.contains(&r.op_id) => {}
                    Some(Ok(_)) => skipped.push(format!(
                        "partition {p} offset {} (committed {committed}): operation {} of {} is not stored",
                        r.offset, r.op_id, r.doc
                    )),
                    Some(Err(_)) => {} // reported by the operations checker
                    None => unreadable.push(format!("{}: the verifier did not read its operations", r.doc)),
                }
            }
        }
        unreadable.dedup();
        verdict.metric("records_below_committed", checked as f64);
        verdict.violations_upto("offset skipped unpersisted", skipped, 10);
        verdict.violations_upto("offset beyond log", beyond, 10);
        verdict.violations_upto("durable unreadable", unreadable, 10);
    }
}

pub struct SnapshotChecker;

impl Checker for SnapshotChecker {
    fn check(&self, outcome: &Outcome, verdict: &mut Verdict) {
        let mut reads: Vec<(u64, SnapshotsSeen)> = Vec::new();
        outcome.observations(|o| {
            for s in o.of::<SnapshotsSeen>() {
                reads.push((s.t_ms, s.value));
            }
        });
        reads.sort_by_key(|(t, _)| *t);
        // (doc, version) -> (digest, when first seen)
        let mut first: BTreeMap<(String, u64), (String, u64)> = BTreeMap::new();
        // doc -> versions seen so far
        let mut seen: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
        let (mut changed, mut vanished, mut order, mut unreadable) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut finals = 0usize;
        for (t, r) in &reads {
            let (head, rows) = match &r.read {
                Ok(read) => read,
                Err(e) => {
                    if r.final_read {
                        unreadable.push(format!("{}: snapshots: {e}", r.doc));
                    }
                    continue;
                }
            };
            finals += usize::from(r.final_read);
            for row in rows {
                match first.get(&(r.doc.clone(), row.version)) {
                    Some((d, at)) if *d != row.digest => changed.push(format!(
                        "{} v{}: digest {} at {t} ms ({}), {d} when first seen at {at} ms",
                        r.doc,
                        row.version,
                        row.digest,
                        if row.from_state { "state" } else { "index" }
                    )),
                    Some(_) => {}
                    None => {
                        first.insert((r.doc.clone(), row.version), (row.digest.clone(), *t));
                    }
                }
            }
            let now: BTreeSet<u64> = rows.iter().map(|row| row.version).collect();
            let before = seen.entry(r.doc.clone()).or_default();
            for v in before.difference(&now) {
                vanished.push(format!("{} v{v}: seen before, missing from the read at {t} ms", r.doc));
            }
            before.extend(now.iter().copied());
            // Versions 1, 2, ... up to at least the head (read first: a compaction may add one
            // while the rest is read), each written under a larger token than the one before
            // (a stale lock holder is refused by the fence).
            let top = now.last().copied().unwrap_or(0);
            if top < *head || now.len() as u64 != top {
                order.push(format!("{} at {t} ms: head {head}, versions {now:?}", r.doc));
            }
            let mut tokens: BTreeMap<u64, u64> = BTreeMap::new();
            for row in rows {
                if let Some(old) = tokens.insert(row.version, row.token) {
                    if old != row.token {
                        changed.push(format!("{} v{}: tokens {old} and {} in one read", r.doc, row.version, row.token));
                    }
                }
            }
            let toks: Vec<(u64, u64)> = tokens.into_iter().collect();
            for w in toks.windows(2) {
                if w[1].1 <= w[0].1 {
                    order.push(format!(
                        "{} at {t} ms: v{} token {} not above v{} token {}",
                        r.doc, w[1].0, w[1].1, w[0].0, w[0].1
                    ));
                }
            }
        }
        if finals == 0 {
            unreadable.push("the verifier recorded no final snapshot read".to_string());
        }
        order.dedup();
        verdict.metric("snapshot_versions_seen", first.len() as f64);
        verdict.violations_upto("snapshot changed", changed, 10);
        verdict.violations_upto("snapshot vanished", vanished, 10);
        verdict.violations_upto("snapshot versions", order, 10);
        verdict.violations_upto("durable unreadable", unreadable, 10);
    }
}
