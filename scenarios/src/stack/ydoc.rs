//! Small helpers over `yrs` shared by the editors, the verifier and the checkers: the one text
//! every document holds, state vectors as ordered maps, and reading a whole-document update.
//!
//! State vectors are `BTreeMap<client, clock>` here (yrs keeps a `HashMap`, whose order would
//! leak into traces and observations). A client's clock counts the characters it inserted;
//! deletions do not advance it (they travel in the delete set), so "acknowledged (client,
//! clock)" speaks of insertions, and deletions are judged by text convergence.

use std::collections::BTreeMap;

use yrs::block::ClientID;
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{Doc, GetString, OffsetKind, Options, ReadTxn, StateVector, Text, TextRef, Transact, Update};

/// The name of the one text every document of the stack holds (y-websocket apps choose it; the
/// servers never look inside).
pub const TEXT: &str = "content";

/// A state vector in a fixed order: client id → the next clock of that client (everything
/// below it has been integrated).
pub type Sv = BTreeMap<u64, u32>;

#[derive(Debug, thiserror::Error)]
pub enum YError {
    #[error("undecodable update: {0}")]
    Decode(String),
    #[error("update does not apply: {0}")]
    Apply(String),
}

/// yrs client ids are 53-bit (JavaScript-safe); draw ids below this.
pub const MAX_CLIENT_ID: u64 = (1 << 53) - 1;

/// A document with its text, made with a client id from the caller (a node's seeded RNG).
///
/// Offsets are UTF-16 code units, as in stock Yjs clients, rather than yrs' default UTF-8
/// bytes: every index up to the length is then a valid position (the texts here hold only
/// Basic Multilingual Plane characters), so an editor can pick a position from the length
/// alone, and the length is kept by yrs rather than counted over the whole text.
pub fn new_doc(client_id: u64) -> (Doc, TextRef) {
    assert!(client_id <= MAX_CLIENT_ID, "yrs client ids are 53-bit");
    let mut options = Options::with_client_id(ClientID::new(client_id));
    options.offset_kind = OffsetKind::Utf16;
    let doc = Doc::with_options(options);
    let text = doc.get_or_insert_text(TEXT);
    (doc, text)
}

pub fn to_sv(sv: &StateVector) -> Sv {
    sv.iter().map(|(c, k)| (c.get(), *k)).filter(|(_, k)| *k > 0).collect()
}

pub fn from_sv(sv: &Sv) -> StateVector {
    let mut out = StateVector::default();
    for (c, k) in sv {
        out.set_max(ClientID::new(*c), *k);
    }
    out
}

pub fn sv_of(doc: &Doc) -> Sv {
    to_sv(&doc.transact().state_vector())
}

pub fn text_of(doc: &Doc, text: &TextRef) -> String {
    text.get_string(&doc.transact())
}

/// The text's length in UTF-16 code units, without reading the text.
pub fn len_of(doc: &Doc, text: &TextRef) -> u32 {
    text.len(&doc.transact())
}

/// Whether the document holds updates it could not integrate yet (their causal predecessors
/// are missing).
pub fn has_pending(doc: &Doc) -> bool {
    let txn = doc.transact();
    txn.store().pending_update().is_some() || txn.store().pending_ds().is_some()
}

/// Applies a v1 update (untrusted bytes: decoding errors are returned, never panicked on).
pub fn apply(doc: &Doc, update: &[u8]) -> Result<(), YError> {
    integrate(doc, Update::decode_v1(update).map_err(|e| YError::Decode(e.to_string()))?)
}

/// Applies an update already decoded (as `system::collab::protocol::decode` returns it).
pub fn integrate(doc: &Doc, update: Update) -> Result<(), YError> {
    doc.transact_mut().apply_update(update).map_err(|e| YError::Apply(e.to_string()))
}

/// Everything the document holds that a peer at `sv` lacks, as a v1 update.
pub fn diff(doc: &Doc, sv: &Sv) -> Vec<u8> {
    doc.transact().encode_state_as_update_v1(&from_sv(sv))
}

/// The text and state vector of a whole-document update (what the document service serves),
/// and whether part of it could not be integrated.
pub fn read_update(update: &[u8]) -> Result<DocState, YError> {
    let (doc, text) = new_doc(0);
    if !update.is_empty() {
        apply(&doc, update)?;
    }
    Ok(DocState { text: text_of(&doc, &text), sv: sv_of(&doc), pending: has_pending(&doc) })
}

/// A document's content as checkers compare it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DocState {
    pub text: String,
    pub sv: Sv,
    /// Updates held back for want of their causal predecessors (never expected at the end).
    pub pending: bool,
}

/// Inserts then deletes within one transaction and returns that transaction's update.
pub fn edit(doc: &Doc, text: &TextRef, pos: u32, del: u32, ins: &str) -> Vec<u8> {
    let mut txn = doc.transact_mut();
    if del > 0 {
        text.remove_range(&mut txn, pos, del);
    }
    if !ins.is_empty() {
        text.insert(&mut txn, pos, ins);
    }
    txn.encode_update_v1()
}

/// Applies patches `(pos, del, ins)` in order as one transaction and returns its update.
///
/// Runs of keystrokes are applied as one edit each ([`coalesce`]): yrs finds a position by
/// walking the text's items from the start (it keeps no search markers, as Yjs does), and that
/// walk, once per keystroke, was the simulator's largest single cost. The document and the
/// update's content are the same: yrs merges a run of adjacent inserts of one transaction
/// into one item either way.
pub fn edit_many(doc: &Doc, text: &TextRef, patches: &[(u32, u32, String)]) -> Vec<u8> {
    let mut txn = doc.transact_mut();
    for (pos, del, ins) in coalesce(patches) {
        if del > 0 {
            text.remove_range(&mut txn, pos, del);
        }
        if !ins.is_empty() {
            text.insert(&mut txn, pos, &ins);
        }
    }
    txn.encode_update_v1()
}

/// The same edits with each run merged into one patch: typing on where the last patch's text
/// ends, deleting backwards up to where it starts (backspace), or deleting forwards from the
/// same place (delete). Positions and lengths are UTF-16 units.
pub fn coalesce(patches: &[(u32, u32, String)]) -> Vec<(u32, u32, String)> {
    let mut out: Vec<(u32, u32, String)> = Vec::with_capacity(patches.len());
    for (pos, del, ins) in patches {
        if let Some((p, d, s)) = out.last_mut() {
            let typed_on = *del == 0 && *pos == *p + s.encode_utf16().count() as u32;
            let backspace = s.is_empty() && ins.is_empty() && pos + del == *p;
            let forward = s.is_empty() && ins.is_empty() && pos == p;
            if typed_on {
                s.push_str(ins);
                continue;
            }
            if backspace || forward {
                *p = *pos;
                *d += del;
                continue;
            }
        }
        out.push((*pos, *del, ins.clone()));
    }
    out
}

/// Encodes a state vector as y-sync carries it.
pub fn encode_sv(sv: &Sv) -> Vec<u8> {
    from_sv(sv).encode_v1()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coalesced_runs_make_the_same_text() {
        let start = "hello world, and more";
        let runs: &[&[(u32, u32, &str)]] = &[
            &[(5, 0, ","), (6, 0, " there"), (12, 0, "!")],
            &[(11, 1, ""), (10, 1, ""), (9, 1, "")],
            &[(3, 1, ""), (3, 1, ""), (3, 0, "p"), (4, 0, "!")],
            &[(0, 2, "X"), (1, 0, "Y"), (7, 0, "Z"), (8, 3, ""), (0, 0, "")],
        ];
        for run in runs {
            let patches: Vec<(u32, u32, String)> = run.iter().map(|(p, d, s)| (*p, *d, s.to_string())).collect();
            let (one_by_one, t1) = new_doc(1);
            let (merged, t2) = new_doc(1);
            edit(&one_by_one, &t1, 0, 0, start);
            edit(&merged, &t2, 0, 0, start);
            for p in &patches {
                edit(&one_by_one, &t1, p.0, p.1, &p.2);
            }
            let update = edit_many(&merged, &t2, &patches);
            assert_eq!(text_of(&merged, &t2), text_of(&one_by_one, &t1), "{run:?}");
            assert!(coalesce(&patches).len() < patches.len(), "{run:?}");
            let (reader, t3) = new_doc(2);
            apply(&reader, &diff(&merged, &Sv::new())).unwrap();
            assert_eq!(text_of(&reader, &t3), text_of(&merged, &t2));
            assert!(!update.is_empty());
        }
    }

    #[test]
    fn edits_travel_and_converge() {
        let (a, at) = new_doc(1);
        let (b, bt) = new_doc(2);
        let u1 = edit(&a, &at, 0, 0, "hello");
        let u2 = edit(&b, &bt, 0, 0, "world");
        apply(&b, &u1).unwrap();
        apply(&a, &u2).unwrap();
        assert_eq!(text_of(&a, &at), text_of(&b, &bt));
        assert_eq!(sv_of(&a), Sv::from([(1, 5), (2, 5)]));
        let whole = diff(&a, &Sv::new());
        let read = read_update(&whole).unwrap();
        assert_eq!(read.sv, sv_of(&b));
        assert!(!read.pending);
        assert!(apply(&a, b"\xff\xff\xff").is_err());
    }
}
