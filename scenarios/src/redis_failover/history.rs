//! What the cache workload observes, for the checkers: each write the cache acknowledged or
//! refused, each read and what it returned, and the final read-back; and, for the mutable
//! registers, each overwrite, delete and read with when it was invoked and when it completed
//! (the observation's time). Whether a read was wrong is the checkers' call, made from what was
//! returned and what the source of truth said.

use serde::{Deserialize, Serialize};
use sim::Observation;

/// One cache operation as the client saw it. `node` is the Redis node that answered.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheObserved {
    /// `SET key value PX ttl_ms` answered `OK`.
    WriteAcked { key: String, node: String, ttl_ms: u64 },
    /// `SET` failed (no master, an error, or no answer: it may or may not have been applied).
    WriteFailed { key: String, error: String },
    /// `GET` of a rendered document: what the cache returned, and the rendering the source of
    /// truth gives for that key (a hit must equal it; a miss is refilled).
    Read { key: String, node: String, returned: Option<String>, source: String },
    /// `GET` of a session key the cache acknowledged at `acked_at_ms` with `PX ttl_ms`.
    SessionRead { key: String, node: String, acked_at_ms: u64, ttl_ms: u64, returned: Option<String> },
    /// The final read-back: every live key the master the clients found holds.
    ReadBack { node: String, keys: Vec<String> },
    /// The verifier's read after the ending's power loss and restart: the master it found
    /// through the Sentinels and every key it holds.
    Recovered { node: String, keys: Vec<String> },
}

impl Observation for CacheObserved {
    const KIND: &'static str = "redis.cache";
}

/// One operation on a mutable register key (`reg:N`), as the client saw it complete (the
/// observation's time). Every write carries a value unique in the run, `seq`, so a read names
/// the write it returned.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegisterObserved {
    /// `SET key seq` (`delete` false) or `DEL key` (`delete` true), invoked at `invoked_ms`;
    /// `node` acknowledged it.
    Acked { key: String, seq: u64, delete: bool, node: String, invoked_ms: u64 },
    /// The write failed or went unanswered: it may have been applied, at any time after
    /// `invoked_ms`.
    Failed { key: String, seq: u64, delete: bool, invoked_ms: u64 },
    /// `GET key`, invoked at `invoked_ms`, answered by `node` with the write `seq` (None: absent).
    Read { key: String, node: String, invoked_ms: u64, seq: Option<u64> },
}

impl Observation for RegisterObserved {
    const KIND: &'static str = "redis.register";
}
