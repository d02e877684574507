//! Bugs planted on purpose, so that the checkers can prove they see them. Each is off in every
//! safe configuration; a scenario's unsafe configuration turns one on and must be caught.
//!
//! - `ack_before_fsync`: the primary answers a `synchronous_commit = local` transaction as soon
//!   as its record is appended, and asks for no fsync of it (as a server that trusted a volatile
//!   write cache would): the record becomes durable only when a later commit's fsync covers it.
//!   A power loss before then (a crash-restart, or the one that ends every run) loses an
//!   acknowledged commit even when the same member stays primary. `on` commits still wait for
//!   their fsync and the synchronous standby, so they are not affected.
//! - `send_unflushed`: the walsender streams records as soon as they are written, before the
//!   primary's own fsync (an "optimisation" PostgreSQL deliberately does not make: it sends only
//!   WAL it has flushed). A standby can then flush, apply and serve a commit the primary has not
//!   made durable, and still holds it when the primary loses it to a crash: a replica ahead of
//!   its primary.
//! - `skip_rewind`: a standby joining a primary keeps its whole log and streams on from where
//!   it ends, without comparing timelines or rewinding the records the new timeline discarded
//!   (`pg_rewind` never run, and the fork-point check PostgreSQL makes left out). A demoted
//!   primary that had records its successor never received keeps them under the new
//!   timeline's records: the members' logs diverge.
//!
//! A primary that keeps acknowledging after losing its lease needs no plant: Patroni's watchdog
//! turned off (`PgClusterSpec::watchdog(false)`) is that bug.

use serde::{Deserialize, Serialize};

/// The planted bugs a member runs with (all off by default).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Planted {
    pub ack_before_fsync: bool,
    pub send_unflushed: bool,
    pub skip_rewind: bool,
}
