//! What the simulated users and the verifier record (typed observations, kinds prefixed
//! `stack.`), and nothing else: checkers judge the stack from these and the recovered disks.

use serde::{Deserialize, Serialize};
use sim::Observation;

use super::acked::ClockRange;
use super::editor_core::EditorStats;
use super::ydoc::DocState;

/// An editor's last word, recorded after typing stopped and the room went quiet (before the
/// run's ending stops every client).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EditorFinal {
    pub editor: String,
    /// `tenant/name`.
    pub doc: String,
    pub client_id: u64,
    /// The editor's own copy.
    pub state: DocState,
    /// The live room, as the collaboration service served it to a fresh sync step 1 with an
    /// empty state vector on this editor's connection (None: not connected at the end).
    pub room: Option<DocState>,
    /// Every (client, clock) range the server acknowledged to this editor.
    pub acked: Vec<ClockRange>,
    /// When the acknowledgements came: each time the acknowledged prefix of one of its own
    /// client ids grew, that prefix and the time (so a lost edit can be placed in time).
    #[serde(default)]
    pub acked_at: Vec<AckedAt>,
    /// Its own insertions never acknowledged.
    pub unacked_own: Vec<ClockRange>,
    /// What it typed: `synthetic`, `watch`, `paper:<from>..<to>`, `friends:<agent>`.
    pub script: String,
    /// Units of the script typed (trace transactions or synthetic bursts).
    pub typed: u64,
    pub stats: EditorStats,
}

/// Every clock of `client` below `upto` was acknowledged by `t_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckedAt {
    pub client: u64,
    pub upto: u32,
    pub t_ms: u64,
}

impl EditorFinal {
    /// When the clock `clock` of `client` was first acknowledged, if this editor logged it.
    pub fn acked_time(&self, client: u64, clock: u32) -> Option<u64> {
        self.acked_at.iter().find(|a| a.client == client && a.upto > clock).map(|a| a.t_ms)
    }
}

impl Observation for EditorFinal {
    const KIND: &'static str = "stack.editor_final";
}

/// A user-visible capability worked or failed (sampled: at most one record per kind per sample
/// period per user, plus every change from ok to failing and back).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Live {
    /// `login`, `edit` (an edit acknowledged), `load` (a room synced: the document loaded).
    pub what: String,
    pub ok: bool,
}

impl Observation for Live {
    const KIND: &'static str = "stack.live";
}

/// One attack and whether the stack let it through.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attack {
    /// `forged`, `expired`, `wrong_key`, `other_tenant`, `no_token`, `revoked`,
    /// `malformed_ws`, `malformed_sync`, `bad_update`.
    pub attack: String,
    /// The stack accepted what it must refuse (a connection upgraded and a write taken, or a
    /// privileged HTTP call answered 2xx).
    pub accepted: bool,
    pub detail: String,
}

impl Observation for Attack {
    const KIND: &'static str = "stack.attack";
}

/// A revocation took effect at the auth service (the admin saw 200) at `t_ms` of the record:
/// writes of `client_id` (the revoked user's editor) past `clock` plus whatever it sends after
/// the bound must not reach the document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revoked {
    pub user: String,
    pub doc: String,
}

impl Observation for Revoked {
    const KIND: &'static str = "stack.revoked";
}

/// What the revoked user's client sent, each burst with its clock range (for the revocation
/// bound).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedWrite {
    pub doc: String,
    pub range: ClockRange,
}

impl Observation for RevokedWrite {
    const KIND: &'static str = "stack.revoked_write";
}

/// A malformed frame was sent on a connection to `doc`: the collaboration service must close
/// that connection and no other.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MalformedSent {
    pub doc: String,
    pub closed: bool,
}

impl Observation for MalformedSent {
    const KIND: &'static str = "stack.malformed_sent";
}

/// An editor's connection dropped (not by the editor).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dropped {
    pub doc: String,
    pub balancer: String,
    pub reason: String,
}

impl Observation for Dropped {
    const KIND: &'static str = "stack.dropped";
}

/// The verifier's read of one document after the ending's power loss and recovery.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verified {
    pub doc: String,
    /// `GET /docs/<doc>/state` through a balancer.
    pub front_door: Result<DocState, String>,
    /// Rebuilt from MongoDB alone (snapshots and operations read through the router).
    pub mongo: Result<DocState, String>,
}

impl Observation for Verified {
    const KIND: &'static str = "stack.verified";
}

/// One stored operation as read back from `crdt_ops` (after the ending's recovery).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpRow {
    /// The store's `_id`.
    pub key: String,
    /// The operation id the document carries.
    pub op_id: String,
    /// Whether the stored bytes hash (with the document id) to `op_id`.
    pub hash_ok: bool,
}

/// Every operation stored for `doc`, read at majority by the verifier after the group's
/// committed offsets and the log ([`CommittedLog`]) were read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredOps {
    pub doc: String,
    pub ops: Result<Vec<OpRow>, String>,
}

impl Observation for StoredOps {
    const KIND: &'static str = "stack.stored_ops";
}

/// A valid record of the update log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    pub offset: u64,
    pub doc: String,
    pub op_id: String,
}

/// One partition of `doc-updates` as the verifier read it after recovery: the consumer group's
/// committed offset (read first), then the log's records below it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedLog {
    pub partition: u32,
    /// `Ok(None)`: the group never committed this partition.
    pub committed: Result<Option<u64>, String>,
    /// The high watermark the last fetch reported (0 when nothing was fetched).
    pub high_watermark: u64,
    /// Valid records below the committed offset, in log order.
    pub records: Vec<LogEntry>,
    /// Offsets below the committed offset whose record is not a valid update (the consumers
    /// skip those by design).
    pub invalid: Vec<u64>,
    /// Why the log could not be read up to the committed offset, if it could not.
    pub read_error: Option<String>,
}

impl Observation for CommittedLog {
    const KIND: &'static str = "stack.committed_log";
}

/// One snapshot version as seen in one read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapRow {
    pub version: u64,
    /// The fencing token it was written under.
    pub token: u64,
    /// Digest of its state: computed by the reader from the stored state bytes
    /// (`from_state`), or as listed by the `snapshot_index` entry.
    pub digest: String,
    pub from_state: bool,
}

/// A read of `doc`'s snapshots: periodically during the run by the snapshot watcher, and once
/// by the verifier after recovery (`final_read`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotsSeen {
    pub doc: String,
    pub final_read: bool,
    /// The head's latest version, and the rows read.
    pub read: Result<(u64, Vec<SnapRow>), String>,
}

impl Observation for SnapshotsSeen {
    const KIND: &'static str = "stack.snapshots_seen";
}
