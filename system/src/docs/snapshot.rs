//! Immutable, versioned document snapshots.
//!
//! Snapshot `n + 1` of a document is snapshot `n`'s state plus every stored operation it did
//! not contain, rebuilt in causal order ([`super::rebuild`]). It is written once, under the
//! compaction lock's fencing token, with an insert that never replaces an existing version:
//! a second writer of the same version (a stale lock holder that lost its lease) is either
//! refused by the token or counted as a duplicate, and the first one stays. Its digest is
//! recorded with it so checkers can tell that a version's bytes never changed.

use serde::{Deserialize, Serialize};

use super::rebuild::{self, OpBytes, RebuildError};
use super::vector::{digest, VersionVector};

/// A snapshot as stored (the state travels hex-encoded in the store's JSON).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub doc: String,
    /// 1, 2, ...: one more than the snapshot it was built on.
    pub version: u64,
    /// The whole document as one yrs v1 update.
    pub state: Vec<u8>,
    pub vector: VersionVector,
    /// Operations of the document stored when it was built (those it contains and more).
    pub ops_seen: u64,
    /// The shard's oplog position up to which every stored operation of the document is
    /// contained (0: none known, as in snapshots written before it was kept). A majority read
    /// that returns an operation at position `p` sees every entry up to `p`, and a later write
    /// lands after the commit point, so the next build reads only what came after.
    pub ops_through: u64,
    /// The compaction lock's fencing token it was written under.
    pub token: u64,
    pub written_wall_ms: u64,
}

/// What the history endpoint and checkers see of a snapshot (no state).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    pub doc: String,
    pub version: u64,
    /// Hex of the v1 state vector.
    pub state_vector: String,
    pub ops_seen: u64,
    pub token: u64,
    pub written_wall_ms: u64,
    /// [`digest`] of the state's bytes.
    pub digest: String,
    pub state_bytes: u64,
}

impl Snapshot {
    pub fn meta(&self) -> SnapshotMeta {
        SnapshotMeta {
            doc: self.doc.clone(),
            version: self.version,
            state_vector: self.vector.to_hex(),
            ops_seen: self.ops_seen,
            token: self.token,
            written_wall_ms: self.written_wall_ms,
            digest: digest(&self.state),
            state_bytes: self.state.len() as u64,
        }
    }
}

/// The next snapshot of `doc` after `previous`, containing `ops` (every operation stored for the
/// document after `previous.ops_through`, the last of them at oplog position `through`). None
/// when it would contain nothing new, or when some operation could not be integrated (a
/// snapshot is only written for a document without gaps, so a later rebuild that receives the
/// missing operation still has them all).
pub fn next(
    doc: &str,
    previous: Option<&Snapshot>,
    ops: &[OpBytes],
    through: u64,
    token: u64,
    now_wall_ms: u64,
) -> Result<Option<Snapshot>, RebuildError> {
    let rebuilt = rebuild::rebuild(previous.map(|s| s.state.as_slice()), ops)?;
    if !rebuilt.is_complete() || rebuilt.applied.is_empty() {
        return Ok(None);
    }
    let state = rebuilt.encode_state();
    if previous.is_some_and(|p| p.state == state) {
        return Ok(None);
    }
    Ok(Some(Snapshot {
        doc: doc.to_string(),
        version: previous.map_or(1, |s| s.version + 1),
        state,
        vector: rebuilt.state,
        ops_seen: previous.map_or(0, |p| p.ops_seen) + ops.len() as u64,
        ops_through: previous.map_or(0, |p| p.ops_through).max(through),
        token,
        written_wall_ms: now_wall_ms,
    }))
}

#[cfg(test)]
mod tests {
    use yrs::{Doc, GetString, Text, Transact};

    use super::*;

    fn typed(client: u64, words: &[&str]) -> Vec<OpBytes> {
        let d = Doc::with_client_id(client);
        let t = d.get_or_insert_text("content");
        let mut out = Vec::new();
        for w in words {
            let mut txn = d.transact_mut();
            let len = t.len(&txn);
            t.insert(&mut txn, len, w);
            out.push(OpBytes { op_id: format!("{client}-{w}"), update: txn.encode_update_v1() });
        }
        out
    }

    fn text(s: &Snapshot) -> String {
        let r = rebuild::rebuild(Some(&s.state), &[]).unwrap();
        let text = r.doc.get_or_insert_text("content");
        let s = text.get_string(&r.doc.transact());
        s
    }

    #[test]
    fn versions_grow_by_one_and_each_contains_its_predecessor() {
        let ops = typed(5, &["a", "b", "c", "d"]);
        let s1 = next("t/d", None, &ops[..2], 7, 1, 100).unwrap().unwrap();
        assert_eq!((s1.version, text(&s1).as_str(), s1.ops_through), (1, "ab", 7));
        let s2 = next("t/d", Some(&s1), &ops[2..], 9, 2, 200).unwrap().unwrap();
        assert_eq!((s2.version, text(&s2).as_str(), s2.ops_seen, s2.ops_through), (2, "abcd", 4, 9));
        assert!(s2.vector.covers(&s1.vector));
        assert_eq!(next("t/d", Some(&s2), &ops, 9, 3, 300).unwrap(), None, "nothing new: no version 3");
        assert_ne!(s1.meta().digest, s2.meta().digest);
    }

    #[test]
    fn a_document_with_a_gap_is_not_snapshotted() {
        let ops = typed(5, &["a", "b", "c"]);
        assert_eq!(next("t/d", None, &ops[1..], 3, 1, 100).unwrap(), None);
    }
}
