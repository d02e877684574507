//! What balancers tell the checkers, through the context's one observation stream
//! ([`sim::NodeCtx::observe`]). Each carries the balancer's name and the simulated time as
//! fields too, so a checker can read them without the event's envelope.

use serde::{Deserialize, Serialize};
use sim::Observation;

use super::route::Pool;

/// An instance left this balancer's rotation after `failures` consecutive failed probes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceRemoved {
    pub balancer: String,
    pub pool: Pool,
    pub instance: String,
    pub at_ms: u64,
    pub failures: u32,
}

impl Observation for InstanceRemoved {
    const KIND: &'static str = "balancer.instance_removed";
}

/// An instance entered this balancer's rotation: the first time (`first`), or back after a
/// removal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceAdded {
    pub balancer: String,
    pub pool: Pool,
    pub instance: String,
    pub at_ms: u64,
    pub first: bool,
}

impl Observation for InstanceAdded {
    const KIND: &'static str = "balancer.instance_added";
}

/// A WebSocket session for `doc` was routed to `instance` (its owner among the healthy ones).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRouted {
    pub balancer: String,
    pub doc: String,
    pub instance: String,
    pub at_ms: u64,
}

impl Observation for SessionRouted {
    const KIND: &'static str = "balancer.session_routed";
}

/// Why a balancer ended a WebSocket session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionEnd {
    /// The client closed its side.
    Client,
    /// The instance closed its side or its connection failed.
    Upstream,
    /// The instance no longer owns the document (it left rotation, or the document moved to an
    /// instance that returned): the balancer closed the session so its editor reconnects.
    Moved,
    /// Nothing passed either way for the idle timeout.
    Idle,
}

/// A WebSocket session through this balancer ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionEnded {
    pub balancer: String,
    pub doc: String,
    pub instance: String,
    pub at_ms: u64,
    pub end: SessionEnd,
}

impl Observation for SessionEnded {
    const KIND: &'static str = "balancer.session_ended";
}
