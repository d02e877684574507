//! The stack's checkers, each judging from the users' observations and the verifier's reads
//! after the ending's power loss and recovery (never from what a service said it stored):
//!
//! - [`convergence`]: every editor of a document, its live room and the document read back
//!   (through the front door, and rebuilt from MongoDB alone) have the same text and state
//!   vector; a replayed trace ends at its known content;
//! - [`lost_edits`]: every (client, clock) an editor saw acknowledged is in the durable
//!   document's state vector;
//! - [`security`]: no attack was accepted, no attacker byte reached a document, a revoked
//!   user's writes stop within the revocation bound, a malformed frame closes only its own
//!   connection;
//! - [`durable_path`]: each operation stored once, offsets never past an unpersisted record,
//!   snapshots immutable once written (read straight from Kafka and MongoDB);
//! - [`liveness`]: login, loading and editing work again within a bound after the last heal.

pub mod convergence;
pub mod durable_path;
pub mod liveness;
pub mod lost_edits;
pub mod security;

use std::collections::BTreeMap;

use sim::Outcome;

use super::observe::{EditorFinal, Verified};

/// The editors' last words, by document.
pub(crate) fn finals_by_doc(outcome: &Outcome) -> BTreeMap<String, Vec<(String, EditorFinal)>> {
    let mut out: BTreeMap<String, Vec<(String, EditorFinal)>> = BTreeMap::new();
    outcome.observations(|o| {
        for s in o.of::<EditorFinal>() {
            out.entry(s.value.doc.clone()).or_default().push((s.node.to_string(), s.value));
        }
    });
    out
}

/// The verifier's last read of each document.
pub(crate) fn verified_by_doc(outcome: &Outcome) -> BTreeMap<String, Verified> {
    let mut out = BTreeMap::new();
    outcome.observations(|o| {
        for s in o.of::<Verified>() {
            out.insert(s.value.doc.clone(), s.value);
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;
    use std::sync::Arc;

    use sim::world::{TimeSource, WorldState};
    use sim::{Outcome, Topology};

    use super::convergence::ConvergenceChecker;
    use super::lost_edits::LostEditChecker;
    use super::security::{SecurityChecker, ATTACK_MARK};
    use crate::scenario::{Checker, Verdict};
    use crate::stack::acked::ClockRange;
    use crate::stack::editor_core::EditorStats;
    use crate::stack::observe::{Attack, EditorFinal, Verified};
    use crate::stack::ydoc::{DocState, Sv};

    fn state(text: &str, sv: &[(u64, u32)]) -> DocState {
        DocState { text: text.into(), sv: sv.iter().copied().collect::<Sv>(), pending: false }
    }

    fn fin(editor: &str, s: DocState, acked: Vec<ClockRange>) -> EditorFinal {
        EditorFinal {
            editor: editor.into(),
            doc: "t/d".into(),
            client_id: 1,
            room: Some(s.clone()),
            state: s,
            acked,
            acked_at: vec![],
            unacked_own: vec![],
            script: "synthetic".into(),
            typed: 1,
            stats: EditorStats::default(),
        }
    }

    fn outcome(record: impl FnOnce(&WorldState)) -> Outcome {
        let world =
            WorldState::new(1, Topology::new(), TimeSource::Shared(AtomicU64::new(0)), sim::trace::Trace::new());
        record(&world);
        Outcome { world: Arc::new(world), sim_time_ms: 0 }
    }

    fn kinds(checker: &dyn Checker, o: &Outcome) -> Vec<String> {
        let mut v = Verdict::default();
        checker.check(o, &mut v);
        v.violations.into_iter().map(|v| v.kind).collect()
    }

    fn conv() -> ConvergenceChecker {
        ConvergenceChecker { docs: vec!["t/d".into()], expected: Default::default() }
    }

    #[test]
    fn agreeing_copies_pass_and_any_difference_is_divergence() {
        let s = state("ab", &[(1, 2)]);
        let ok = outcome(|w| {
            w.observe("e1", &fin("e1", s.clone(), vec![]));
            w.observe("e2", &fin("e2", s.clone(), vec![]));
            w.observe("v", &Verified { doc: "t/d".into(), front_door: Ok(s.clone()), mongo: Ok(s.clone()) });
        });
        assert!(kinds(&conv(), &ok).is_empty());
        let bad = outcome(|w| {
            w.observe("e1", &fin("e1", s.clone(), vec![]));
            w.observe("e2", &fin("e2", state("ba", &[(1, 2)]), vec![]));
            w.observe("v", &Verified { doc: "t/d".into(), front_door: Ok(s.clone()), mongo: Err("down".into()) });
        });
        // e2 and the room it was served both differ from e1.
        assert_eq!(kinds(&conv(), &bad), vec!["divergence", "divergence", "unreadable"]);
    }

    #[test]
    fn an_acknowledged_clock_missing_from_the_durable_state_is_a_lost_edit() {
        let acked = vec![ClockRange { client: 1, start: 0, end: 5 }];
        let o = outcome(|w| {
            w.observe("e1", &fin("e1", state("abcde", &[(1, 5)]), acked.clone()));
            let durable = state("abc", &[(1, 3)]);
            w.observe("v", &Verified { doc: "t/d".into(), front_door: Ok(durable.clone()), mongo: Ok(durable) });
        });
        assert_eq!(kinds(&LostEditChecker, &o), vec!["lost edit", "lost edit"]);
        let mut v = Verdict::default();
        LostEditChecker.check(&o, &mut v);
        assert_eq!(v.lost.len(), 1, "one range lost from MongoDB, counted once as data lost: {:?}", v.lost);
        let fine = outcome(|w| {
            w.observe("e1", &fin("e1", state("abcde", &[(1, 5)]), acked.clone()));
            let durable = state("abcde", &[(1, 5)]);
            w.observe("v", &Verified { doc: "t/d".into(), front_door: Ok(durable.clone()), mongo: Ok(durable) });
        });
        assert!(kinds(&LostEditChecker, &fine).is_empty());
    }

    #[test]
    fn accepted_attacks_and_attacker_bytes_are_violations() {
        let sec = SecurityChecker { revocation_bound_ms: 1_000, collateral_window_ms: 1_000, quiet_ms: 1_000 };
        let o = outcome(|w| {
            w.observe("a", &Attack { attack: "forged".into(), accepted: true, detail: String::new() });
            w.observe("a", &Attack { attack: "expired".into(), accepted: false, detail: String::new() });
            w.observe("e1", &fin("e1", state(&format!("x{ATTACK_MARK}"), &[(1, 2)]), vec![]));
        });
        assert_eq!(kinds(&sec, &o), vec!["attack accepted", "attacker byte"]);
    }

    mod durable {
        use super::{kinds, outcome};
        use crate::stack::check::durable_path::{OffsetChecker, OpsOnceChecker, SnapshotChecker};
        use crate::stack::observe::{CommittedLog, LogEntry, OpRow, SnapRow, SnapshotsSeen, StoredOps};

        fn row(key: &str, op_id: &str) -> OpRow {
            OpRow { key: key.into(), op_id: op_id.into(), hash_ok: true }
        }

        fn ops(rows: Vec<OpRow>) -> StoredOps {
            StoredOps { doc: "t/d".into(), ops: Ok(rows) }
        }

        #[test]
        fn an_operation_stored_twice_or_not_matching_its_hash_is_a_violation() {
            let ok = outcome(|w| w.observe("v", &ops(vec![row("t/d/a", "a"), row("t/d/b", "b")])));
            assert!(kinds(&OpsOnceChecker, &ok).is_empty());
            let twice = outcome(|w| w.observe("v", &ops(vec![row("t/d/a#c1-1", "a"), row("t/d/a#c2-1", "a")])));
            assert_eq!(kinds(&OpsOnceChecker, &twice), vec!["duplicate op"]);
            let forged = OpRow { hash_ok: false, ..row("t/d/a", "a") };
            let bad = outcome(|w| w.observe("v", &ops(vec![forged, row("t/e/b", "b")])));
            assert_eq!(kinds(&OpsOnceChecker, &bad), vec!["op id mismatch", "op id mismatch"]);
            let down = outcome(|w| w.observe("v", &StoredOps { doc: "t/d".into(), ops: Err("no primary".into()) }));
            assert_eq!(kinds(&OpsOnceChecker, &down), vec!["durable unreadable"]);
        }

        fn log(committed: Option<u64>, ids: &[&str]) -> CommittedLog {
            CommittedLog {
                partition: 0,
                committed: Ok(committed),
                high_watermark: ids.len() as u64,
                records: ids
                    .iter()
                    .enumerate()
                    .map(|(i, id)| LogEntry { offset: i as u64, doc: "t/d".into(), op_id: (*id).into() })
                    .collect(),
                invalid: vec![],
                read_error: None,
            }
        }

        #[test]
        fn a_record_below_the_committed_offset_that_is_not_stored_was_skipped() {
            let stored = || ops(vec![row("t/d/a", "a"), row("t/d/b", "b")]);
            let ok = outcome(|w| {
                w.observe("v", &log(Some(2), &["a", "b"]));
                w.observe("v", &stored());
            });
            assert!(kinds(&OffsetChecker, &ok).is_empty());
            // `c` is at offset 2: not yet committed, so not yet owed to MongoDB.
            let pending = outcome(|w| {
                w.observe("v", &log(Some(2), &["a", "b", "c"]));
                w.observe("v", &stored());
            });
            assert!(kinds(&OffsetChecker, &pending).is_empty());
            let skipped = outcome(|w| {
                w.observe("v", &log(Some(3), &["a", "b", "c"]));
                w.observe("v", &stored());
            });
            assert_eq!(kinds(&OffsetChecker, &skipped), vec!["offset skipped unpersisted"]);
            let truncated = outcome(|w| {
                w.observe(
                    "v",
                    &CommittedLog { read_error: Some("the log ends at 2".into()), ..log(Some(3), &["a", "b"]) },
                );
                w.observe("v", &stored());
            });
            assert_eq!(kinds(&OffsetChecker, &truncated), vec!["offset beyond log"]);
        }

        fn seen(final_read: bool, head: u64, rows: &[(u64, u64, &str)]) -> SnapshotsSeen {
            let rows = rows
                .iter()
                .map(|(v, t, d)| SnapRow { version: *v, token: *t, digest: (*d).into(), from_state: final_read })
                .collect();
            SnapshotsSeen { doc: "t/d".into(), final_read, read: Ok((head, rows)) }
        }

        #[test]
        fn a_snapshot_that_changes_or_vanishes_after_it_was_seen_is_a_violation() {
            let ok = outcome(|w| {
                w.observe("watch", &seen(false, 1, &[(1, 3, "x")]));
                w.observe("v", &seen(true, 2, &[(1, 3, "x"), (2, 5, "y")]));
            });
            assert!(kinds(&SnapshotChecker, &ok).is_empty());
            let changed = outcome(|w| {
                w.observe("watch", &seen(false, 1, &[(1, 3, "x")]));
                w.observe("v", &seen(true, 1, &[(1, 4, "z")]));
            });
            assert_eq!(kinds(&SnapshotChecker, &changed), vec!["snapshot changed"]);
            let vanished = outcome(|w| {
                w.observe("watch", &seen(false, 2, &[(1, 3, "x"), (2, 5, "y")]));
                w.observe("v", &seen(true, 2, &[(2, 5, "y")]));
            });
            // v1 is gone, and the versions no longer run 1, 2.
            assert_eq!(kinds(&SnapshotChecker, &vanished), vec!["snapshot vanished", "snapshot versions"]);
            let stale_token = outcome(|w| w.observe("v", &seen(true, 2, &[(1, 5, "x"), (2, 4, "y")])));
            assert_eq!(kinds(&SnapshotChecker, &stale_token), vec!["snapshot versions"]);
            let never = outcome(|w| w.observe("watch", &seen(false, 1, &[(1, 3, "x")])));
            assert_eq!(kinds(&SnapshotChecker, &never), vec!["durable unreadable"]);
        }
    }
}
