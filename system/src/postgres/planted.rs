//! Bugs planted on purpose, so that the checkers can prove they see them. Each is off in every
//! safe configuration; a scenario's unsafe configuration turns one on and must be caught.
//!
//! - `ack_before_fsync`: the primary answers a `synchronous_commit = local` transaction as soon
//!   as its record is appended, and asks for no fsync of it (as a server that trusted a volatile
//!   write cache would): the record becomes durable only when a later commit's fsync covers it.
//!   A power loss before then (a crash-restart, or the one that ends every run) loses an
//!   acknowledged commit even when the same member stays primary. `on` commits still wait for
//!   their fsync and the synchronous standby, so they are not affected.
//!
//! A primary that keeps acknowledging after losing its lease needs no plant: Patroni's watchdog
//! turned off (`PgClusterSpec::watchdog(false)`) is that bug.

use serde::{Deserialize, Serialize};

/// The planted bugs a member runs with (all off by default).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Planted {
    pub ack_before_fsync: bool,
}
