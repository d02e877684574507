//! The `postgres-pitr` invariants: the restore equals the final timeline replayed up to the
//! target time (records are in commit-time order along a timeline), holds every commit on
//! credentials and permissions acknowledged by then, and holds nothing committed after it.

use sim::clock::SIM_EPOCH_UNIX_MS;
use sim::Outcome;
use system::postgres::archive::Restored;
use system::postgres::data::{Row, Table, Tables};
use system::postgres::wal::Body;

use crate::postgres_failover::checker::{final_logs, newest};
use super::{RESTORED_FILE, RESTORE_NODE};
use crate::postgres_failover::history::History;
use crate::scenario::Verdict;

const LIST_AT_MOST: usize = 5;

pub fn check(outcome: &Outcome, h: &History, target_ms: u64) -> Verdict {
    let mut v = Verdict::default();
    let target_wall_ms = SIM_EPOCH_UNIX_MS + target_ms;
    match &h.restore {
        Some(Ok(_)) => {}
        Some(Err(e)) => {
            v.violation("pitr", format!("restore to {target_ms} ms failed: {e}"));
            return v;
        }
        None => {
            v.violation("pitr", "the restore never finished");
            return v;
        }
    }
    // What is checked is the rebuilt data as it lies on the restore node's disk.
    let on_disk = outcome.world.disks.disk(RESTORE_NODE).read(RESTORED_FILE).ok();
    let Some(restored) = on_disk.and_then(|b| serde_json::from_slice::<Restored>(&b).ok()) else {
        v.violation("pitr", format!("{RESTORE_NODE} holds no readable {RESTORED_FILE}"));
        return v;
    };
    let restored = &restored;
    let logs = final_logs(outcome);
    let Some((final_node, wal)) = newest(&logs, h) else {
        v.violation("pitr", "no member has a WAL to compare with");
        return v;
    };
    let upto = wal.records().iter().take_while(|r| r.commit_wall_ms <= target_wall_ms).count() as u64;
    let expected = wal.replay(upto);
    if restored.position.index != upto || expected != restored.tables {
        let diff = first_difference(&expected, &restored.tables).unwrap_or_else(|| "same rows".into());
        v.violation("pitr mismatch", format!("restore to {target_ms} ms stopped at {:?}, the final timeline ({final_node}) reaches index {upto} by then; {diff}",
            restored.position
        ));
    }
    if let Some(r) = wal.get(restored.position.index).filter(|r| r.commit_wall_ms > target_wall_ms) {
        v.violation("pitr future write", format!("the restore holds index {} committed at {} ms, after the target", r.index, r.commit_wall_ms - SIM_EPOCH_UNIX_MS));
    }
    let missing: Vec<String> = h
        .acks
        .iter()
        .filter(|a| a.must_survive() && a.at_ms <= target_ms && a.index > restored.position.index)
        .map(|a| {
            format!(
                "pitr lost commit: {} {} acknowledged at {} ms (index {}) is not in the restore to {target_ms} ms",
                a.kind.name(),
                a.txn,
                a.at_ms,
                a.index
            )
        })
        .collect();
    for line in missing.iter().take(LIST_AT_MOST) {
        v.violation_line(line.clone());
    }
    let switches = restored.history.len().saturating_sub(1);
    let commits = wal.records().iter().take(upto as usize).filter(|r| matches!(r.body, Body::Commit { .. })).count();
    v.metric("pitr_restored_commits", commits as f64);
    v.metric("pitr_replayed_records", restored.replayed as f64);
    v.metric("pitr_from_base_backup", if restored.base.is_some() { 1.0 } else { 0.0 });
    v.metric("pitr_timeline_switches", switches as f64);
    v
}

/// The first row where two states differ, described.
fn first_difference(expected: &Tables, got: &Tables) -> Option<String> {
    let rows = |t: &Tables| -> Vec<(Table, String, Row)> { t.iter().map(|(tb, k, r)| (tb, k.to_string(), r.clone())).collect() };
    let (e, g) = (rows(expected), rows(got));
    for i in 0..e.len().max(g.len()) {
        match (e.get(i), g.get(i)) {
            (Some(a), Some(b)) if a == b => continue,
            (a, b) => return Some(format!("first differing row: expected {a:?}, restored {b:?}")),
        }
    }
    None
}
