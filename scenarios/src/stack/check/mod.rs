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
//! - [`liveness`]: login, loading and editing work again within a bound after the last heal.

pub mod convergence;
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
    use crate::stack::editor_core::EditorStats;
    use crate::stack::observe::{Attack, EditorFinal, Verified};
    use crate::stack::ydoc::{DocState, Sv};
    use crate::stack::ysync::ClockRange;

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
}
