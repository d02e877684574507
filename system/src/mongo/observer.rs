//! What a mongod tells an outside observer (a scenario's checkers) about its replication
//! history. The real build passes [`NoObserver`]; simulations record elections, oplog changes
//! and rollbacks to check election safety and durability after the run.

use super::oplog::{OpTime, OplogEntry};

/// Callbacks from a mongod's replication; every method defaults to doing nothing.
pub trait Observer: Send + Sync {
    /// `member` of `set` became primary in `term` at simulated `t_ms`.
    fn became_primary(&self, _set: &str, _member: &str, _term: u64, _t_ms: u64) {}
    /// `member` stepped down (or learned it was deposed).
    fn stepped_down(&self, _set: &str, _member: &str, _term: u64, _t_ms: u64) {}
    /// The member started with this oplog (read back from its disk).
    fn recovered(&self, _set: &str, _member: &str, _entries: &[OplogEntry]) {}
    /// Entries appended to the member's oplog.
    fn appended(&self, _set: &str, _member: &str, _entries: &[OplogEntry]) {}
    /// The member rolled back everything after `common`.
    fn rolled_back(&self, _set: &str, _member: &str, _common: OpTime, _removed: &[OplogEntry], _t_ms: u64) {}
}

/// The observer of the real build: nobody is watching.
pub struct NoObserver;

impl Observer for NoObserver {}
