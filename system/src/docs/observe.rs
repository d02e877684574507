//! What the document service tells the checkers, as typed observations.

use serde::{Deserialize, Serialize};
use sim::Observation;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheEvent {
    /// Served from the cache (its copy covered the durable version vector).
    Hit,
    /// Not cached.
    Miss,
    /// Cached, but behind the durable version vector.
    Stale,
    /// Skipped by the open breaker, or the call failed.
    Unavailable,
    /// Filled after a rebuild.
    Fill,
    FillFailed,
    BreakerOpened,
    BreakerClosed,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheObserved {
    pub doc: String,
    pub event: CacheEvent,
}

impl Observation for CacheObserved {
    const KIND: &'static str = "docs.cache";
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Cache,
    Mongo,
}

/// A document's state served (200) by `GET /docs/<tenant>/<doc>/state`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateServed {
    pub doc: String,
    pub source: Source,
    /// Hex of the v1 state vector served in `x-state-vector`.
    pub state_vector: String,
    /// The durable version vector it was checked against.
    pub durable_vector: String,
    /// Operations stored and still pending when rebuilt from MongoDB (0 from the cache).
    pub ops_read: u64,
    pub pending: u64,
}

impl Observation for StateServed {
    const KIND: &'static str = "docs.state_served";
}
