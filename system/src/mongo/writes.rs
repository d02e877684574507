//! The primary's write path: turns a batch of [`WriteOp`]s into the oplog ops that express it,
//! against the member's current (local) data, and enforces fencing tokens.
//!
//! Every op is made idempotent before it reaches the oplog (an insert of an existing id is a
//! duplicate and writes nothing, a `$max` merge is written as its result), as MongoDB makes oplog
//! entries idempotent so that reapplying them is harmless.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::document::Document;
use super::oplog::{Fence, Op};
use super::protocol::{Reply, WriteOp};
use super::store::Store;

/// Where a shard keeps the highest fencing token it accepted for each lock.
pub const FENCES_NS: &str = "system.fences";

/// The longest namespace or id accepted from a client.
const MAX_NAME_LEN: usize = 512;

/// A batch ready for the oplog.
#[derive(Debug, Default, PartialEq)]
pub struct Prepared {
    pub ops: Vec<Op>,
    pub inserted: u32,
    pub duplicates: u32,
}

/// Prepares `writes` (carrying `fence`, if any) against `store`. A stale token or a malformed
/// write rejects the whole batch with the reply to send.
pub fn prepare(store: &Store, writes: &[WriteOp], fence: Option<&Fence>) -> Result<Prepared, Reply> {
    let mut out = Prepared::default();
    if let Some(f) = fence {
        let highest = store.get(FENCES_NS, &f.lock, None).and_then(|d| d.value().as_u64()).unwrap_or(0);
        if f.token < highest {
            return Err(Reply::StaleFence { lock: f.lock.clone(), token: f.token, highest });
        }
        if f.token > highest {
            out.ops.push(Op::Put { ns: FENCES_NS.into(), id: f.lock.clone(), doc: json!(f.token).into() });
        }
    }
    // Later writes of the batch see earlier ones.
    let mut overlay: BTreeMap<(String, String), Option<Document>> = BTreeMap::new();
    for w in writes {
        let (ns, id) = names(w);
        if ns.is_empty() || id.is_empty() || ns.len() > MAX_NAME_LEN || id.len() > MAX_NAME_LEN || ns == FENCES_NS {
            return Err(Reply::Error { reason: format!("invalid namespace or id: {ns:?} / {id:?}") });
        }
        let key = (ns.to_string(), id.to_string());
        let current = match overlay.get(&key) {
            Some(v) => v.clone(),
            None => store.get(ns, id, None).cloned(),
        };
        let next = match w {
            WriteOp::Insert { .. } if current.is_some() => {
                out.duplicates += 1;
                continue;
            }
            WriteOp::Insert { doc, .. } => {
                out.inserted += 1;
                Some(doc.clone())
            }
            WriteOp::Upsert { doc, .. } => Some(doc.clone()),
            WriteOp::MaxMerge { fields, .. } => match max_merge(current.as_ref().map(Document::value), fields) {
                Some(merged) => Some(Document::new(merged)),
                None => continue,
            },
            WriteOp::Delete { .. } if current.is_none() => continue,
            WriteOp::Delete { .. } => None,
        };
        out.ops.push(match &next {
            Some(doc) => Op::Put { ns: key.0.clone(), id: key.1.clone(), doc: doc.clone() },
            None => Op::Delete { ns: key.0.clone(), id: key.1.clone() },
        });
        overlay.insert(key, next);
    }
    Ok(out)
}

fn names(w: &WriteOp) -> (&str, &str) {
    match w {
        WriteOp::Insert { ns, id, .. }
        | WriteOp::Upsert { ns, id, .. }
        | WriteOp::MaxMerge { ns, id, .. }
        | WriteOp::Delete { ns, id } => (ns, id),
    }
}

/// The document after raising each field to at least the given value; None if nothing rises.
fn max_merge(current: Option<&Value>, fields: &BTreeMap<String, u64>) -> Option<Value> {
    let mut doc = match current {
        Some(Value::Object(m)) => m.clone(),
        _ => serde_json::Map::new(),
    };
    let mut changed = current.is_none();
    for (k, v) in fields {
        let old = doc.get(k).and_then(Value::as_u64);
        if old.is_none_or(|o| o < *v) {
            doc.insert(k.clone(), json!(v));
            changed = true;
        }
    }
    changed.then_some(Value::Object(doc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mongo::oplog::{OpTime, OplogEntry};

    fn apply(store: &mut Store, ts: u64, p: &Prepared) {
        store.apply(&OplogEntry { optime: OpTime::new(1, ts), wall_ms: 0, ops: p.ops.clone(), fence: None });
    }

    #[test]
    fn inserts_are_idempotent_by_id() {
        let mut s = Store::default();
        let ins = WriteOp::Insert { ns: "ops".into(), id: "d/c/1".into(), doc: json!({"x": 1}).into() };
        let p = prepare(&s, &[ins.clone(), ins.clone()], None).unwrap();
        assert_eq!((p.inserted, p.duplicates, p.ops.len()), (1, 1, 1));
        apply(&mut s, 1, &p);
        let p = prepare(&s, &[ins], None).unwrap();
        assert_eq!((p.inserted, p.duplicates, p.ops.len()), (0, 1, 0));
    }

    #[test]
    fn max_merge_only_raises() {
        let mut s = Store::default();
        let mm = |c: u64| WriteOp::MaxMerge { ns: "vv".into(), id: "d".into(), fields: [("a".to_string(), c)].into() };
        let p = prepare(&s, &[mm(5)], None).unwrap();
        apply(&mut s, 1, &p);
        assert!(prepare(&s, &[mm(3)], None).unwrap().ops.is_empty());
        let p = prepare(&s, &[mm(7)], None).unwrap();
        apply(&mut s, 2, &p);
        assert_eq!(s.get("vv", "d", None).map(Document::value), Some(&json!({"a": 7})));
    }

    #[test]
    fn a_lower_fencing_token_is_rejected_and_a_higher_one_is_recorded() {
        let mut s = Store::default();
        let w = [WriteOp::Upsert { ns: "snap".into(), id: "d".into(), doc: json!(1).into() }];
        let f = |token| Fence { lock: "compact/d".into(), token };
        let p = prepare(&s, &w, Some(&f(4))).unwrap();
        assert_eq!(p.ops.len(), 2);
        apply(&mut s, 1, &p);
        assert_eq!(prepare(&s, &w, Some(&f(4))).unwrap().ops.len(), 1, "the same token is still good");
        let err = prepare(&s, &w, Some(&f(3))).unwrap_err();
        assert_eq!(err, Reply::StaleFence { lock: "compact/d".into(), token: 3, highest: 4 });
    }

    #[test]
    fn clients_cannot_write_the_fence_table_or_empty_names() {
        let s = Store::default();
        let w = [WriteOp::Upsert { ns: FENCES_NS.into(), id: "x".into(), doc: json!(99).into() }];
        assert!(matches!(prepare(&s, &w, None), Err(Reply::Error { .. })));
        let w = [WriteOp::Delete { ns: "a".into(), id: String::new() }];
        assert!(matches!(prepare(&s, &w, None), Err(Reply::Error { .. })));
    }
}
