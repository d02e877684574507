//! Real editing histories, vendored in `scenarios/data/editing-traces/` with their attribution
//! (`ATTRIBUTION.md` there): Joseph Gentle's `editing-traces` collection.
//!
//! - `automerge-paper` is sequential: one writer's keystrokes, each a patch
//!   `[pos, del_len, ins_text]` on the text before it. The stack splits a prefix of it among
//!   editors in turn ([`Chunk`]): each types its share once its own copy holds exactly the text
//!   the share starts from, so the positions mean what they meant to the original writer. Its
//!   content after any prefix is known without any CRDT ([`content_after`]).
//! - `friendsforever` is concurrent: two agents, each transaction naming its `parents` (the
//!   state it was typed on is the merge of those). A live replay cannot make an editor's copy
//!   equal to exactly that merge (it integrates whatever arrives), so the replay is computed
//!   once, offline ([`replay_concurrent`]): one `yrs` document per agent, brought to the
//!   merge of each transaction's parents before the transaction is typed. Each step keeps its
//!   update and the state vector it needs; an editor sends an agent's updates in order, each
//!   only once its copy has integrated what the step needs (a person edits what they see).
//!   Replayed whole, the result equals the trace's `endContent` (a unit test), which proves the
//!   offline replay; a prefix is checked against the same replay's text. `yrs` orders
//!   concurrent inserts at one place by client id, and the published content puts agent 0
//!   first, so the agents' ids are drawn increasing ([`agent_ids`]).
//!
//! Positions are Unicode scalar values in the traces and UTF-16 code units in the editors'
//! documents ([`super::ydoc::new_doc`]); both traces are ASCII only ([`Trace::ascii`] is
//! asserted), so they coincide.

use std::sync::OnceLock;

use serde::Deserialize;
use yrs::Transact;

use super::ydoc::{self, Sv};

static PAPER_GZ: &[u8] = include_bytes!("../../data/editing-traces/automerge-paper.json.gz");
static FRIENDS_GZ: &[u8] = include_bytes!("../../data/editing-traces/friendsforever.json.gz");

/// One transaction of a trace.
#[derive(Clone, Debug, Deserialize)]
pub struct Txn {
    /// The typing agent (0 in a sequential trace).
    #[serde(default)]
    pub agent: usize,
    /// Indexes of earlier transactions whose merge this one was typed on (concurrent traces).
    #[serde(default)]
    pub parents: Vec<usize>,
    /// `(pos, del_len, ins_text)`, applied in order.
    pub patches: Vec<(u32, u32, String)>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Trace {
    #[serde(rename = "startContent", default)]
    pub start: String,
    #[serde(rename = "endContent")]
    pub end: String,
    pub txns: Vec<Txn>,
}

impl Trace {
    fn parse(gz: &[u8]) -> Trace {
        // Inflate whole, then parse the slice: serde_json reads an `io::Read` a byte at a time,
        // several times slower than a slice (this is the start of every stack run).
        let mut json = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(gz), &mut json).expect("vendored trace inflates");
        let trace: Trace = serde_json::from_slice(&json).expect("vendored trace parses");
        assert!(trace.ascii(), "positions are characters in the trace and UTF-16 units in yrs: ASCII only");
        trace
    }

    pub fn ascii(&self) -> bool {
        self.start.is_ascii()
            && self.end.is_ascii()
            && self.txns.iter().flat_map(|t| &t.patches).all(|p| p.2.is_ascii())
    }
}

/// The sequential paper trace (parsed once per process).
pub fn paper() -> &'static Trace {
    static T: OnceLock<Trace> = OnceLock::new();
    T.get_or_init(|| Trace::parse(PAPER_GZ))
}

/// The concurrent two-agent trace (parsed once per process).
pub fn friends() -> &'static Trace {
    static T: OnceLock<Trace> = OnceLock::new();
    T.get_or_init(|| Trace::parse(FRIENDS_GZ))
}

/// The text after the first `n` transactions of a sequential trace, by plain string patching.
pub fn content_after(trace: &Trace, n: usize) -> String {
    let mut text = trace.start.clone();
    for txn in &trace.txns[..n] {
        for (pos, del, ins) in &txn.patches {
            let (pos, del) = (*pos as usize, *del as usize);
            text.replace_range(pos..pos + del, ins);
        }
    }
    text
}

/// One editor's share of a sequential trace: transactions `from..to`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    pub from: usize,
    pub to: usize,
}

/// Splits the first `n` transactions into `parts` consecutive shares.
pub fn split(n: usize, parts: usize) -> Vec<Chunk> {
    (0..parts).map(|i| Chunk { from: n * i / parts, to: n * (i + 1) / parts }).collect()
}

/// One step of the offline concurrent replay.
#[derive(Clone, Debug)]
pub struct Step {
    pub agent: usize,
    /// What the typing agent's copy held when it typed this (the merge of the parents).
    pub needs: Sv,
    /// The transaction's `yrs` v1 update.
    pub update: Vec<u8>,
}

/// The concurrent trace replayed offline: per transaction its update, and the text it ends at.
#[derive(Clone, Debug)]
pub struct ConcurrentReplay {
    /// The `yrs` client id of each agent.
    pub client_ids: Vec<u64>,
    pub steps: Vec<Step>,
    pub text: String,
    pub sv: Sv,
}

impl ConcurrentReplay {
    /// The steps one agent types, in order.
    pub fn steps_of(&self, agent: usize) -> impl Iterator<Item = &Step> + '_ {
        self.steps.iter().filter(move |s| s.agent == agent)
    }
}

/// Client ids for the agents of a concurrent replay, drawn from `rng`: increasing, because
/// `yrs` orders concurrent inserts at one place by client id and the published content orders
/// agent 0 first.
pub fn agent_ids(agents: usize, rng: &mut impl rand::Rng) -> Vec<u64> {
    let mut ids: Vec<u64> = Vec::new();
    while ids.len() < agents {
        let id = rng.gen_range(1..=ydoc::MAX_CLIENT_ID);
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    ids
}

/// Replays the first `n` transactions of a concurrent trace (whose order is causal: parents
/// come first, as in the published traces), agent `a` writing as client `client_ids[a]`.
pub fn replay_concurrent(trace: &Trace, n: usize, client_ids: &[u64]) -> ConcurrentReplay {
    let docs: Vec<_> = client_ids.iter().map(|id| ydoc::new_doc(*id)).collect();
    let mut applied = vec![vec![false; n]; client_ids.len()];
    let mut steps: Vec<Step> = Vec::with_capacity(n);
    for (i, txn) in trace.txns[..n].iter().enumerate() {
        let a = txn.agent;
        let (doc, text) = &docs[a];
        // Bring the agent's copy to the merge of the parents: every ancestor it lacks.
        let mut missing = Vec::new();
        let mut stack: Vec<usize> = txn.parents.clone();
        while let Some(j) = stack.pop() {
            assert!(j < i, "trace order is not causal at {i}");
            if !applied[a][j] {
                applied[a][j] = true;
                missing.push(j);
                stack.extend(&trace.txns[j].parents);
            }
        }
        missing.sort_unstable();
        for j in missing {
            ydoc::apply(doc, &steps[j].update).expect("own replay's update applies");
        }
        let needs = ydoc::sv_of(doc);
        let mut txn_ = doc.transact_mut();
        for (pos, del, ins) in &txn.patches {
            use yrs::Text;
            if *del > 0 {
                text.remove_range(&mut txn_, *pos, *del);
            }
            if !ins.is_empty() {
                text.insert(&mut txn_, *pos, ins);
            }
        }
        let update = txn_.encode_update_v1();
        drop(txn_);
        applied[a][i] = true;
        steps.push(Step { agent: a, needs, update });
    }
    let (all, all_text) = ydoc::new_doc(ydoc::MAX_CLIENT_ID);
    for s in &steps {
        ydoc::apply(&all, &s.update).expect("own replay's update applies");
    }
    assert!(!ydoc::has_pending(&all), "a whole causal prefix leaves nothing pending");
    ConcurrentReplay {
        client_ids: client_ids.to_vec(),
        text: ydoc::text_of(&all, &all_text),
        sv: ydoc::sv_of(&all),
        steps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_prefix_typed_in_yrs_matches_string_patching() {
        let t = paper();
        assert!(t.txns.len() > 250_000);
        let n = 3_000;
        let (doc, text) = ydoc::new_doc(7);
        for c in split(n, 3) {
            for txn in &t.txns[c.from..c.to] {
                for (pos, del, ins) in &txn.patches {
                    ydoc::edit(&doc, &text, *pos, *del, ins);
                }
            }
            assert_eq!(ydoc::text_of(&doc, &text), content_after(t, c.to));
        }
    }

    #[test]
    fn concurrent_trace_replayed_whole_equals_its_end_content() {
        let t = friends();
        let r = replay_concurrent(t, t.txns.len(), &[11, 22]);
        assert_eq!(r.text, t.end);
        // Concurrent inserts at one place are ordered by client id in yrs, and the trace's
        // content was made with agent 0 ordered first: with the ids the other way round the
        // text differs (hence `agent_ids` sorts).
        assert_ne!(replay_concurrent(t, t.txns.len(), &[22, 11]).text, t.end);
    }

    #[test]
    fn concurrent_prefix_applied_out_of_order_converges() {
        let t = friends();
        let r = replay_concurrent(t, 2_000, &[5, 9]);
        let (doc, text) = ydoc::new_doc(1);
        for s in r.steps.iter().rev() {
            ydoc::apply(&doc, &s.update).unwrap();
        }
        assert_eq!(ydoc::text_of(&doc, &text), r.text);
        assert_eq!(ydoc::sv_of(&doc), r.sv);
    }
}
