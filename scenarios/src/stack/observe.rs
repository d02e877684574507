//! What the simulated users and the verifier record (typed observations, kinds prefixed
//! `stack.`), and nothing else: checkers judge the stack from these and the recovered disks.

use serde::{Deserialize, Serialize};
use sim::Observation;

use super::editor_core::EditorStats;
use super::ydoc::DocState;
use super::ysync::ClockRange;

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
