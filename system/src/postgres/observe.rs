//! What a member tells the checkers, through its context ([`sim::NodeCtx::observe`]): the
//! moments a checker cannot recover from the disks afterwards. When it became primary (and of
//! which epoch), when it stopped, how far the primary had flushed at each moment (a replica read
//! is judged against it), and what a rewind discarded.
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
