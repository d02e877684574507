//! Persisting log records: decoding them, and storing each document's operations with its
//! advanced version vector in one `w:majority` batch.
//!
//! The version vector written is the yrs state vector of a document this consumer keeps in
//! memory, holding every operation it loaded from the store (on first touch) or persisted
//! since. It is therefore the state of a subset of what is stored, never more: a vector that
//! claimed an operation not yet stored would let the document service serve a cached copy
//! that is ahead of the durable document. The store raises it with a per-client `$max`, so a
//! consumer that missed another's writes (a rebalance, a zombie member) never lowers it. A
//! batch that fails, or whose outcome is unknown, drops the in-memory document, so a later
//! batch reloads it from the store instead of building on operations that may not be stored.
//!
//! A record value is the lower-case hex of [`DocUpdate::encode`] (Kafka values are strings
//! here). Records that do not decode, or whose update is not a yrs v1 update, are skipped and
//! reported; they would never integrate and must not stall the partition.

use std::collections::BTreeMap;

use yrs::{Doc, ReadTxn, Transact, Update};

use crate::doc_update::DocUpdate;
use crate::docs::rebuild::{self, decode_update};
use crate::docs::store::{DocStore, LoadError, StoredOp};
use crate::docs::vector::VersionVector;
use crate::kafka::Record;
use crate::mongo::{RouteError, Written};

/// A record, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decoded {
    Op(StoredOp),
    Invalid(String),
}

/// Decodes one record of `partition`.
pub fn decode_record(partition: u32, record: &Record) -> Decoded {
    let update = match DocUpdate::from_record(&record.value) {
        Ok(u) => u,
        Err(e) => return Decoded::Invalid(e.to_string()),
    };
    if decode_update(&update.update).is_none() {
        return Decoded::Invalid("not a yrs v1 update".into());
    }
    Decoded::Op(StoredOp {
        doc: update.doc.to_string(),
        op_id: update.op_id,
        update: update.update,
        partition,
        offset: record.offset,
    })
}

/// The record value of an update: what the collaboration service produces.
pub fn encode_value(update: &DocUpdate) -> String {
    update.to_record()
}

/// Groups operations by document, each group in log order, the same operation once.
pub fn by_doc(ops: Vec<StoredOp>) -> BTreeMap<String, Vec<StoredOp>> {
    let mut out: BTreeMap<String, Vec<StoredOp>> = BTreeMap::new();
    for op in ops {
        let group = out.entry(op.doc.clone()).or_default();
        if !group.iter().any(|o| o.op_id == op.op_id) {
            group.push(op);
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PersistError {
    #[error("loading the document: {0}")]
    Load(#[from] LoadError),
    #[error("writing: {0}")]
    Write(#[from] RouteError),
}

/// A document as this consumer knows it.
struct Tracked {
    doc: Doc,
    /// Operations stored since the latest snapshot (as far as this consumer knows).
    since_snapshot: u64,
}

/// The documents of the partitions this consumer holds.
pub struct Persister {
    store: DocStore,
    docs: BTreeMap<String, Tracked>,
    /// UNSAFE: `(prefix, counter)` of fresh ids operations are inserted under.
    fresh_ids: Option<(String, u64)>,
}

impl Persister {
    pub fn new(store: DocStore) -> Self {
        Persister { store, docs: BTreeMap::new(), fresh_ids: None }
    }

    /// UNSAFE: inserts every delivery of an operation under a fresh id (`<op key>#<prefix>-<n>`),
    /// so a redelivered record is stored again (see `UnsafeConsumer::FreshOpIds`).
    pub fn with_fresh_ids(mut self, prefix: &str) -> Self {
        self.fresh_ids = Some((prefix.to_string(), 0));
        self
    }

    pub fn store(&self) -> &DocStore {
        &self.store
    }

    /// Forgets every document (after losing the partitions: another member may write them).
    pub fn evict_all(&mut self) {
        self.docs.clear();
    }

    async fn load(&mut self, doc: &str) -> Result<(), LoadError> {
        if self.docs.contains_key(doc) {
            return Ok(());
        }
        let (rebuilt, _, _) = self.store.rebuild(doc).await?;
        let since_snapshot = rebuilt.applied.len() as u64;
        self.docs.insert(doc.to_string(), Tracked { doc: rebuilt.doc, since_snapshot });
        Ok(())
    }

    /// Stores `ops` of `doc` and raises its version vector; returns the write and the vector.
    pub async fn persist(&mut self, doc: &str, ops: &[StoredOp]) -> Result<(Written, VersionVector), PersistError> {
        self.load(doc).await?;
        let tracked = self.docs.get_mut(doc).expect("loaded above");
        let vector = {
            let mut txn = tracked.doc.transact_mut();
            for op in ops {
                if let Some(update) = decode_update(&op.update) {
                    apply(&mut txn, update);
                }
            }
            VersionVector::from_yrs(&txn.state_vector())
        };
        let written = match &mut self.fresh_ids {
            None => self.store.persist(doc, ops, &vector).await,
            Some((prefix, n)) => {
                *n += 1;
                self.store.persist_keyed(doc, ops, &vector, &format!("#{prefix}-{n}")).await
            }
        };
        match written {
            Ok(w) => {
                if let Some(t) = self.docs.get_mut(doc) {
                    t.since_snapshot += u64::from(w.inserted);
                }
                Ok((w, vector))
            }
            Err(e) => {
                self.docs.remove(doc);
                Err(e.into())
            }
        }
    }

    /// Whether `doc` has more than `threshold` operations since its last snapshot; if so the
    /// count restarts (the caller compacts).
    pub fn take_compaction_due(&mut self, doc: &str, threshold: u64) -> bool {
        match self.docs.get_mut(doc) {
            Some(t) if t.since_snapshot > threshold => {
                t.since_snapshot = 0;
                true
            }
            _ => false,
        }
    }

    /// The state vector this consumer holds for `doc` (None when not loaded).
    pub fn vector(&self, doc: &str) -> Option<VersionVector> {
        self.docs.get(doc).map(|t| rebuild::state_of(&t.doc))
    }
}

fn apply(txn: &mut yrs::TransactionMut<'_>, update: Update) {
    // Validated by `decode_record`; an update yrs still refuses integrates nothing and the
    // vector simply does not cover it.
    let _ = txn.apply_update(update);
}

#[cfg(test)]
mod tests {
    use yrs::{Text, Transact};

    use super::*;
    use crate::doc_update::DocId;

    fn record(offset: u64, value: String) -> Record {
        Record { offset, leader_epoch: 1, producer_id: 1, seq: offset, value, batch_end: true }
    }

    fn update(text: &str) -> Vec<u8> {
        let d = Doc::with_client_id(3);
        let t = d.get_or_insert_text("content");
        let mut txn = d.transact_mut();
        t.insert(&mut txn, 0, text);
        txn.encode_update_v1()
    }

    #[test]
    fn records_decode_to_ops_and_junk_is_invalid() {
        let doc = DocId::parse("acme/plan").unwrap();
        let u = DocUpdate::new(doc, update("hi"));
        let Decoded::Op(op) = decode_record(2, &record(7, encode_value(&u))) else { panic!("valid record") };
        assert_eq!(
            (op.doc.as_str(), op.op_id.as_str(), op.partition, op.offset),
            ("acme/plan", u.op_id.as_str(), 2, 7)
        );
        assert!(matches!(decode_record(0, &record(0, "zz".into())), Decoded::Invalid(_)));
        assert!(matches!(decode_record(0, &record(0, "00".into())), Decoded::Invalid(_)));
        let bad_yrs = DocUpdate::new(DocId::parse("acme/plan").unwrap(), vec![0xff, 0xff]);
        assert!(matches!(decode_record(0, &record(0, encode_value(&bad_yrs))), Decoded::Invalid(_)));
    }

    #[test]
    fn grouping_keeps_log_order_and_drops_repeats() {
        let op = |doc: &str, id: &str, offset| StoredOp {
            doc: doc.into(),
            op_id: id.into(),
            update: vec![],
            partition: 0,
            offset,
        };
        let groups = by_doc(vec![op("a/x", "1", 0), op("a/y", "2", 1), op("a/x", "3", 2), op("a/x", "1", 3)]);
        let ids: Vec<&str> = groups["a/x"].iter().map(|o| o.op_id.as_str()).collect();
        assert_eq!(ids, ["1", "3"]);
        assert_eq!(groups["a/y"].len(), 1);
    }
}
