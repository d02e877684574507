//! Messages on the PostgreSQL-like nodes' ports: the client protocol (typed operations instead
//! of SQL), streaming replication (`walsender`/`walreceiver`), the local control channel between
//! a Patroni agent and its server (what Patroni does through `pg_ctl`, a local libpq connection
//! and the watchdog device), the agent's REST API, and the proxy's client port. All of it
//! arrives from the network and is validated before use.

use serde::{Deserialize, Serialize};

use super::data::{Row, Table, Txn};
use super::wal::{History, Position, WalRecord};

/// The client port (PostgreSQL's 5432).
pub const CLIENT_PORT: u16 = 5432;
/// Streaming replication (a separate port here; PostgreSQL multiplexes it on 5432).
pub const REPLICATION_PORT: u16 = 5433;
/// The member API (Patroni's REST API on 8008), served by the agent.
pub const MEMBER_PORT: u16 = 8008;
/// The server's control channel, for its own agent only (a local socket in reality).
pub const CONTROL_PORT: u16 = 5434;
/// The proxy's port for the primary (Patroni's HAProxy template listens on 5000).
pub const PROXY_PORT: u16 = 5000;

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

/// A request on the member API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberRequest {
    /// Patroni's `GET /patroni`: the server's state, for a leader race.
    Status,
    /// Patroni's `GET /primary`: healthy only on the leader with a primary server.
    Primary,
}

/// An answer on the member API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberAnswer {
    Status(MemberStatus),
    /// `/primary`: 200 (true) or 503 (false).
    Health {
        primary: bool,
    },
    /// The agent could not reach its server.
    Unavailable,
}

/// What an agent asks its server over the control channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Control {
    /// The server's state (a query on its local connection).
    Status,
    /// `pg_ctl promote` for `epoch`'s timeline.
    Promote { epoch: u64 },
    /// Restart in recovery (Patroni's demote: stop, then start as a standby).
    Demote { reason: String },
    /// Point the walreceiver at `leader` (`primary_conninfo`).
    Follow { leader: String, epoch: u64 },
    /// Which synchronous standby the server wants named in `/sync` (`pg_stat_replication`).
    MaintainSync,
    /// `/sync` now names `standby` for `epoch` (`synchronous_standby_names` set to match).
    SyncWritten { epoch: u64, standby: Option<String> },
    /// Pet the watchdog device (None: disable it).
    Watchdog { timeout_ms: Option<u64> },
    /// The roles the machine claims besides the primary's (for faults aimed by role).
    Roles { sync_standby: bool, async_replica: bool },
}

/// The server's answers on the control channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ControlReply {
    Status {
        local: super::manager::Local,
        status: MemberStatus,
    },
    Done,
    Failed {
        reason: String,
    },
    /// The `/sync` write the server waits for (None: none), and whether a switch is pending.
    Sync {
        write: Option<(u64, Option<String>)>,
        switching: bool,
    },
}

/// The proxy's answer to a client: the server's response, and which server gave it (None when
/// no healthy primary was found, with [`Response::NotPrimary`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Routed {
    pub node: Option<String>,
    pub response: Response,
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
