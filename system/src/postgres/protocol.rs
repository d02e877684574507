//! Messages on the PostgreSQL-like nodes' ports: the client protocol (typed operations instead
//! of SQL), streaming replication (`walsender`/`walreceiver`) and the member API that Patroni
//! serves over REST. All of it arrives from the network and is validated before use.

use serde::{Deserialize, Serialize};

use super::data::{Row, Table, Txn};
use super::wal::{History, Position, WalRecord};

/// The client port (PostgreSQL's 5432).
pub const CLIENT_PORT: u16 = 5432;
/// Streaming replication (a separate port here; PostgreSQL multiplexes it on 5432).
pub const REPLICATION_PORT: u16 = 5433;
/// The member API (Patroni's REST API on 8008).
pub const MEMBER_PORT: u16 = 8008;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    /// Commit `txn` if this node is the primary of `epoch` (any epoch when None).
    Execute {
        epoch: Option<u64>,
        txn: Txn,
    },
    Get {
        table: Table,
        key: String,
    },
    Scan {
        table: Table,
        prefix: String,
        limit: usize,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    /// Durable at the level the transaction's tables require.
    Committed {
        epoch: u64,
        index: u64,
    },
    /// Definitely not committed: a check failed or the request was invalid.
    Rejected {
        reason: String,
    },
    /// Definitely not committed: this node is not the primary (of that epoch); retry elsewhere.
    NotPrimary {
        leader: Option<String>,
    },
    /// Written to the WAL but not acknowledged (demoted or an I/O error while waiting): it may
    /// or may not survive.
    Indeterminate {
        reason: String,
    },
    Rows {
        rows: Vec<(String, Row)>,
        read: ReadInfo,
    },
    /// This node refuses reads (its WAL is damaged and not yet repaired from a peer).
    Unavailable {
        reason: String,
    },
}

/// Where a read was served and how stale it may be.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadInfo {
    pub node: String,
    pub primary: bool,
    /// The last applied record.
    pub applied: Position,
    /// Records the primary had flushed that this node has not applied (as last reported).
    pub lag_records: u64,
    /// How long since this node last knew it had everything the primary had flushed.
    pub lag_ms: u64,
}

/// Replication messages, both directions on one stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Replication {
    /// Standby → primary: who I am and where my log ends.
    Hello {
        name: String,
        zone: String,
        position: Position,
    },
    /// Primary → standby: my timeline, for the standby to find its rewind point.
    Welcome {
        epoch: u64,
        history: History,
        last_index: u64,
    },
    /// Primary → standby: I am not the primary (of a timeline you may follow).
    NotPrimary,
    /// Standby → primary: stream from this index on.
    Start {
        from: u64,
    },
    /// Primary → standby: flushed records, and the primary's flush position and wall clock.
    Records {
        records: Vec<WalRecord>,
        primary_flushed: u64,
    },
    Keepalive {
        primary_flushed: u64,
    },
    /// Standby → primary: flushed and applied positions (`pg_stat_replication`).
    Feedback {
        flushed: u64,
        applied: u64,
    },
}

/// The role a member reports on its API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberRole {
    Primary,
    Standby,
}

/// A request on the member API (Patroni's `GET /patroni`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberRequest {
    Status,
}

/// A member's answer on the member API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberStatus {
    pub name: String,
    pub role: MemberRole,
    /// The epoch it is primary of, or follows.
    pub epoch: u64,
    pub position: Position,
    /// Its WAL lost synced records and has not been repaired yet: it must not be promoted.
    pub damaged: bool,
}
