//! Convergence after the heal and a quiet period: per document, every editor's copy, the live
//! room it was served, the document read through the front door after recovery and the one
//! rebuilt from MongoDB alone hold the same text and state vector, with nothing pending; a
//! replayed trace's text is exactly what the trace says for what was typed of it.

use std::collections::BTreeMap;
use std::sync::Arc;

use sim::Outcome;

use crate::scenario::{Checker, Verdict};
use crate::stack::observe::EditorFinal;
use crate::stack::trace::{self, Chunk, ConcurrentReplay};
use crate::stack::ydoc::{self, DocState};

/// What a document's text must be, given how much of its trace was typed.
#[derive(Clone, Debug)]
pub enum Expected {
    /// Shares of the paper trace typed in turn (each starts where the previous ended).
    Paper { chunks: Vec<Chunk> },
    /// The offline replay of the concurrent trace; `whole` when it covers the whole trace (its
    /// text then also equals the trace's `endContent`).
    Friends { replay: Arc<ConcurrentReplay>, whole: bool },
}

impl Expected {
    /// The text the document must hold, from the editors' records of what they typed.
    pub fn text(&self, finals: &[&EditorFinal]) -> String {
        match self {
            Expected::Paper { chunks } => {
                let typed: u64 = finals.iter().filter(|f| f.script.starts_with("paper:")).map(|f| f.typed).sum();
                let from = chunks.first().map_or(0, |c| c.from);
                trace::content_after(trace::paper(), from + typed as usize)
            }
            Expected::Friends { replay, whole } => {
                let typed: BTreeMap<usize, u64> = finals
                    .iter()
                    .filter_map(|f| {
                        f.script.strip_prefix("friends:").and_then(|a| a.parse().ok()).map(|a| (a, f.typed))
                    })
                    .collect();
                let all = replay
                    .client_ids
                    .iter()
                    .enumerate()
                    .all(|(a, _)| typed.get(&a).copied() == Some(replay.steps_of(a).count() as u64));
                if all && *whole {
                    return trace::friends().end.clone();
                }
                let (doc, text) = ydoc::new_doc(ydoc::MAX_CLIENT_ID);
                for (a, n) in typed {
                    for s in replay.steps_of(a).take(n as usize) {
                        ydoc::apply(&doc, &s.update).expect("the replay's own updates apply");
                    }
                }
                ydoc::text_of(&doc, &text)
            }
        }
    }
}

pub struct ConvergenceChecker {
    pub docs: Vec<String>,
    pub expected: BTreeMap<String, Expected>,
}

fn same(a: &DocState, b: &DocState) -> bool {
    a.text == b.text && a.sv == b.sv
}

fn brief(s: &DocState) -> String {
    let head: String = s.text.chars().take(24).collect();
    format!("{} chars {:?}.. sv {:?}{}", s.text.len(), head, s.sv, if s.pending { " (pending)" } else { "" })
}

impl Checker for ConvergenceChecker {
    fn check(&self, outcome: &Outcome, verdict: &mut Verdict) {
        let finals = super::finals_by_doc(outcome);
        let verified = super::verified_by_doc(outcome);
        let mut diverged = Vec::new();
        let mut unread = Vec::new();
        for doc in &self.docs {
            let Some(fs) = finals.get(doc) else {
                diverged.push(format!("{doc}: no editor recorded its final state"));
                continue;
            };
            let (first_node, first) = &fs[0];
            let reference = &first.state;
            for (node, f) in fs {
                if f.state.pending {
                    diverged.push(format!("{doc}: {node} holds updates it cannot integrate: {}", brief(&f.state)));
                }
                if !same(&f.state, reference) {
                    diverged.push(format!("{doc}: {node} {} vs {first_node} {}", brief(&f.state), brief(reference)));
                }
                match &f.room {
                    Some(room) if !same(room, reference) => diverged.push(format!(
                        "{doc}: live room served to {node} {} vs {first_node} {}",
                        brief(room),
                        brief(reference)
                    )),
                    Some(_) => {}
                    None => diverged.push(format!("{doc}: {node} was not connected to the room at the end")),
                }
            }
            match verified.get(doc) {
                None => unread.push(format!("{doc}: the verifier never read it back")),
                Some(v) => {
                    for (what, read) in [("front door", &v.front_door), ("MongoDB", &v.mongo)] {
                        match read {
                            Err(e) => unread.push(format!("{doc}: {what}: {e}")),
                            Ok(s) if !same(s, reference) || s.pending => diverged.push(format!(
                                "{doc}: {what} after recovery {} vs {first_node} {}",
                                brief(s),
                                brief(reference)
                            )),
                            Ok(_) => {}
                        }
                    }
                }
            }
            if let Some(exp) = self.expected.get(doc) {
                let fs: Vec<&EditorFinal> = fs.iter().map(|(_, f)| f).collect();
                let want = exp.text(&fs);
                if reference.text != want {
                    let at = reference.text.bytes().zip(want.bytes()).take_while(|(a, b)| a == b).count();
                    verdict.violation(
                        "trace content",
                        format!(
                            "{doc}: {} chars, the trace says {} (first difference at byte {at})",
                            reference.text.len(),
                            want.len()
                        ),
                    );
                }
            }
        }
        verdict.violations_upto("divergence", diverged, 10);
        verdict.violations_upto("unreadable", unread, 10);
    }
}
