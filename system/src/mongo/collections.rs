//! The collections the stack keeps in the sharded cluster, and the writes that maintain them.
//!
//! Every collection is sharded by the collaborative document's id (the route key), so one
//! document's snapshots, operations and version vector live on one shard.
//! - `snapshots`: immutable, versioned document states; an id per (document, version), inserted
//!   once and never updated.
//! - `crdt_ops`: CRDT operations stored idempotently under their operation id (client id,
//!   clock): a replay of the same operation is a duplicate, not a second copy.
//! - `version_vectors`: per document, the highest clock seen from each client (`$max` merge).
//! - `consumer_positions`: the log consumer's last processed position per partition.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::protocol::WriteOp;

pub const SNAPSHOTS: &str = "snapshots";
pub const CRDT_OPS: &str = "crdt_ops";
pub const VERSION_VECTORS: &str = "version_vectors";
pub const CONSUMER_POSITIONS: &str = "consumer_positions";

/// The operation id of a CRDT operation: unique per (client, clock) within a document, and
/// ordered by clock for one client.
pub fn crdt_op_id(doc: &str, client: &str, clock: u64) -> String {
    format!("{doc}/{client}/{clock:010}")
}

/// Stores one CRDT operation, idempotently.
pub fn insert_crdt_op(doc: &str, client: &str, clock: u64, payload: Value) -> WriteOp {
    let doc_value = json!({ "doc": doc, "client": client, "clock": clock, "op": payload });
    WriteOp::Insert { ns: CRDT_OPS.into(), id: crdt_op_id(doc, client, clock), doc: doc_value.into() }
}

/// The id prefix of one document's operations (for a `Find`).
pub fn crdt_ops_prefix(doc: &str) -> String {
    format!("{doc}/")
}

pub fn snapshot_id(doc: &str, version: u64) -> String {
    format!("{doc}@{version:010}")
}

/// Stores an immutable snapshot of `doc` at `version`; an existing version is never replaced.
pub fn insert_snapshot(doc: &str, version: u64, state: Value) -> WriteOp {
    let doc_value = json!({ "doc": doc, "version": version, "state": state });
    WriteOp::Insert { ns: SNAPSHOTS.into(), id: snapshot_id(doc, version), doc: doc_value.into() }
}

/// Raises `client`'s entry of `doc`'s version vector to `clock`.
pub fn bump_version_vector(doc: &str, client: &str, clock: u64) -> WriteOp {
    let fields: BTreeMap<String, u64> = [(client.to_string(), clock)].into();
    WriteOp::MaxMerge { ns: VERSION_VECTORS.into(), id: doc.into(), fields }
}

/// The route key of a consumer's position (positions shard by consumer, not by document).
pub fn consumer_key(consumer: &str, partition: u32) -> String {
    format!("{consumer}/{partition}")
}

/// Records that `consumer` processed `partition` up to `offset`.
pub fn set_consumer_position(consumer: &str, partition: u32, offset: u64) -> WriteOp {
    let fields: BTreeMap<String, u64> = [("offset".to_string(), offset)].into();
    WriteOp::MaxMerge { ns: CONSUMER_POSITIONS.into(), id: consumer_key(consumer, partition), fields }
}
