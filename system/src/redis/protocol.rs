//! Messages on the Redis-like nodes' ports: client commands (a typed subset of RESP commands),
//! the replication stream (`PSYNC`, the RDB snapshot, the command stream, `REPLCONF ACK`), and
//! the Sentinel protocol (`SENTINEL is-master-down-by-addr`, hello messages, and
//! `SENTINEL get-master-addr-by-name`). Everything is validated on arrival.

use serde::{Deserialize, Serialize};

use super::keyspace::Entry;

/// The client port.
pub const REDIS_PORT: u16 = 6379;
/// Replication (a separate port here; Redis replicas connect to 6379 like clients).
pub const REPLICATION_PORT: u16 = 6380;
pub const SENTINEL_PORT: u16 = 26379;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    Get {
        key: String,
    },
    /// `SET key value [PX ms]`.
    Set {
        key: String,
        value: String,
        px: Option<u64>,
    },
    Del {
        key: String,
    },
    /// `SCAN 0 MATCH prefix* COUNT limit`, answered in one go.
    Keys {
        prefix: String,
        limit: usize,
    },
    /// `ROLE` plus the `INFO replication` fields Sentinel reads.
    Role,
    /// `REPLICAOF host port` (None: `REPLICAOF NO ONE`), followed by `CONFIG REWRITE`.
    ReplicaOf {
        master: Option<String>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    Value {
        value: Option<String>,
    },
    Ok,
    Int {
        n: u64,
    },
    Keys {
        keys: Vec<String>,
    },
    Role {
        info: RoleInfo,
    },
    /// `-READONLY You can't write against a read only replica.`
    ReadOnly,
    Err {
        message: String,
    },
}

/// What `ROLE` / `INFO replication` report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleInfo {
    pub node: String,
    pub run_id: String,
    pub role: ReplRole,
    /// `master_repl_offset` / `slave_repl_offset`.
    pub offset: u64,
    /// `replica-priority` (0: never promote).
    pub priority: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplRole {
    Master { replicas: Vec<(String, u64)> },
    Replica { master: String, link_up: bool },
}

/// One propagated write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Set { key: String, value: String, expire_at_ms: Option<u64> },
    Del { key: String },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Repl {
    /// Replica → master: `PSYNC replid offset` (None: `PSYNC ? -1`).
    Psync {
        name: String,
        replid: Option<String>,
        offset: u64,
    },
    /// Master → replica: `+FULLRESYNC replid offset` and the snapshot.
    FullResync {
        replid: String,
        offset: u64,
        snapshot: Vec<(String, Entry)>,
    },
    /// Master → replica: `+CONTINUE replid`: the stream resumes after the replica's offset.
    Continue {
        replid: String,
    },
    /// Master → replica: the write at `offset`.
    Op {
        offset: u64,
        op: Op,
    },
    Ping,
    /// Replica → master: `REPLCONF ACK offset`.
    Ack {
        offset: u64,
    },
    /// The node is not a master.
    NotMaster,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SentinelRequest {
    /// `SENTINEL is-master-down-by-addr`: `candidate` None is Redis's `*` (just asking).
    IsMasterDown { current_epoch: u64, candidate: Option<String> },
    /// The hello message Sentinels publish: their view of the master.
    Hello { from: String, master: String, config_epoch: u64, current_epoch: u64 },
    /// `SENTINEL get-master-addr-by-name`.
    GetMaster,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SentinelReply {
    /// `down` is this Sentinel's SDOWN view; `leader` its vote `(runid, epoch)` if asked to.
    MasterDown {
        down: bool,
        leader: Option<(String, u64)>,
    },
    /// The master in this Sentinel's configuration, and that configuration's epoch.
    Master {
        node: String,
        config_epoch: u64,
    },
    Ok,
}
