//! The chaos run's judgement, from what the editors saw and the document as stored (read back
//! from the durable store after the faults, never a node's own report):
//!
//! 1. convergence: every editor of a document has the same text and state vector as the
//!    stored document;
//! 2. no acknowledged edit lost: every edit whose (client, clock) range an editor saw
//!    acknowledged is in the stored document's state vector (a Yjs state vector is contiguous
//!    per client, so `end <= sv[client]` means every clock of the range is stored);
//! 3. recovery: every editor had an edit acknowledged after the last restart.

use std::collections::BTreeMap;

/// One document as read back from the durable store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    pub text: String,
    /// Per client, the next clock (the state vector).
    pub sv: BTreeMap<u64, u32>,
}

/// One editor at the end of the run.
#[derive(Clone, Debug)]
pub struct EditorEnd {
    pub name: String,
    pub doc: String,
    pub client: u64,
    pub text: String,
    pub sv: BTreeMap<u64, u32>,
    /// Each insertion it typed: its clocks `start..end` of `client`.
    pub edits: Vec<(u32, u32)>,
    /// The ranges of its own clocks it saw acknowledged, merged.
    pub acked: Vec<(u32, u32)>,
    /// Whether an acknowledgement reached it after the last restart.
    pub acked_after_last_restart: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Edits whose whole range was acknowledged.
    pub edits_acked: u64,
    /// Acknowledged edits missing from the stored document.
    pub lost: u64,
    pub docs: usize,
    pub docs_converged: usize,
    /// Every reason to fail, one line each.
    pub failures: Vec<String>,
}

impl Verdict {
    pub fn pass(&self) -> bool {
        self.failures.is_empty()
    }
}

fn covered(ranges: &[(u32, u32)], (start, end): (u32, u32)) -> bool {
    ranges.iter().any(|(s, e)| *s <= start && end <= *e)
}

/// Judges the run: `stored` per document (None: it could not be read back).
pub fn judge(stored: &BTreeMap<String, Option<Stored>>, editors: &[EditorEnd]) -> Verdict {
    let mut v = Verdict { docs: stored.len(), ..Verdict::default() };
    for (doc, read) in stored {
        let Some(read) = read else {
            v.failures.push(format!("{doc}: could not be read back from the store"));
            continue;
        };
        let mut converged = true;
        for e in editors.iter().filter(|e| &e.doc == doc) {
            if e.text != read.text || e.sv != read.sv {
                converged = false;
                v.failures.push(format!(
                    "{doc}: {} diverges from the stored document (text {} vs {} chars, sv {:?} vs {:?})",
                    e.name,
                    e.text.chars().count(),
                    read.text.chars().count(),
                    e.sv,
                    read.sv
                ));
            }
        }
        if converged {
            v.docs_converged += 1;
        }
    }
    for e in editors {
        let stored_next =
            stored.get(&e.doc).and_then(|s| s.as_ref()).map(|s| s.sv.get(&e.client).copied().unwrap_or(0));
        for &edit in &e.edits {
            if !covered(&e.acked, edit) {
                continue;
            }
            v.edits_acked += 1;
            if let Some(next) = stored_next {
                if edit.1 > next {
                    v.lost += 1;
                }
            }
        }
        if let Some(next) = stored_next {
            if let Some(&(_, end)) = e.acked.iter().max_by_key(|r| r.1) {
                if end > next {
                    v.failures.push(format!(
                        "{}: acknowledged clocks of client {} up to {end}, the stored document has them up to {next}",
                        e.name, e.client
                    ));
                }
            }
        }
        if !e.acked_after_last_restart {
            v.failures.push(format!("{}: no edit acknowledged after the last restart (it did not recover)", e.name));
        }
    }
    if v.lost > 0 {
        v.failures.push(format!("{} acknowledged edits lost", v.lost));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn editor(name: &str, client: u64, text: &str, sv: &[(u64, u32)], acked: Vec<(u32, u32)>) -> EditorEnd {
        EditorEnd {
            name: name.into(),
            doc: "t/d".into(),
            client,
            text: text.into(),
            sv: sv.iter().copied().collect(),
            edits: vec![(0, 2), (2, 5)],
            acked,
            acked_after_last_restart: true,
        }
    }

    fn stored(text: &str, sv: &[(u64, u32)]) -> BTreeMap<String, Option<Stored>> {
        [("t/d".to_string(), Some(Stored { text: text.into(), sv: sv.iter().copied().collect() }))].into()
    }

    #[test]
    fn a_converged_run_with_every_ack_stored_passes() {
        let sv = [(7, 5), (9, 5)];
        let eds = [editor("a", 7, "hello", &sv, vec![(0, 5)]), editor("b", 9, "hello", &sv, vec![(0, 2)])];
        let v = judge(&stored("hello", &sv), &eds);
        assert!(v.pass(), "{:?}", v.failures);
        assert_eq!((v.edits_acked, v.lost, v.docs_converged), (3, 0, 1));
    }

    #[test]
    fn an_acknowledged_edit_missing_from_the_store_fails() {
        // The store lost client 7's second edit (clocks 2..5) after acknowledging it, and both
        // editors still agree with each other: only the durable read-back shows the loss.
        let editors_sv = [(7, 5), (9, 5)];
        let eds = [editor("a", 7, "hello", &editors_sv, vec![(0, 5)]), editor("b", 9, "hello", &editors_sv, vec![])];
        let v = judge(&stored("he", &[(7, 2), (9, 5)]), &eds);
        assert!(!v.pass());
        assert_eq!(v.lost, 1);
        assert_eq!(v.docs_converged, 0);
        assert!(v.failures.iter().any(|f| f.contains("acknowledged clocks of client 7")), "{:?}", v.failures);
    }

    #[test]
    fn divergence_unreadable_docs_and_no_recovery_fail() {
        let sv = [(7, 5)];
        let mut a = editor("a", 7, "hellp", &sv, vec![]);
        a.acked_after_last_restart = false;
        let v = judge(&stored("hello", &sv), &[a.clone()]);
        assert_eq!(v.docs_converged, 0);
        assert!(v.failures.iter().any(|f| f.contains("diverges")));
        assert!(v.failures.iter().any(|f| f.contains("did not recover")));
        let none: BTreeMap<String, Option<Stored>> = [("t/d".to_string(), None)].into();
        assert!(!judge(&none, &[a]).pass());
    }
}
