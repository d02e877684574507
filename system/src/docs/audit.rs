//! Reading the durable documents from the MongoDB-like cluster's recovered oplogs, for
//! checkers: the evidence after the run's final power loss, not what a node said it stored.
//!
//! For each shard the member with the newest oplog is read (after recovery the members agree
//! on everything majority-committed; the newest holds it all). Every `Put` of an operation or
//! a snapshot is counted: an operation put twice was stored twice, a snapshot version put with
//! two different digests changed after it was written.

use std::collections::BTreeMap;

use sim::disk::DiskFarm;

use super::rebuild::{self, OpBytes, RebuildError, Rebuilt};
use super::snapshot::Snapshot;
use super::store::{snapshot_from_json, StoredOp};
use super::vector::digest;
use crate::mongo::collections::{CRDT_OPS, SNAPSHOTS};
use crate::mongo::oplog::{Op, OplogEntry};
use crate::mongo::MongoCluster;

#[derive(Clone, Debug, Default)]
pub struct DurableAudit {
    /// Operation key (`<doc>/<op_id>`) → how many entries put it.
    pub op_puts: BTreeMap<String, u32>,
    /// Snapshot key (`<doc>@<version>`) → the digest of each put, in oplog order.
    pub snapshot_puts: BTreeMap<String, Vec<String>>,
    /// Per document, its operations as last put, in key order.
    pub ops: BTreeMap<String, BTreeMap<String, StoredOp>>,
    /// Per document, its snapshots by version (first put).
    pub snapshots: BTreeMap<String, BTreeMap<u64, Snapshot>>,
    /// Documents of the collections that did not parse.
    pub malformed: Vec<String>,
}

impl DurableAudit {
    /// Adds one shard's oplog.
    pub fn add_oplog(&mut self, entries: &[OplogEntry]) {
        for e in entries {
            for op in &e.ops {
                let Op::Put { ns, id, doc } = op else { continue };
                if ns == CRDT_OPS {
                    *self.op_puts.entry(id.clone()).or_default() += 1;
                    match StoredOp::from_json(doc.value()) {
                        Some(op) => {
                            self.ops.entry(op.doc.clone()).or_default().insert(id.clone(), op);
                        }
                        None => self.malformed.push(id.clone()),
                    }
                } else if ns == SNAPSHOTS {
                    match snapshot_from_json(doc.value()) {
                        Some(s) => {
                            self.snapshot_puts.entry(id.clone()).or_default().push(digest(&s.state));
                            self.snapshots.entry(s.doc.clone()).or_default().entry(s.version).or_insert(s);
                        }
                        None => self.malformed.push(id.clone()),
                    }
                }
            }
        }
    }

    /// Reads every shard of `cluster` from `disks` (the newest readable oplog of each set).
    pub fn from_cluster(cluster: &MongoCluster, disks: &DiskFarm) -> Self {
        let mut audit = DurableAudit::default();
        for set in cluster.shard_sets() {
            let newest = cluster
                .oplogs_on_disk(disks, set)
                .into_iter()
                .filter(|m| m.unreadable.is_none())
                .max_by_key(|m| m.oplog.last());
            if let Some(m) = newest {
                audit.add_oplog(m.oplog.entries());
            }
        }
        audit
    }

    /// Operations put more than once.
    pub fn stored_twice(&self) -> Vec<(&str, u32)> {
        self.op_puts.iter().filter(|(_, n)| **n > 1).map(|(k, n)| (k.as_str(), *n)).collect()
    }

    /// Snapshot versions whose bytes changed after they were written.
    pub fn changed_snapshots(&self) -> Vec<&str> {
        self.snapshot_puts.iter().filter(|(_, d)| d.windows(2).any(|w| w[0] != w[1])).map(|(k, _)| k.as_str()).collect()
    }

    pub fn docs(&self) -> Vec<&str> {
        let mut docs: Vec<&str> = self.ops.keys().chain(self.snapshots.keys()).map(String::as_str).collect();
        docs.sort();
        docs.dedup();
        docs
    }

    /// `doc` rebuilt from its latest snapshot and every operation, as the service does.
    pub fn rebuild(&self, doc: &str) -> Result<Rebuilt, RebuildError> {
        let base = self.snapshots.get(doc).and_then(|s| s.values().last());
        let ops: Vec<OpBytes> =
            self.ops.get(doc).map(|m| m.values().map(StoredOp::bytes).collect()).unwrap_or_default();
        rebuild::rebuild(base.map(|s| s.state.as_slice()), &ops)
    }
}
