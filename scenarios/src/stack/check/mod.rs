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
