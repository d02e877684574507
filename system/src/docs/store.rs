//! The durable document schema in the MongoDB-like store, and its queries.
//!
//! Every collection is routed by the document id (`tenant/name`), so one document's
//! operations, version vector and snapshots live on one shard and a batch that touches several
//! of them commits atomically (one oplog entry).
//!
//! | collection | `_id` | document | written |
//! | --- | --- | --- | --- |
//! | `crdt_ops` | `<doc>/<op_id>` | `{doc, op_id, update: hex v1 update, partition, offset}` | insert-if-absent: a redelivered record is a duplicate, never a second copy |
//! | `version_vectors` | `<doc>` | `{"<client>": clock, ...}`: the yrs state vector of the persisted operations | `$max` per client, in the same batch as the operations |
//! | `snapshots` | `<doc>@<version, 10 digits>` | `{doc, version, state: hex v1 update, state_vector: hex, ops_seen, ops_through, token, written_wall_ms}` | insert-if-absent, fenced by the compaction lock's token: immutable |
//! | `snapshot_index` | same as `snapshots` | [`SnapshotMeta`] (no state): what the history endpoint lists | with the snapshot, same batch |
//! | `snapshot_heads` | `<doc>` | `{version: n}`: the latest snapshot's version | `$max`, same batch |
//!
//! Every write is `w:majority` and every read `readConcern: majority`: what the service
//! serves and the consumer builds on has been acknowledged and cannot roll back. Operations
//! are never deleted (a snapshot only lets a reader skip them); the reads are by id prefix,
//! and for operations also by the oplog position they were written at: a snapshot records the
//! position it contains every operation up to (`ops_through`), and a load reads the latest
//! snapshot, then only the operations written after that position (MongoDB would query an
//! indexed, server-filled timestamp field the same way).

use serde_json::{json, Value};

use super::rebuild::{self, OpBytes, RebuildError, Rebuilt};
use super::snapshot::{Snapshot, SnapshotMeta};
use super::vector::{hex, unhex, VersionVector};
use crate::mongo::collections::{CRDT_OPS, SNAPSHOTS, VERSION_VECTORS};
use crate::mongo::protocol::FoundDoc;
use crate::mongo::{Document, Fence, ReadConcern, RouteError, Router, WriteConcern, WriteOp, Written};

pub const SNAPSHOT_INDEX: &str = "snapshot_index";
pub const SNAPSHOT_HEADS: &str = "snapshot_heads";

/// The compaction lock of a document (in the config servers' `config.locks`).
pub fn lock_name(doc: &str) -> String {
    format!("compact/{doc}")
}

pub fn op_key(doc: &str, op_id: &str) -> String {
    format!("{doc}/{op_id}")
}

pub fn ops_prefix(doc: &str) -> String {
    format!("{doc}/")
}

pub fn snapshot_key(doc: &str, version: u64) -> String {
    format!("{doc}@{version:010}")
}

pub fn snapshots_prefix(doc: &str) -> String {
    format!("{doc}@")
}

/// One stored operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredOp {
    pub doc: String,
    pub op_id: String,
    pub update: Vec<u8>,
    /// Where the consumer read it (the first time it was stored).
    pub partition: u32,
    pub offset: u64,
}

impl StoredOp {
    pub fn to_json(&self) -> Value {
        json!({ "doc": self.doc, "op_id": self.op_id, "update": hex(&self.update),
                "partition": self.partition, "offset": self.offset })
    }

    pub fn from_json(v: &Value) -> Option<StoredOp> {
        Some(StoredOp {
            doc: v.get("doc")?.as_str()?.to_string(),
            op_id: v.get("op_id")?.as_str()?.to_string(),
            update: unhex(v.get("update")?.as_str()?)?,
            partition: u32::try_from(v.get("partition")?.as_u64()?).ok()?,
            offset: v.get("offset")?.as_u64()?,
        })
    }

    pub fn bytes(&self) -> OpBytes {
        OpBytes { op_id: self.op_id.clone(), update: self.update.clone() }
    }
}

pub fn snapshot_json(s: &Snapshot) -> Value {
    json!({ "doc": s.doc, "version": s.version, "state": hex(&s.state), "state_vector": s.vector.to_hex(),
            "ops_seen": s.ops_seen, "ops_through": s.ops_through, "token": s.token,
            "written_wall_ms": s.written_wall_ms })
}

pub fn snapshot_from_json(v: &Value) -> Option<Snapshot> {
    Some(Snapshot {
        doc: v.get("doc")?.as_str()?.to_string(),
        version: v.get("version")?.as_u64()?,
        state: unhex(v.get("state")?.as_str()?)?,
        vector: VersionVector::decode_v1(&unhex(v.get("state_vector")?.as_str()?)?).ok()?,
        ops_seen: v.get("ops_seen")?.as_u64()?,
        // Absent from snapshots written before it was kept: then every operation is read.
        ops_through: v.get("ops_through").map_or(Some(0), Value::as_u64)?,
        token: v.get("token")?.as_u64()?,
        written_wall_ms: v.get("written_wall_ms")?.as_u64()?,
    })
}

/// The writes that persist `ops` of `doc` and raise its version vector to `vector`.
pub fn persist_writes(doc: &str, ops: &[StoredOp], vector: &VersionVector) -> Vec<WriteOp> {
    let mut writes: Vec<WriteOp> = ops
        .iter()
        .map(|op| WriteOp::Insert { ns: CRDT_OPS.into(), id: op_key(doc, &op.op_id), doc: op.to_json().into() })
        .collect();
    if !vector.is_empty() {
        writes.push(WriteOp::MaxMerge { ns: VERSION_VECTORS.into(), id: doc.into(), fields: vector.to_fields() });
    }
    writes
}

/// UNSAFE (a planted fault): [`persist_writes`] with every operation's id suffixed, so the same
/// operation delivered twice is stored twice.
pub fn persist_writes_keyed(doc: &str, ops: &[StoredOp], vector: &VersionVector, suffix: &str) -> Vec<WriteOp> {
    persist_writes(doc, ops, vector)
        .into_iter()
        .map(|w| match w {
            WriteOp::Insert { ns, id, doc } => WriteOp::Insert { ns, id: format!("{id}{suffix}"), doc },
            other => other,
        })
        .collect()
}

/// The writes of a snapshot: the snapshot, its index entry and the head.
pub fn snapshot_writes(s: &Snapshot) -> Vec<WriteOp> {
    let id = snapshot_key(&s.doc, s.version);
    let meta = serde_json::to_value(s.meta()).expect("snapshot metadata serializes");
    vec![
        WriteOp::Insert { ns: SNAPSHOTS.into(), id: id.clone(), doc: snapshot_json(s).into() },
        WriteOp::Insert { ns: SNAPSHOT_INDEX.into(), id, doc: meta.into() },
        WriteOp::MaxMerge {
            ns: SNAPSHOT_HEADS.into(),
            id: s.doc.clone(),
            fields: [("version".into(), s.version)].into(),
        },
    ]
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LoadError {
    #[error("store: {0}")]
    Route(#[from] RouteError),
    #[error("{0}")]
    Rebuild(#[from] RebuildError),
    #[error("stored document {0} is malformed")]
    Malformed(String),
}

/// What a snapshot write came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SnapshotOutcome {
    Written(Written),
    /// That version already exists (another compactor wrote it first); it was not touched.
    Exists,
}

/// The document schema over a router. Clones share the router.
#[derive(Clone)]
pub struct DocStore {
    router: Router,
}

impl DocStore {
    pub fn new(router: Router) -> Self {
        DocStore { router }
    }

    pub fn router(&self) -> &Router {
        &self.router
    }

    /// Persists `ops` and raises the version vector, in one `w:majority` batch.
    pub async fn persist(&self, doc: &str, ops: &[StoredOp], vector: &VersionVector) -> Result<Written, RouteError> {
        self.router.write(doc, persist_writes(doc, ops, vector), WriteConcern::Majority, None).await
    }

    /// UNSAFE (a planted fault): [`persist_writes_keyed`].
    pub async fn persist_keyed(
        &self,
        doc: &str,
        ops: &[StoredOp],
        vector: &VersionVector,
        suffix: &str,
    ) -> Result<Written, RouteError> {
        let writes = persist_writes_keyed(doc, ops, vector, suffix);
        self.router.write(doc, writes, WriteConcern::Majority, None).await
    }

    /// UNSAFE (a planted fault): writes a snapshot replacing whatever that version held.
    pub async fn overwrite_snapshot(&self, s: &Snapshot, fence: Fence) -> Result<SnapshotOutcome, RouteError> {
        let writes = snapshot_writes(s)
            .into_iter()
            .map(|w| match w {
                WriteOp::Insert { ns, id, doc } => WriteOp::Upsert { ns, id, doc },
                other => other,
            })
            .collect();
        let w = self.router.write(&s.doc, writes, WriteConcern::Majority, Some(fence)).await?;
        Ok(SnapshotOutcome::Written(w))
    }

    /// Writes a snapshot under the compaction lock's fence.
    pub async fn write_snapshot(&self, s: &Snapshot, fence: Fence) -> Result<SnapshotOutcome, RouteError> {
        let w = self.router.write(&s.doc, snapshot_writes(s), WriteConcern::Majority, Some(fence)).await?;
        Ok(if w.inserted == 0 { SnapshotOutcome::Exists } else { SnapshotOutcome::Written(w) })
    }

    async fn find(&self, doc: &str, ns: &str, prefix: &str) -> Result<Vec<FoundDoc>, RouteError> {
        self.router.find(doc, ns, prefix, ReadConcern::Majority).await
    }

    /// The document with exactly this id (a prefix read also finds `<doc>-more`).
    async fn get(&self, doc: &str, ns: &str, id: &str) -> Result<Option<Document>, RouteError> {
        Ok(self.find(doc, ns, id).await?.into_iter().find(|d| d.id == id).map(|d| d.doc))
    }

    /// Every stored operation of `doc`, in id order.
    pub async fn ops(&self, doc: &str) -> Result<Vec<StoredOp>, LoadError> {
        Ok(self.ops_after(doc, 0).await?.0)
    }

    /// The stored operations of `doc` written after oplog position `after`, in id order, and
    /// the highest position among them (0 for none).
    async fn ops_after(&self, doc: &str, after: u64) -> Result<(Vec<StoredOp>, u64), LoadError> {
        let found = self.router.find_after(doc, CRDT_OPS, &ops_prefix(doc), ReadConcern::Majority, after).await?;
        let through = found.iter().map(|d| d.optime.ts).max().unwrap_or(0);
        let ops = found
            .iter()
            .map(|d| StoredOp::from_json(d.doc.value()).ok_or_else(|| LoadError::Malformed(d.id.clone())))
            .collect::<Result<_, _>>()?;
        Ok((ops, through))
    }

    /// The persisted version vector (empty when nothing was persisted).
    pub async fn version_vector(&self, doc: &str) -> Result<VersionVector, RouteError> {
        Ok(self.get(doc, VERSION_VECTORS, doc).await?.map(|v| VersionVector::from_json(v.value())).unwrap_or_default())
    }

    pub async fn latest_version(&self, doc: &str) -> Result<u64, RouteError> {
        let head = self.get(doc, SNAPSHOT_HEADS, doc).await?;
        Ok(head.and_then(|h| h.get("version").and_then(Value::as_u64)).unwrap_or(0))
    }

    pub async fn snapshot(&self, doc: &str, version: u64) -> Result<Option<Snapshot>, LoadError> {
        let id = snapshot_key(doc, version);
        match self.get(doc, SNAPSHOTS, &id).await? {
            Some(v) => Ok(Some(snapshot_from_json(v.value()).ok_or(LoadError::Malformed(id))?)),
            None => Ok(None),
        }
    }

    /// The latest snapshot, if any.
    pub async fn latest_snapshot(&self, doc: &str) -> Result<Option<Snapshot>, LoadError> {
        match self.latest_version(doc).await? {
            0 => Ok(None),
            v => self.snapshot(doc, v).await,
        }
    }

    /// Every snapshot's metadata, oldest first.
    pub async fn history(&self, doc: &str) -> Result<Vec<SnapshotMeta>, LoadError> {
        let found = self.find(doc, SNAPSHOT_INDEX, &snapshots_prefix(doc)).await?;
        found
            .iter()
            .map(|d| serde::Deserialize::deserialize(d.doc.value()).map_err(|_| LoadError::Malformed(d.id.clone())))
            .collect()
    }

    /// The latest snapshot, then the operations stored after the oplog position it contains
    /// everything up to (all of them for a snapshot that does not say). Read in that order, the
    /// operations include every one stored since the snapshot was built; reading only those
    /// keeps a load as long as the tail since the last compaction, not the document's history.
    pub async fn load(&self, doc: &str) -> Result<Loaded, LoadError> {
        let snapshot = self.latest_snapshot(doc).await?;
        let (ops, through) = self.ops_after(doc, snapshot.as_ref().map_or(0, |s| s.ops_through)).await?;
        Ok(Loaded { snapshot, ops, through })
    }

    /// The document rebuilt from MongoDB alone: the latest snapshot plus the operations after
    /// it, in causal order.
    pub async fn rebuild(&self, doc: &str) -> Result<(Rebuilt, Option<Snapshot>, usize), LoadError> {
        let Loaded { snapshot, ops, .. } = self.load(doc).await?;
        let bytes: Vec<OpBytes> = ops.iter().map(StoredOp::bytes).collect();
        let rebuilt = rebuild::rebuild(snapshot.as_ref().map(|s| s.state.as_slice()), &bytes)?;
        Ok((rebuilt, snapshot, ops.len()))
    }
}

/// What [`DocStore::load`] read.
#[derive(Debug)]
pub struct Loaded {
    pub snapshot: Option<Snapshot>,
    /// The operations stored after the snapshot's `ops_through`, in id order.
    pub ops: Vec<StoredOp>,
    /// The highest oplog position among them (0 for none; [`super::snapshot::next`] keeps the
    /// snapshot's).
    pub through: u64,
}

/// The document rebuilt from MongoDB alone (for the stack's convergence checker and verifiers).
pub async fn rebuild_from_mongo(router: &Router, doc: &str) -> Result<Rebuilt, LoadError> {
    Ok(DocStore::new(router.clone()).rebuild(doc).await?.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mongo::oplog::{OpTime, OplogEntry};
    use crate::mongo::protocol::Reply;
    use crate::mongo::store::Store;
    use crate::mongo::writes::prepare;

    /// Applies `writes` as a primary would; returns (inserted, duplicates) or the refusal.
    fn write(s: &mut Store, ts: u64, writes: &[WriteOp], fence: Option<&Fence>) -> Result<(u32, u32), Reply> {
        let p = prepare(s, writes, fence)?;
        s.apply(&OplogEntry { optime: OpTime::new(1, ts), wall_ms: 0, ops: p.ops, fence: fence.cloned() });
        Ok((p.inserted, p.duplicates))
    }

    fn op(id: &str, offset: u64) -> StoredOp {
        StoredOp { doc: "acme/plan".into(), op_id: id.into(), update: vec![1, 2], partition: 0, offset }
    }

    fn vv(c: u64, k: u32) -> VersionVector {
        let mut v = VersionVector::default();
        v.raise(c, k);
        v
    }

    #[test]
    fn a_redelivered_operation_is_stored_once_and_the_vector_only_rises() {
        let mut s = Store::default();
        assert_eq!(write(&mut s, 1, &persist_writes("acme/plan", &[op("a", 0)], &vv(7, 3)), None), Ok((1, 0)));
        // Redelivered at another offset, with an older vector (a zombie consumer).
        assert_eq!(
            write(&mut s, 2, &persist_writes("acme/plan", &[op("a", 9), op("b", 10)], &vv(7, 1)), None),
            Ok((1, 1))
        );
        let ops = s.scan(CRDT_OPS, &ops_prefix("acme/plan"), None);
        assert_eq!(ops.len(), 2);
        assert_eq!(StoredOp::from_json(ops[0].doc.value()).unwrap(), op("a", 0), "the first copy stays");
        let stored = s.get(VERSION_VECTORS, "acme/plan", None).unwrap();
        assert_eq!(VersionVector::from_json(stored.value()), vv(7, 3));
        assert!(s.scan(CRDT_OPS, &ops_prefix("acme/pla"), None).is_empty(), "prefixes end at the separator");
    }

    #[test]
    fn a_snapshot_version_is_written_once_and_a_stale_token_is_refused() {
        let mut s = Store::default();
        let snap = |token, state: Vec<u8>| Snapshot {
            doc: "acme/plan".into(),
            version: 1,
            state,
            vector: vv(7, 3),
            ops_seen: 4,
            ops_through: 12,
            token,
            written_wall_ms: 5,
        };
        let fence = |token| Fence { lock: lock_name("acme/plan"), token };
        assert_eq!(write(&mut s, 1, &snapshot_writes(&snap(2, vec![0, 0])), Some(&fence(2))), Ok((2, 0)));
        let again = write(&mut s, 2, &snapshot_writes(&snap(3, vec![9, 9])), Some(&fence(3)));
        assert_eq!(again, Ok((0, 2)), "version 1 exists: nothing replaced");
        let stale = write(&mut s, 3, &snapshot_writes(&snap(1, vec![8])), Some(&fence(1)));
        assert!(matches!(stale, Err(Reply::StaleFence { token: 1, highest: 3, .. })));
        let stored =
            snapshot_from_json(s.get(SNAPSHOTS, &snapshot_key("acme/plan", 1), None).unwrap().value()).unwrap();
        assert_eq!(stored, snap(2, vec![0, 0]));
        let head = s.get(SNAPSHOT_HEADS, "acme/plan", None).unwrap();
        assert_eq!(head.get("version").and_then(Value::as_u64), Some(1));
    }
}
