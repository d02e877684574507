//! The document store of one member: every version of every document, tagged with the oplog
//! position (`ts`) that wrote it.
//!
//! Keeping versions is how WiredTiger serves MongoDB's `majority` read concern (a read at the
//! majority commit point's timestamp) and how MongoDB 4.0+ rolls back (recover to a stable
//! timestamp, then reapply up to the common point): here a read at `ts` sees the newest version
//! at or before `ts`, and a rollback to `ts` drops every newer version. Versions are never
//! pruned (MongoDB's `minSnapshotHistoryWindowInSeconds` history window is left out).

use std::collections::BTreeMap;

use super::document::Document;
use super::oplog::{Op, OplogEntry};

/// A version: the oplog `ts` that wrote it and the document (None: deleted).
type Version = (u64, Option<Document>);

/// Namespace, then document id: a lookup builds no key and compares ids only within their
/// namespace.
#[derive(Debug, Default)]
pub struct Store {
    docs: BTreeMap<String, BTreeMap<String, Vec<Version>>>,
}

/// A document as found by a read, with the `ts` of the write that produced it.
#[derive(Clone, Debug, PartialEq)]
pub struct Found {
    pub id: String,
    pub doc: Document,
    pub ts: u64,
}

impl Store {
    pub fn apply(&mut self, entry: &OplogEntry) {
        let ts = entry.optime.ts;
        for op in &entry.ops {
            match op {
                Op::Noop { .. } => {}
                Op::Put { ns, id, doc } => self.push(ns, id, (ts, Some(doc.clone()))),
                Op::Delete { ns, id } => self.push(ns, id, (ts, None)),
            }
        }
    }

    fn push(&mut self, ns: &str, id: &str, version: Version) {
        let ids = match self.docs.get_mut(ns) {
            Some(ids) => ids,
            None => self.docs.entry(ns.to_string()).or_default(),
        };
        match ids.get_mut(id) {
            Some(versions) => versions.push(version),
            None => {
                ids.insert(id.to_string(), vec![version]);
            }
        }
    }

    /// Forgets every version written after `ts` (the rollback of the oplog suffix after it).
    pub fn rollback_after(&mut self, ts: u64) {
        self.docs.retain(|_, ids| {
            ids.retain(|_, versions| {
                versions.retain(|(at, _)| *at <= ts);
                !versions.is_empty()
            });
            !ids.is_empty()
        });
    }

    /// The document as of `at` (None: the latest applied version); a copy of it costs a
    /// reference count.
    pub fn get(&self, ns: &str, id: &str, at: Option<u64>) -> Option<&Document> {
        let versions = self.docs.get(ns)?.get(id)?;
        visible(versions, at).and_then(|(_, d)| d.as_ref())
    }

    /// Every live document of `ns` whose id starts with `prefix`, as of `at`, in id order.
    pub fn scan(&self, ns: &str, prefix: &str, at: Option<u64>) -> Vec<Found> {
        self.scan_after(ns, prefix, at, 0)
    }

    /// [`Store::scan`], keeping only documents whose version visible at `at` was written
    /// after `after`.
    pub fn scan_after(&self, ns: &str, prefix: &str, at: Option<u64>, after: u64) -> Vec<Found> {
        let Some(ids) = self.docs.get(ns) else { return Vec::new() };
        ids.range::<str, _>((std::ops::Bound::Included(prefix), std::ops::Bound::Unbounded))
            .take_while(|(id, _)| id.starts_with(prefix))
            .filter_map(|(id, versions)| {
                let (ts, doc) = visible(versions, at)?;
                if *ts <= after {
                    return None;
                }
                Some(Found { id: id.clone(), doc: doc.clone()?, ts: *ts })
            })
            .collect()
    }
}

fn visible(versions: &[Version], at: Option<u64>) -> Option<&Version> {
    match at {
        None => versions.last(),
        Some(at) => versions.iter().rev().find(|(ts, _)| *ts <= at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mongo::oplog::OpTime;
    use serde_json::json;

    fn put(ts: u64, id: &str, v: i64) -> OplogEntry {
        let op = Op::Put { ns: "c".into(), id: id.into(), doc: json!(v).into() };
        OplogEntry { optime: OpTime::new(1, ts), wall_ms: 0, ops: vec![op], fence: None }
    }

    #[test]
    fn reads_see_the_version_at_their_timestamp_and_rollback_drops_newer_ones() {
        let mut s = Store::default();
        s.apply(&put(1, "a", 1));
        s.apply(&put(2, "a", 2));
        s.apply(&put(3, "b", 3));
        assert_eq!(s.get("c", "a", None).map(Document::value), Some(&json!(2)));
        assert_eq!(s.get("c", "a", Some(1)).map(Document::value), Some(&json!(1)));
        assert_eq!(s.get("c", "b", Some(2)), None);
        assert_eq!(s.scan("c", "", Some(2)).len(), 1);
        s.rollback_after(1);
        assert_eq!(s.get("c", "a", None).map(Document::value), Some(&json!(1)));
        assert_eq!(s.scan("c", "", None).len(), 1);
        let del = OplogEntry {
            optime: OpTime::new(1, 2),
            wall_ms: 0,
            ops: vec![Op::Delete { ns: "c".into(), id: "a".into() }],
            fence: None,
        };
        s.apply(&del);
        assert_eq!(s.get("c", "a", None), None);
        assert_eq!(s.scan("c", "a", Some(1))[0].ts, 1);
    }

    #[test]
    fn a_scan_after_a_position_keeps_the_versions_written_after_it_as_of_its_read_point() {
        let mut s = Store::default();
        for (ts, id) in [(1, "d/a"), (2, "d/b"), (3, "e/c"), (4, "d/c"), (5, "d/d")] {
            s.apply(&put(ts, id, ts as i64));
        }
        s.apply(&put(6, "d/a", 6));
        let ids = |f: Vec<Found>| f.into_iter().map(|f| (f.id, f.ts)).collect::<Vec<_>>();
        assert_eq!(ids(s.scan_after("c", "d/", None, 2)), [("d/a".into(), 6), ("d/c".into(), 4), ("d/d".into(), 5)]);
        // As of 5, `d/a` is its first version, written before the position.
        assert_eq!(ids(s.scan_after("c", "d/", Some(5), 2)), [("d/c".into(), 4), ("d/d".into(), 5)]);
        assert_eq!(s.scan_after("c", "d/", None, 0).len(), 4, "0 keeps everything");
        assert!(s.scan_after("c", "d/", None, 6).is_empty());
    }
}
