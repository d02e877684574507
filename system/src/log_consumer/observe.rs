//! What the log consumers tell the checkers, as typed observations.
//!
//! These are claims (what a consumer says it did); checkers confirm them against what the
//! store holds after the run's final power loss: every operation of a committed offset is
//! stored, each once, and a snapshot version's digest never changes.

use serde::{Deserialize, Serialize};
use sim::Observation;

/// How a persisted batch's inserts came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stored {
    /// Stored now, for the first time.
    New,
    /// Already stored (a redelivered record, or the same update produced twice).
    Duplicate,
    /// In a batch that was partly new and partly duplicates (which is which is not reported).
    Mixed,
}

/// One operation persisted with `w:majority` (acknowledged).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpPersisted {
    pub doc: String,
    pub op_id: String,
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
    pub stored: Stored,
}

impl Observation for OpPersisted {
    const KIND: &'static str = "durable.op_persisted";
}

/// A record that is not a valid document update: counted and passed over (never stored).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordSkipped {
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
    pub reason: String,
}

impl Observation for RecordSkipped {
    const KIND: &'static str = "durable.record_skipped";
}

/// The group's committed offset for a partition moved to `offset` (the next record to read),
/// acknowledged by the coordinator, after every record before it was persisted or skipped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetCommitted {
    pub group: String,
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
}

impl Observation for OffsetCommitted {
    const KIND: &'static str = "durable.offset_committed";
}

/// A snapshot written (inserted, acknowledged at `w:majority`) under a fencing token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotWritten {
    pub doc: String,
    pub version: u64,
    pub token: u64,
    /// FNV-1a of the state's bytes ([`crate::docs::vector::digest`]).
    pub digest: String,
    /// Hex of the v1 state vector.
    pub state_vector: String,
    pub ops_seen: u64,
}

impl Observation for SnapshotWritten {
    const KIND: &'static str = "durable.snapshot_written";
}

/// A snapshot write refused by the shard: the lock's token is older than one it accepted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotFenced {
    pub doc: String,
    pub version: u64,
    pub token: u64,
    pub highest: u64,
}

impl Observation for SnapshotFenced {
    const KIND: &'static str = "durable.snapshot_fenced";
}
