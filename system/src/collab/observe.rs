//! What the collaboration service tells the checkers (kinds prefixed `collab.`).
//!
//! Sessions are named by the node that observed them plus a session id unique within that
//! node's life (`session`); ranges are (client, clock_start, clock_end exclusive).

use serde::{Deserialize, Serialize};
use sim::Observation;

use super::gate::Perm;
use super::protocol::AckRange;
use super::room::{CloseReason, SessionId};

/// An update was applied to a room's live document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateApplied {
    pub doc: String,
    pub session: SessionId,
    pub ranges: Vec<AckRange>,
}
impl Observation for UpdateApplied {
    const KIND: &'static str = "collab.update_applied";
}

/// An ack went out to a session: the server claims these ranges are durable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckSent {
    pub doc: String,
    pub session: SessionId,
    pub ranges: Vec<AckRange>,
}
impl Observation for AckSent {
    const KIND: &'static str = "collab.ack_sent";
}

/// A room opened with the state the document service served.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomOpened {
    pub doc: String,
    /// The `docs-<i>` instance that served the state.
    pub docs_node: String,
    pub state_bytes: usize,
    /// The loaded document's state vector, (client, clock) sorted; empty for a new document.
    pub state_vector: Vec<(u64, u32)>,
    pub load_ms: u64,
}
impl Observation for RoomOpened {
    const KIND: &'static str = "collab.room_opened";
}

/// A room closed (idle, or could not go on).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomClosed {
    pub doc: String,
    pub reason: CloseReason,
}
impl Observation for RoomClosed {
    const KIND: &'static str = "collab.room_closed";
}

/// A session passed the handshake.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionAdmitted {
    pub doc: String,
    pub session: SessionId,
    pub tenant: String,
    pub user: String,
    pub perm: Perm,
    pub wants_acks: bool,
    /// The connecting node (a balancer, or the client itself).
    pub peer: String,
}
impl Observation for SessionAdmitted {
    const KIND: &'static str = "collab.session_admitted";
}

/// A handshake was refused (`status` is the HTTP status written back).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRefused {
    /// The path asked for (it may not name a valid document).
    pub path: String,
    pub status: u16,
    pub reason: String,
    pub peer: String,
}
impl Observation for SessionRefused {
    const KIND: &'static str = "collab.session_refused";
}

/// A session ended; `reason` is a [`CloseReason`], or the session shell's own (`client_closed`,
/// `malformed`, `revoked`, `stale_permission`, `idle`, `room_gone`, `write_failed`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionClosed {
    pub doc: String,
    pub session: SessionId,
    pub reason: String,
}
impl Observation for SessionClosed {
    const KIND: &'static str = "collab.session_closed";
}
