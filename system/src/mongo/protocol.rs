//! What travels on the wire, one postcard frame ([`crate::wire`]) per message, as MongoDB's own
//! wire protocol is binary (BSON); documents travel as their text ([`Document`]).
//!
//! Members talk to each other with one-way [`PeerMsg`]s (MongoDB's `replSetHeartbeat`,
//! `replSetRequestVotes` and the oplog fetcher's `find`/`getMore` on `local.oplog.rs`); routers
//! and drivers send a [`Command`] and read one [`Reply`] on the same connection. Everything
//! received is untrusted: members check the sender's index and set name, and the replication
//! core checks that fetched entries continue its oplog.
//!
//! Postcard is not self-describing: no internally tagged or untagged enums, no skipped
//! fields, no `serde_json::Value` here (a [`Document`] carries its JSON as text).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::document::Document;
use super::oplog::{Fence, OpTime, OplogEntry};

/// Every mongod listens here (MongoDB's default port).
pub const MONGOD_PORT: u16 = 27017;

/// How every mongod message, peer or command, becomes a frame.
pub const ENCODING: crate::wire::Encoding = crate::wire::Encoding::Postcard;

/// A message between members of one replica set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerMsg {
    /// `replSetHeartbeat`, sent to every member every `heartbeatIntervalMillis`.
    Heartbeat {
        term: u64,
        primary: bool,
        applied: OpTime,
        applied_wall_ms: u64,
        commit: OpTime,
    },
    HeartbeatReply {
        term: u64,
        primary: bool,
        applied: OpTime,
        applied_wall_ms: u64,
        durable: OpTime,
    },
    /// `replSetRequestVotes`; `dry_run` is the pv1 dry-run election (no term bump, no vote kept).
    RequestVote {
        term: u64,
        dry_run: bool,
        last_applied: OpTime,
    },
    Vote {
        term: u64,
        dry_run: bool,
        granted: bool,
    },
    /// The oplog fetcher's `getMore`: entries after `after`, which is also the fetcher's durable
    /// position (what `replSetUpdatePosition` would report) unless `repairing`: a damaged member
    /// fetching to repair itself counts towards no majority.
    Fetch {
        id: u64,
        term: u64,
        after: OpTime,
        #[serde(default)]
        repairing: bool,
    },
    /// Entries after the fetch's `after`, and the source's majority commit point.
    Batch {
        id: u64,
        term: u64,
        entries: Vec<OplogEntry>,
        commit: OpTime,
    },
    /// The source does not hold `after`: the fetcher's oplog diverged (MongoDB's
    /// `OplogStartMissing`). The source's term boundaries let the fetcher find the common point.
    Diverged {
        id: u64,
        term: u64,
        boundaries: Vec<OpTime>,
        last: OpTime,
    },
}

impl PeerMsg {
    pub fn term(&self) -> u64 {
        match self {
            PeerMsg::Heartbeat { term, .. }
            | PeerMsg::HeartbeatReply { term, .. }
            | PeerMsg::RequestVote { term, .. }
            | PeerMsg::Vote { term, .. }
            | PeerMsg::Fetch { term, .. }
            | PeerMsg::Batch { term, .. }
            | PeerMsg::Diverged { term, .. } => *term,
        }
    }
}

/// One frame on a mongod's port.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Frame {
    Peer { set: String, from: usize, msg: PeerMsg },
    Command(Command),
}

/// MongoDB's `w` option. (`j` follows `writeConcernMajorityJournalDefault: true`: majority
/// writes count only journaled copies; `w:1` acknowledges before the journal flush.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum WriteConcern {
    #[serde(rename = "1")]
    W1,
    #[serde(rename = "majority")]
    Majority,
}

impl std::fmt::Display for WriteConcern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WriteConcern::W1 => "w:1",
            WriteConcern::Majority => "w:majority",
        })
    }
}

/// MongoDB's `readConcern.level`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadConcern {
    Local,
    Majority,
}

/// One write of a batch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteOp {
    /// Insert unless a document with this id exists (then it counts as a duplicate, not an
    /// error: how the stack stores operations idempotently).
    Insert {
        ns: String,
        id: String,
        doc: Document,
    },
    /// Replace or create.
    Upsert {
        ns: String,
        id: String,
        doc: Document,
    },
    /// Per-field maximum into a `{name: u64}` document (a `$max` update on every field).
    MaxMerge {
        ns: String,
        id: String,
        fields: BTreeMap<String, u64>,
    },
    Delete {
        ns: String,
        id: String,
    },
}

/// A request from a router or driver.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// `hello` (formerly `isMaster`): who is primary, in which term.
    Hello,
    Write {
        writes: Vec<WriteOp>,
        concern: WriteConcern,
        wtimeout_ms: u64,
        fence: Option<Fence>,
    },
    /// Documents of `ns` whose id starts with `prefix`, read on the primary; with `after`, only
    /// those whose visible version was written at an oplog position after it. MongoDB gives
    /// the same read with a timestamp field the server fills in at insert (an empty
    /// `Timestamp()`), indexed and queried with `$gt`: here the version's own position serves.
    Find {
        ns: String,
        prefix: String,
        read: ReadConcern,
        after: u64,
    },
    /// Config servers only: take or renew the lease on `name`.
    AcquireLock {
        name: String,
        holder: String,
        lease_ms: u64,
    },
    ReleaseLock {
        name: String,
        holder: String,
        token: u64,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FoundDoc {
    pub id: String,
    pub doc: Document,
    /// The optime of the write that produced this version.
    pub optime: OpTime,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    Hello {
        set: String,
        me: String,
        is_primary: bool,
        primary: Option<String>,
        term: u64,
    },
    /// The write is applied and meets its write concern. `optime` is the entry written, or the
    /// member's last optime when every op was a duplicate (MongoDB's no-op write rule).
    Written {
        optime: OpTime,
        inserted: u32,
        duplicates: u32,
    },
    Found {
        docs: Vec<FoundDoc>,
    },
    Locked {
        token: u64,
        expires_wall_ms: u64,
        optime: OpTime,
    },
    LockBusy {
        holder: String,
        expires_wall_ms: u64,
    },
    Released,
    /// `NotWritablePrimary`, with the member's idea of the primary.
    NotPrimary {
        primary: Option<String>,
    },
    /// The write carried a fencing token below one this shard already accepted.
    StaleFence {
        lock: String,
        token: u64,
        highest: u64,
    },
    /// Applied locally but not acknowledged by the write concern (`wtimeout`, or the primary
    /// stepped down or rolled back while waiting): it may or may not survive.
    WriteConcernFailed {
        optime: OpTime,
        reason: String,
    },
    Error {
        reason: String,
    },
}
