//! What the workload and the members leave behind for the checkers: acknowledged commits,
//! replica reads, and (through the store's observer hook) promotions, demotions, rewinds and the
//! primaries' flush positions over time.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use system::postgres::archive::Restored;
use system::postgres::data::Table;
use system::postgres::wal::Position;
use system::postgres::Observer;

/// What kind of application action a transaction was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    SignUp,
    Grant,
    Revoke,
    Tenant,
}

impl OpKind {
    pub fn name(self) -> &'static str {
        match self {
            OpKind::SignUp => "sign-up",
            OpKind::Grant => "permission grant",
            OpKind::Revoke => "permission revocation",
            OpKind::Tenant => "tenant creation",
        }
    }
}

/// A commit the store acknowledged.
#[derive(Clone, Debug)]
pub struct Ack {
    pub txn: String,
    pub kind: OpKind,
    pub tables: Vec<Table>,
    pub node: String,
    pub epoch: u64,
    pub index: u64,
    pub at_ms: u64,
}

impl Ack {
    /// The application's promise: credentials and permissions survive any failover.
    pub fn must_survive(&self) -> bool {
        self.tables.iter().any(|t| matches!(t, Table::Credentials | Table::DocPermissions))
    }
}

/// One read served by a standby.
#[derive(Clone, Debug)]
pub struct ReplicaRead {
    pub node: String,
    pub at_ms: u64,
    pub applied: Position,
    /// `(key, epoch, index)` of each row returned.
    pub rows: Vec<(String, u64, u64)>,
    pub lag_ms: u64,
    pub lag_records: u64,
}

#[derive(Debug, Default)]
pub struct History {
    pub acks: Vec<Ack>,
    pub attempts: u64,
    pub rejected: u64,
    pub indeterminate: u64,
    pub reads: Vec<ReplicaRead>,
    /// `(node, epoch, index of its Promote record, at_ms)`.
    pub promotions: Vec<(String, u64, u64, u64)>,
    pub demotions: Vec<(String, u64, u64)>,
    pub rewinds: Vec<(String, u64, u64, u64)>,
    /// Per epoch: `(at_ms, flushed index)` of its primary, increasing.
    pub flushed: BTreeMap<u64, Vec<(u64, u64)>>,
    /// The point-in-time restore (`postgres-pitr` only).
    pub restore: Option<Result<Restored, String>>,
}

impl History {
    /// The highest index the primary of `epoch` had flushed at `at_ms`.
    pub fn flushed_by(&self, epoch: u64, at_ms: u64) -> u64 {
        let Some(series) = self.flushed.get(&epoch) else { return 0 };
        let upto = series.partition_point(|(t, _)| *t <= at_ms);
        if upto == 0 {
            0
        } else {
            series[upto - 1].1
        }
    }
}

/// The store's observer hook, writing into the shared history.
pub struct Recorder(pub Arc<Mutex<History>>);

impl Recorder {
    fn with(&self, f: impl FnOnce(&mut History)) {
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

impl Observer for Recorder {
    fn promoted(&self, node: &str, epoch: u64, index: u64, at_ms: u64) {
        self.with(|h| h.promotions.push((node.into(), epoch, index, at_ms)));
    }
    fn demoted(&self, node: &str, epoch: u64, at_ms: u64, _reason: &str) {
        self.with(|h| h.demotions.push((node.into(), epoch, at_ms)));
    }
    fn flushed(&self, _node: &str, epoch: u64, index: u64, at_ms: u64) {
        self.with(|h| {
            let series = h.flushed.entry(epoch).or_default();
            if series.last().is_none_or(|(_, i)| index > *i) {
                series.push((at_ms, index));
            }
        });
    }
    fn rewound(&self, node: &str, kept: u64, discarded: u64, at_ms: u64) {
        self.with(|h| h.rewinds.push((node.into(), kept, discarded, at_ms)));
    }
}
