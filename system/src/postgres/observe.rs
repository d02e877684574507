//! What a member tells the checkers, through its context ([`sim::NodeCtx::observe`]): the
//! moments a checker cannot recover from the disks afterwards. When it became primary (and of
//! which epoch), when it stopped, how far the primary had flushed at each moment (a replica read
//! is judged against it), what a rewind discarded, when it acknowledged a commit and when a new
//! primary accepted its first write (fencing is judged from those two).
//!
//! These are claims, not evidence: durability is judged from the WAL the members' disks hold at
//! the end ([`super::cluster::PgCluster::durable_logs`]).

use serde::{Deserialize, Serialize};
use sim::Observation;

/// This member became the primary of `epoch`; its timeline starts at `index`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Promoted {
    pub epoch: u64,
    pub index: u64,
}

impl Observation for Promoted {
    const KIND: &'static str = "pg.promoted";
}

/// This member stopped being the primary of `epoch`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Demoted {
    pub epoch: u64,
    pub reason: String,
}

impl Observation for Demoted {
    const KIND: &'static str = "pg.demoted";
}

/// The primary of `epoch` flushed its WAL up to `index`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flushed {
    pub epoch: u64,
    pub index: u64,
}

impl Observation for Flushed {
    const KIND: &'static str = "pg.flushed";
}

/// This standby cut its log to `kept` records to follow a new timeline (`pg_rewind`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rewound {
    pub kept: u64,
    pub discarded: u64,
}

impl Observation for Rewound {
    const KIND: &'static str = "pg.rewound";
}

/// This member, primary of `epoch`, answered a client's commit `txn` (record `index`) as
/// committed: the moment the answer left, whether or not it reached the client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acknowledged {
    pub txn: String,
    pub epoch: u64,
    pub index: u64,
}

impl Observation for Acknowledged {
    const KIND: &'static str = "pg.acknowledged";
}

/// This member, primary of `epoch`, accepted the first client write of its timeline (appended
/// it at `index`): from here on, an older primary acknowledging is a second writer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirstWrite {
    pub epoch: u64,
    pub index: u64,
}

impl Observation for FirstWrite {
    const KIND: &'static str = "pg.first_write";
}

/// The primary of `epoch` now acknowledges `on` commits under `standby` (None: under no
/// synchronous standby at all, Patroni's `/sync` degraded to none).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncStandby {
    pub epoch: u64,
    pub standby: Option<String>,
}

impl Observation for SyncStandby {
    const KIND: &'static str = "pg.sync_standby";
}

/// The primary of `epoch` gave up its synchronous standby `from` and wrote `/sync = none`
/// (Patroni's non-strict `synchronous_mode`): from here its commits are acknowledged on its
/// own flush alone, until a standby is named again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncDegraded {
    pub epoch: u64,
    pub from: String,
}

impl Observation for SyncDegraded {
    const KIND: &'static str = "pg.sync_degraded";
}

/// The watchdog reset this node (its agent did not pet it in time): the server stopped at once,
/// as primary of `epoch` if it was one, `late_ms` after the deadline (the timer's own lateness
/// in the simulation, 0 when it fired on time).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchdogReset {
    pub epoch: Option<u64>,
    pub late_ms: u64,
}

impl Observation for WatchdogReset {
    const KIND: &'static str = "pg.watchdog_reset";
}
