//! What a MongoDB-like cluster and its clients tell the checkers, as typed observations
//! ([`sim::Observation`], recorded with [`sim::NodeCtx::observe`]).
//!
//! Two families, kept apart because they are trusted differently:
//! - [`MemberEvent`]: what a mongod claims about its own replication (it became primary, stepped
//!   down, rolled back, recovered an oplog from disk). Claims, to be checked: a checker judges
//!   durability from what the members' disks hold at the end ([`super::cluster::MongoCluster`]
//!   reads them), never from a member's word.
//! - What a client was told ([`WriteAcked`], [`LockGranted`], [`MajorityRead`], [`FencedOut`]):
//!   recorded by whoever drives a [`super::Router`] (a scenario's workload, later the stack's
//!   services), with the promise the acknowledgement carried (its write concern), so each is
//!   judged by the promise of its class.
//!
//! The node that recorded an observation is part of it ([`sim::observation::Seen::node`]), so
//! no type repeats it.

use serde::{Deserialize, Serialize};
use sim::Observation;

use super::oplog::OpTime;
use super::protocol::WriteConcern;
use super::replset::ElectionReason;

/// A mongod's claim about its replica set membership, recorded by the member itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberEvent {
    /// The member started (every life) with this much oplog read back from its disk.
    Recovered { set: String, term: u64, last: OpTime, entries: u64 },
    /// The member won an election and took writes from then on.
    BecamePrimary { set: String, term: u64, reason: ElectionReason },
    /// The member stopped being primary (lost its majority, or saw a newer term).
    SteppedDown { set: String, term: u64, reason: String },
    /// The member truncated its oplog after `common` (MongoDB's rollback), undoing the entries
    /// at `removed`. `past_commit`: it had learned that some of what it undid was
    /// majority-committed, MongoDB's fatal case.
    RolledBack { set: String, common: OpTime, removed: Vec<OpTime>, past_commit: bool },
}

impl Observation for MemberEvent {
    const KIND: &'static str = "mongo.member";
}

/// A write a client was told succeeded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteAcked {
    /// The replica set (shard) that acknowledged it, and the member that answered.
    pub set: String,
    pub primary: String,
    /// What was written, for violation messages.
    pub what: String,
    pub concern: WriteConcern,
    /// The client treats this acknowledgement as durable. Progress markers a client can afford
    /// to lose (a consumer position written at `w:1`) are not relied on: their loss is counted,
    /// not flagged.
    pub relied: bool,
    pub optime: OpTime,
    /// The documents the write created, as `(namespace, id)`: what a read after recovery must
    /// find again. Empty for writes that only update (version vectors, positions).
    #[serde(default)]
    pub created: Vec<(String, String)>,
}

impl Observation for WriteAcked {
    const KIND: &'static str = "mongo.write_acked";
}

/// A distributed lock granted to `holder` under fencing `token`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockGranted {
    /// The config server replica set that granted it.
    pub set: String,
    pub lock: String,
    pub holder: String,
    pub token: u64,
}

impl Observation for LockGranted {
    const KIND: &'static str = "mongo.lock_granted";
}

/// A `readConcern: "majority"` read of `what` on `set`, and the optimes of the versions it
/// returned: majority-committed, so no rollback may ever undo them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MajorityRead {
    pub set: String,
    pub what: String,
    pub seen: Vec<OpTime>,
}

impl Observation for MajorityRead {
    const KIND: &'static str = "mongo.majority_read";
}

/// A shard refused a write fenced by a stale token (a holder whose lease ran out).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FencedOut {
    /// The shard that refused it.
    pub set: String,
    pub lock: String,
    pub token: u64,
    pub highest: u64,
}

impl Observation for FencedOut {
    const KIND: &'static str = "mongo.fenced_out";
}
