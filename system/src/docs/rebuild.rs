//! Rebuilding a document from its latest snapshot plus the operations stored after it, applied
//! in causal order (the design's "Server Failure Recovery": load the snapshot, fetch the
//! pending operations, apply them in causal order using version vectors).
//!
//! Operations come back from MongoDB in id order (their ids are hashes: any order at all). An
//! operation is *ready* once, for every client whose items it inserts, its first item's clock
//! (the update's lower state vector) is at most the clock already integrated (its items then
//! continue the document's), and, for every other client whose items it deletes, those items
//! are integrated (else yrs parks the deletion and retries it on every later update). Ready operations are applied first-stored-id first; applying one
//! raises the vector (by the update's upper bounds) and may make others ready, as Kahn's
//! topological sort does. Cross-client dependencies (an item's origin made by another client)
//! are not in the vectors; yrs keeps such an update pending until its origin arrives, and the
//! rebuild then reads the vector back from the document rather than trusting the bounds.
//! Operations that never become ready (a gap: an update that was never stored) are applied
//! last, so yrs keeps them pending, and the result says which they were.
//!
//! An operation whose insertions the snapshot's vector already covers and that deletes nothing
//! adds nothing and is skipped without being applied (the snapshot compacted it). The result's
//! state vector is read from the document and checked against the operations' upper bounds.
//!
//! This is the document service's apply path; `system/benches/apply_path.rs` compares it with
//! raw yrs applying the same updates. Each operation is applied in a transaction of its own, as
//! raw yrs applies updates: one transaction over a whole document made yrs's commit squash the
//! deletions of every operation at once, which moved the document's block list once per deleted
//! range (8.6 times raw yrs on the paper trace). The bounds are read straight from each
//! operation's bytes ([`crate::v1_update`]), and an update is decoded only right before it is
//! applied: keeping 260,000 decoded updates, scattered over the heap, until their turn cost
//! more than decoding, and decoding each once more only to read its bounds cost a quarter of the
//! rebuild.

use std::collections::{BTreeMap, BTreeSet};

use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{Doc, ReadTxn, StateVector, Transact, Update};

use super::vector::VersionVector;
use crate::v1_update::{self, Clocks};

/// The client id of documents the service builds: it never edits them, so any fixed id does
/// (and a fixed one keeps runs deterministic).
pub const REBUILD_CLIENT: u64 = 1;

/// An operation as read back: its id and its yrs v1 update.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpBytes {
    pub op_id: String,
    pub update: Vec<u8>,
}

/// A document rebuilt, and how.
pub struct Rebuilt {
    pub doc: Doc,
    /// The integrated state (pending updates excluded).
    pub state: VersionVector,
    /// Operations applied (indices into the operations given), in the order they were applied.
    pub applied: Vec<usize>,
    /// Operations the base already contained (skipped).
    pub contained: usize,
    /// Operations whose items are still not integrated (their predecessors were never stored).
    pub pending: Vec<String>,
    /// Operations whose bytes are not a yrs v1 update (never applied).
    pub invalid: Vec<String>,
}

impl Rebuilt {
    /// The whole document as one yrs v1 update (pending items included, so a receiver that
    /// later gets the missing predecessors integrates them too).
    pub fn encode_state(&self) -> Vec<u8> {
        self.doc.transact().encode_state_as_update_v1(&StateVector::default())
    }

    pub fn is_complete(&self) -> bool {
        self.pending.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RebuildError {
    #[error("the snapshot is not a valid yrs update: {0}")]
    Snapshot(String),
}

struct Decoded {
    /// Decoded and neither applied nor contained yet. The update itself is not kept: it is
    /// decoded again right before it is applied (see [`rebuild`]).
    todo: bool,
    /// Whether it deletes anything.
    deletes: bool,
    /// What must be integrated before the update: per client it inserts for, the clock of its
    /// first item (its items continue from there); per other client whose items it deletes,
    /// the end of the deleted range (the items must exist to be deleted, or yrs parks the
    /// deletion and retries it on every later update).
    needs: Clocks,
    /// Per client it inserts for, the end of its items.
    upper: Upper,
}

/// [`Decoded::upper`], inline when the update inserts for one client (as nearly every update
/// does): it is read when the op is applied, in causal order, which walks the ops in no order at
/// all (they are stored by id), and a pointer to a heap block there missed the cache once more
/// per op (about 5% of a rebuild of the paper trace in stored order).
enum Upper {
    One((u64, u32)),
    Many(Clocks),
}

impl Upper {
    fn new(clocks: Clocks) -> Self {
        match clocks[..] {
            [one] => Upper::One(one),
            _ => Upper::Many(clocks),
        }
    }

    fn as_slice(&self) -> &[(u64, u32)] {
        match self {
            Upper::One(one) => std::slice::from_ref(one),
            Upper::Many(v) => v,
        }
    }
}

/// A fresh document for rebuilding.
pub fn new_doc() -> Doc {
    crate::doc_update::server_doc(REBUILD_CLIENT)
}

/// Applies `base` (a snapshot's state, if any) and then `ops` in causal order.
pub fn rebuild(base: Option<&[u8]>, ops: &[OpBytes]) -> Result<Rebuilt, RebuildError> {
    let doc = new_doc();
    let mut out = Rebuilt {
        doc: doc.clone(),
        state: VersionVector::default(),
        applied: Vec::new(),
        contained: 0,
        pending: Vec::new(),
        invalid: Vec::new(),
    };
    if let Some(bytes) = base {
        let update = Update::decode_v1(bytes).map_err(|e| RebuildError::Snapshot(e.to_string()))?;
        doc.transact_mut().apply_update(update).map_err(|e| RebuildError::Snapshot(e.to_string()))?;
    }
    let mut current = state_of(&doc);

    let mut decoded: Vec<Decoded> = Vec::with_capacity(ops.len());
    for op in ops {
        match v1_update::bounds_of_bytes(&op.update) {
            Some(b) => {
                decoded.push(Decoded { todo: true, deletes: b.deletes, needs: b.needs, upper: Upper::new(b.upper) })
            }
            None => {
                out.invalid.push(op.op_id.clone());
                decoded.push(Decoded {
                    todo: false,
                    deletes: false,
                    needs: Clocks::new(),
                    upper: Upper::new(Clocks::new()),
                });
            }
        }
    }
    // Decoded to be applied once its turn comes (the bounds were scanned from the bytes).
    // Returns whether it applied, and whether the document then holds a pending update.
    let apply = |i: usize| match Update::decode_v1(&ops[i].update) {
        Ok(update) => {
            let mut txn = doc.transact_mut();
            let ok = txn.apply_update(update).is_ok();
            (ok, txn.store().pending_update().is_some())
        }
        Err(_) => (false, false),
    };

    // Kahn's sort over per-client clocks: `blocked[i]` counts the clients op i still waits on;
    // `waiting[c]` holds (first clock, op) of the ops waiting on client c, sorted, and how many
    // of them were released (lowest clock first).
    let mut blocked = vec![0usize; decoded.len()];
    let mut waiting: BTreeMap<u64, (Vec<(u32, usize)>, usize)> = BTreeMap::new();
    let mut ready = BTreeSet::new();
    for (i, d) in decoded.iter_mut().enumerate() {
        if !d.todo {
            continue;
        }
        let upper = d.upper.as_slice();
        let contained = !upper.is_empty() && upper.iter().all(|(c, end)| current.get(*c) >= *end) && !d.deletes;
        if contained {
            d.todo = false;
            out.contained += 1;
            continue;
        }
        for (c, start) in &d.needs {
            if current.get(*c) < *start {
                blocked[i] += 1;
                waiting.entry(*c).or_default().0.push((*start, i));
            }
        }
        if blocked[i] == 0 {
            ready.insert(i);
        }
    }
    for (list, _) in waiting.values_mut() {
        list.sort_unstable();
    }

    out.applied.reserve(decoded.len());
    let mut pending_seen = false;
    let mut raised: Vec<u64> = Vec::new();
    loop {
        let i = match ready.pop_first() {
            Some(i) => i,
            None => {
                // Nothing is ready: what is left waits on something never stored. Apply it
                // anyway (yrs keeps it pending) in stored order, and stop.
                for i in 0..decoded.len() {
                    if !decoded[i].todo {
                        continue;
                    }
                    decoded[i].todo = false;
                    if apply(i).0 {
                        out.applied.push(i);
                    } else {
                        out.invalid.push(ops[i].op_id.clone());
                    }
                }
                break;
            }
        };
        if !decoded[i].todo {
            continue;
        }
        decoded[i].todo = false;
        let (ok, pending) = apply(i);
        if !ok {
            out.invalid.push(ops[i].op_id.clone());
            continue;
        }
        out.applied.push(i);
        raised.clear();
        if pending_seen || pending {
            // Something is pending: the bounds no longer tell what was integrated.
            pending_seen = pending;
            let now = state_of(&doc);
            for (c, k) in &now.0 {
                if current.get(*c) < *k {
                    raised.push(*c);
                }
            }
            current = now;
        } else {
            for (c, end) in decoded[i].upper.as_slice() {
                if current.get(*c) < *end {
                    current.raise(*c, *end);
                    raised.push(*c);
                }
            }
        }
        for c in &raised {
            let clock = current.get(*c);
            let Some((list, released)) = waiting.get_mut(c) else { continue };
            while let Some(&(start, j)) = list.get(*released) {
                if start > clock {
                    break;
                }
                *released += 1;
                blocked[j] -= 1;
                if blocked[j] == 0 {
                    ready.insert(j);
                }
            }
        }
    }

    out.state = state_of(&doc);
    // Verify: every applied operation's insertions are integrated, or it is pending.
    for (i, op) in ops.iter().enumerate() {
        let d = &decoded[i];
        let applied = !d.todo && !out.invalid.contains(&op.op_id);
        if applied && d.upper.as_slice().iter().any(|(c, end)| out.state.get(*c) < *end) {
            out.pending.push(op.op_id.clone());
        }
    }
    Ok(out)
}

/// The state vector of an update's bytes if they decode (the consumer's validity check).
pub fn decode_update(bytes: &[u8]) -> Option<Update> {
    Update::decode_v1(bytes).ok()
}

/// Encodes a document's state vector.
pub fn state_of(doc: &Doc) -> VersionVector {
    VersionVector::from_yrs(&doc.transact().state_vector())
}

/// Encodes a yrs state vector in v1 (for tests comparing with yrs's own).
pub fn encode_yrs_vector(sv: &StateVector) -> Vec<u8> {
    sv.encode_v1()
}

#[cfg(test)]
mod tests {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    use yrs::{GetString, Text};

    use super::*;

    /// Two clients typing concurrently, syncing now and then: every local edit and every sync
    /// message is an op (sync messages repeat items: harmless, as redelivered updates are).
    fn history() -> (Vec<OpBytes>, String, VersionVector) {
        let a = Doc::with_client_id(11);
        let b = Doc::with_client_id(22);
        let (ta, tb) = (a.get_or_insert_text("content"), b.get_or_insert_text("content"));
        let mut all: Vec<Vec<u8>> = Vec::new();
        for i in 0..40u32 {
            let (doc, text, other) = if i % 3 == 0 { (&b, &tb, &a) } else { (&a, &ta, &b) };
            {
                let mut t = doc.transact_mut();
                let len = text.len(&t);
                if i % 7 == 6 && len > 2 {
                    text.remove_range(&mut t, 1, 1);
                } else {
                    text.insert(&mut t, len.min(i % 5), &format!("{i},"));
                }
                all.push(t.encode_update_v1());
            }
            if i % 4 == 0 {
                for (from, to) in [(doc, other), (other, doc)] {
                    let sv = to.transact().state_vector();
                    let diff = from.transact().encode_diff_v1(&sv);
                    to.transact_mut().apply_update(Update::decode_v1(&diff).unwrap()).unwrap();
                    all.push(diff);
                }
            }
        }
        let merged = Doc::with_client_id(99);
        for u in &all {
            merged.transact_mut().apply_update(Update::decode_v1(u).unwrap()).unwrap();
        }
        let text = merged.get_or_insert_text("content").get_string(&merged.transact());
        let ops = all.into_iter().enumerate().map(|(i, u)| OpBytes { op_id: format!("{i:04}"), update: u }).collect();
        (ops, text, state_of(&merged))
    }

    fn text_of(r: &Rebuilt) -> String {
        let text = r.doc.get_or_insert_text("content");
        let s = text.get_string(&r.doc.transact());
        s
    }

    #[test]
    fn shuffled_ops_rebuild_to_the_same_document() {
        let (ops, text, sv) = history();
        for seed in 0..20 {
            let mut shuffled = ops.clone();
            shuffled.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
            let r = rebuild(None, &shuffled).unwrap();
            assert!(r.is_complete(), "seed {seed}: pending {:?}", r.pending);
            assert_eq!(text_of(&r), text, "seed {seed}");
            assert_eq!(r.state, sv);
        }
    }

    #[test]
    fn every_op_is_applied_after_the_items_it_continues() {
        let (ops, _, _) = history();
        for order in [ops.iter().rev().cloned().collect::<Vec<_>>(), ops.clone()] {
            let r = rebuild(None, &order).unwrap();
            let mut seen = VersionVector::default();
            for &i in &r.applied {
                let id = &order[i].op_id;
                let v1_update::Bounds { needs, upper, .. } = v1_update::bounds_of_bytes(&order[i].update).unwrap();
                for (c, start) in &needs {
                    assert!(seen.get(*c) >= *start, "op {id} starts client {c} at {start}, only {seen:?} applied");
                }
                for (c, end) in upper {
                    seen.raise(c, end);
                }
            }
        }
    }

    #[test]
    fn snapshot_plus_later_ops_equals_all_ops_and_contained_ops_are_skipped() {
        let (ops, text, sv) = history();
        let half = ops.len() / 2;
        let snap = rebuild(None, &ops[..half]).unwrap();
        let base = snap.encode_state();
        let r = rebuild(Some(&base), &ops).unwrap();
        assert_eq!(text_of(&r), text);
        assert_eq!(r.state, sv);
        assert!(r.contained > 0, "the snapshot's ops are skipped");
    }

    #[test]
    fn a_gap_is_reported_pending_and_invalid_bytes_are_counted() {
        let (mut ops, _, _) = history();
        // Drop every update holding client 11's first item: everything of client 11 after it waits.
        ops.retain(|o| !v1_update::bounds_of_bytes(&o.update).unwrap().needs.contains(&(11, 0)));
        ops.push(OpBytes { op_id: "junk".into(), update: vec![0xff, 0xff, 0xff] });
        let r = rebuild(None, &ops).unwrap();
        assert!(!r.is_complete());
        assert_eq!(r.invalid, vec!["junk".to_string()]);
        assert_eq!(r.state.get(11), 0, "nothing of client 11 integrates without its first item");
    }
}
