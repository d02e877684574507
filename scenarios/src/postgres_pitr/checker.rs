//! The `postgres-pitr` invariant: a restore to time T holds exactly the final timeline's
//! records committed at or before T (`recovery_target_inclusive = on`), and so every commit on
//! credentials and permissions acknowledged by then.
//!
//! The expected state is this checker's own: it takes the final primary's WAL as its disk holds
//! it, and replays the commits up to the target with a few lines of its own ([`expected_rows`]),
//! never the restore's code (which reads the archive, not the members' disks, and applies
//! records through the store's own functions). The restored data is read back from the restore
//! node's disk; the target time comes from the restore node's observation.

use std::collections::BTreeMap;

use sim::clock::SIM_EPOCH_UNIX_MS;
use sim::Outcome;
use system::postgres::archive::Restored;
use system::postgres::data::{Table, Write};
use system::postgres::wal::{Body, WalRecord};
use system::postgres::PgCluster;

use super::RestoreDone;
use crate::postgres_failover::checker::{lost_what, newest};
use crate::postgres_failover::history::History;
use crate::scenario::{Checker, Verdict};

const LIST_AT_MOST: usize = 5;

/// A row as the oracle keeps it: value and the WAL position that wrote it.
type Rows = BTreeMap<(Table, String), (String, u64, u64)>;

/// Judges the restore a node made of cluster `pg`'s archive.
pub struct PitrChecker {
    pub pg: PgCluster,
    pub restore_node: String,
    /// The file on the restore node's disk holding the restored data.
    pub restored_file: String,
}

impl Checker for PitrChecker {
    fn check(&self, outcome: &Outcome, v: &mut Verdict) {
        let (done, h) = outcome.observations(|o| {
            let done = o.of::<RestoreDone>().filter(|s| s.node == self.restore_node).map(|s| s.value).last();
            (done, History::read(o, &self.pg))
        });
        let Some(done) = done else {
            v.violation("pitr", "the restore never finished");
            return;
        };
        if let Err(e) = &done.result {
            v.violation("pitr", format!("restore to {} ms failed: {e}", done.target_ms));
            return;
        }
        let Some(restored) = self.restored(outcome) else {
            v.violation("pitr", format!("{} holds no readable {}", self.restore_node, self.restored_file));
            return;
        };
        let logs = self.pg.durable_logs(outcome);
        let Some((final_node, wal)) = newest(&logs, &h) else {
            v.violation("pitr", "no member has a WAL to compare with");
            return;
        };
        let target_ms = done.target_ms;
        let upto = last_at_or_before(wal.records(), SIM_EPOCH_UNIX_MS + target_ms);
        judge_stop(&restored, wal.records(), upto, target_ms, final_node, v);
        lost_commits(&h, &restored, target_ms, v);
        let commits =
            wal.records().iter().take(upto as usize).filter(|r| matches!(r.body, Body::Commit { .. })).count();
        v.metric("pitr_restored_commits", commits as f64);
        v.metric("pitr_replayed_records", restored.replayed as f64);
        v.metric("pitr_from_base_backup", if restored.base.is_some() { 1.0 } else { 0.0 });
        v.metric("pitr_timeline_switches", restored.history.len().saturating_sub(1) as f64);
    }
}

impl PitrChecker {
    /// The rebuilt data as it lies on the restore node's disk.
    fn restored(&self, outcome: &Outcome) -> Option<Restored> {
        let bytes = outcome.world.disks.disk(&self.restore_node).read(&self.restored_file).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

/// The index of the last record committed at or before `target_wall_ms` (commit times only grow
/// along a timeline, so it is the length of the prefix at or before the target).
fn last_at_or_before(records: &[WalRecord], target_wall_ms: u64) -> u64 {
    records.iter().take_while(|r| r.commit_wall_ms <= target_wall_ms).count() as u64
}

/// The rows after replaying `records` up to index `upto`: this checker's own replay.
pub(crate) fn expected_rows(records: &[WalRecord], upto: u64) -> Rows {
    let mut rows = Rows::new();
    for r in records.iter().take_while(|r| r.index <= upto) {
        let Body::Commit { writes, .. } = &r.body else { continue };
        for w in writes {
            match w {
                Write::Put { table, key, value } => {
                    rows.insert((*table, key.clone()), (value.clone(), r.epoch, r.index));
                }
                Write::Delete { table, key } => {
                    rows.remove(&(*table, key.clone()));
                }
            }
        }
    }
    rows
}

/// Where the restore stopped against where it should have: past the target, short of it, or
/// at the right record with the wrong rows.
fn judge_stop(
    restored: &Restored,
    records: &[WalRecord],
    upto: u64,
    target_ms: u64,
    final_node: &str,
    v: &mut Verdict,
) {
    let got = restored.position.index;
    let commit_ms =
        |i: u64| records.get((i as usize).wrapping_sub(1)).map(|r| r.commit_wall_ms.saturating_sub(SIM_EPOCH_UNIX_MS));
    if got > upto {
        v.violation(
            "pitr past target",
            format!(
                "restore to {target_ms} ms replayed up to index {got} (committed at {:?} ms); the final timeline ({final_node}) has index {upto} as its last record by then",
                commit_ms(got)
            ),
        );
        return;
    }
    if got < upto {
        v.violation(
            "pitr stopped early",
            format!("restore to {target_ms} ms stopped at index {got}; the final timeline ({final_node}) reaches index {upto} (committed at {:?} ms) by then", commit_ms(upto)),
        );
        return;
    }
    let expected = expected_rows(records, upto);
    let restored_rows: Rows =
        restored.tables.iter().map(|(t, k, r)| ((t, k.to_string()), (r.value.clone(), r.epoch, r.index))).collect();
    if let Some(diff) = first_difference(&expected, &restored_rows) {
        v.violation(
            "pitr mismatch",
            format!("restore to {target_ms} ms stopped at index {got} as it should, but {diff}"),
        );
    }
}

/// Acknowledged commits on credentials and permissions by the target must be in the restore;
/// each one missing is also data lost (`commit`).
fn lost_commits(h: &History, restored: &Restored, target_ms: u64, v: &mut Verdict) {
    let lost: Vec<_> = h
        .acks
        .iter()
        .filter(|a| a.must_survive() && a.at_ms <= target_ms && a.index > restored.position.index)
        .collect();
    for a in &lost {
        v.data_lost(lost_what(a.class), a.at_ms);
    }
    let missing: Vec<String> = lost
        .iter()
        .map(|a| {
            format!(
                "{} {} acknowledged at {} ms (index {}) is not in the restore to {target_ms} ms",
                a.kind.name(),
                a.txn,
                a.at_ms,
                a.index
            )
        })
        .collect();
    v.violations_upto("pitr lost commit", missing, LIST_AT_MOST);
}

/// The first row where two states differ, described.
fn first_difference(expected: &Rows, got: &Rows) -> Option<String> {
    let (mut e, mut g) = (expected.iter(), got.iter());
    loop {
        match (e.next(), g.next()) {
            (None, None) => return None,
            (a, b) if a == b => continue,
            (a, b) => return Some(format!("the first differing row is expected {a:?}, restored {b:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use system::postgres::data::{SyncCommit, Tables};
    use system::postgres::wal::Position;

    use super::*;
    use crate::postgres_failover::history::{Ack, OpKind};
    use crate::scenario::Lost;

    fn ack(txn: &str, class: SyncCommit, index: u64) -> Ack {
        let node = "pg-1".into();
        Ack { txn: txn.into(), kind: OpKind::Grant, class, node, epoch: 1, index, at_ms: 1_000 * index }
    }

    fn restored_to(index: u64) -> Restored {
        Restored {
            target_wall_ms: SIM_EPOCH_UNIX_MS + 10_000,
            timeline: 1,
            history: vec![(1, 1)],
            base: None,
            position: Position { epoch: 1, index },
            replayed: index,
            tables: Tables::default(),
            stopped: "target".into(),
        }
    }

    #[test]
    fn an_acknowledged_commit_by_the_target_missing_from_the_restore_is_data_lost() {
        // Acknowledged at 2, 3 and 4 s (`local` at 4 s: a restore owes it nothing); target 10 s.
        let acks = vec![ack("a", SyncCommit::On, 2), ack("b", SyncCommit::On, 3), ack("c", SyncCommit::Local, 4)];
        let h = History { acks, ..History::default() };
        let mut v = Verdict::default();
        lost_commits(&h, &restored_to(4), 10_000, &mut v);
        assert!(v.lost.is_empty() && v.violations.is_empty());
        let mut v = Verdict::default();
        lost_commits(&h, &restored_to(2), 10_000, &mut v);
        assert_eq!(v.lost, vec![Lost { what: "commit".into(), acked_at_ms: 3_000 }]);
        assert_eq!(v.violations.iter().map(|v| v.kind.as_str()).collect::<Vec<_>>(), vec!["pitr lost commit"]);
    }
}
