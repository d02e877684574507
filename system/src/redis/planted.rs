//! Bugs planted on purpose in the members and Sentinels, so that the `redis-failover` checkers
//! can prove they see them. Each is off by default and in every safe configuration; an unsafe
//! configuration turns one on and must be caught.
//!
//! - `get_seeks`: `GET` looks its key up with an ordered-map seek and answers the first key at or
//!   after the one asked for, without checking that it is the same key (a `lower_bound` missing
//!   its equality test). A hit is unaffected; a miss (a key lost at a failover, deleted, or
//!   expired and removed) returns some other key's value.
//! - `read_before_expire`: `GET` fetches the entry first and runs lazy expiry after, answering
//!   with what it fetched (an order-of-operations slip): a key past its TTL that the active
//!   expire cycle has not removed yet is served once, then deleted.
//! - `elect_on_quorum` (Sentinels): the leader election counts votes against `quorum` instead of
//!   `max(quorum, majority)`. With `quorum 1` (legal in Redis, where it only lowers the bar for
//!   ODOWN and the election still needs a majority) a Sentinel is elected by its own vote.
//!
//! A Sentinel that fails over on its own opinion is [`super::sentinel::SentinelConfig`]'s
//! `single_opinion`, and a client that never follows is [`super::ClientConfig`]'s `pinned` or
//! `follows: false`.

use serde::{Deserialize, Serialize};

/// The planted bugs a member or Sentinel runs with (all off by default).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Planted {
    pub get_seeks: bool,
    pub read_before_expire: bool,
    pub elect_on_quorum: bool,
}
