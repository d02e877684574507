//! The zonal load balancers: one per zone, the stack's public front door on [`HTTP_PORT`].
//!
//! What is modelled (an HAProxy- or Envoy-like layer-7 front door, per zone):
//! - **Active health checks** ([`health`]): every instance's `GET /health` on port 8081, every
//!   `health_interval_ms`, each bounded by `health_timeout_ms`, over one connection per instance
//!   kept open while it answers (Envoy's default; HAProxy opens one per check); `fail_after` consecutive failures
//!   take an instance out of rotation (HAProxy's `fall`), `recover_after` consecutive passes bring
//!   it back (`rise`). Each balancer probes on its own, so balancers in different zones can
//!   disagree for up to a few intervals around a change, as real ones do.
//! - **Passive checks** ([`breaker`]): a circuit breaker per instance counts the balancer's own
//!   failed connection attempts and stops sending to an instance before its probes catch up.
//! - **Routing by path** ([`route`]): `/auth/...` and `/docs/...` to any healthy instance of the
//!   pool, round robin; if the connection fails the request goes to another instance (any request
//!   when no connection was made, an idempotent one when the instance closed before answering);
//!   503 when no instance is healthy, 502 when every one tried failed, 504 on no answer within
//!   `response_timeout_ms`.
//! - **Sticky WebSocket sessions** ([`rendezvous`]): `GET /collab/<tenant>/<doc>` upgrades go to
//!   the document's rendezvous owner among the healthy collaboration instances, so every balancer
//!   sends a document's editors to the same instance, which owns its live room. No fallback to
//!   another instance when the owner's connection fails (that would open a second room): 502/503,
//!   and the editor retries. When the healthy set changes, sessions whose instance no longer owns
//!   their document are closed ([`sessions`]), so their editors reconnect to the new owner and
//!   resync: a room moves when its instance leaves rotation, and moves back when it returns.
//! - **Splicing**: after routing, the request head is forwarded as received and bytes are copied
//!   both ways; when the instance's side ends, the client's is closed at once.
//! - **Bounds on untrusted input**: head size and header count ([`crate::http`]'s limits), a head
//!   timeout (slow clients), `max_connections` at once, an idle timeout and a write timeout on
//!   every spliced connection.
//! - **Its own health** on 8081, up once the front door is listening.
//!
//! Left out: TLS termination, HTTP keep-alive for forwarded requests (one request per
//! connection, as the stack's clients do; only the health checks keep theirs), request queueing at the connection limit (HAProxy's
//! `maxconn` queue: here the connection is closed), `slowstart`, weights, header rewriting
//! (`X-Forwarded-For`), and the anycast or DNS that spreads clients over the balancers: editors
//! know every balancer and fail over between them themselves.
//!
//! ```ignore
//! let config = BalancerConfig::new(vec!["auth-1".into()], vec!["docs-1".into()], vec!["collab-1".into()]);
//! plan.node("lb-1", node_main(move |ctx| system::balancer::run(ctx, config.clone())));
//! ```

pub mod breaker;
pub mod health;
pub mod observations;
mod proxy;
pub mod rendezvous;
pub mod route;
pub mod sessions;
#[cfg(test)]
mod tests;
pub mod upstreams;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sim::NodeCtx;

pub use breaker::BreakerConfig;
pub use observations::{InstanceAdded, InstanceRemoved, SessionEnd, SessionEnded, SessionRouted};
pub use route::Pool;
pub use upstreams::Pools;

use crate::http::health::{self as health_endpoint, HealthFlag};

pub use crate::http::HTTP_PORT;

/// A balancer's settings. [`BalancerConfig::new`] gives the defaults, scaled for simulation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalancerConfig {
    /// Auth instances (node names).
    pub auth: Vec<String>,
    /// Document service instances.
    pub docs: Vec<String>,
    /// Collaboration instances.
    pub collab: Vec<String>,
    /// How often each instance is probed (HAProxy's `inter`).
    pub health_interval_ms: u64,
    /// How long one probe may take (HAProxy's `timeout check`).
    pub health_timeout_ms: u64,
    /// Consecutive failed probes that take an instance out of rotation (K; `fall`).
    pub fail_after: u32,
    /// Consecutive passing probes that bring it back (M; `rise`).
    pub recover_after: u32,
    /// How long a connection to an instance may take (`timeout connect`).
    pub connect_timeout_ms: u64,
    /// How long a client may take to send its request head (`timeout http-request`).
    pub head_timeout_ms: u64,
    /// How long an instance may take to start answering an HTTP request (`timeout server`).
    pub response_timeout_ms: u64,
    /// A spliced connection with no byte either way for this long is closed (`timeout tunnel`).
    pub idle_timeout_ms: u64,
    /// How long one write to either side may take.
    pub write_timeout_ms: u64,
    /// Front-door connections at once (`maxconn`); more are closed on accept.
    pub max_connections: usize,
    pub breaker: BreakerConfig,
}

impl BalancerConfig {
    /// Defaults: probes every 500 ms, out after 3 failures, back after 2 passes (HAProxy's
    /// `inter 2s fall 3 rise 2`, with `inter` scaled down), a 2-minute tunnel timeout (editors
    /// send awareness at least every 30 s), 1024 connections.
    pub fn new(auth: Vec<String>, docs: Vec<String>, collab: Vec<String>) -> Self {
        BalancerConfig {
            auth,
            docs,
            collab,
            health_interval_ms: 500,
            health_timeout_ms: 400,
            fail_after: 3,
            recover_after: 2,
            connect_timeout_ms: 500,
            head_timeout_ms: 5_000,
            response_timeout_ms: 10_000,
            idle_timeout_ms: 120_000,
            write_timeout_ms: 5_000,
            max_connections: 1_024,
            breaker: BreakerConfig::default(),
        }
    }

    pub fn pools(&self) -> Pools {
        Pools { auth: self.auth.clone(), docs: self.docs.clone(), collab: self.collab.clone() }
    }
}

/// Runs a balancer until its node dies: probes every instance, serves its own health on 8081
/// and the front door on [`HTTP_PORT`].
pub async fn run(mut ctx: NodeCtx, config: BalancerConfig) {
    let instances = config.pools().all();
    let offsets = proxy::probe_offsets(&mut ctx, instances.len(), config.health_interval_ms);
    let balancer = Arc::new(proxy::Balancer::new(ctx, config));
    for ((pool, instance), offset_ms) in instances.into_iter().zip(offsets) {
        tokio::spawn(balancer.clone().probe_loop(pool, instance, offset_ms));
    }
    let ready = HealthFlag::new();
    tokio::spawn(health_endpoint::serve(balancer.ctx.net.clone(), ready.clone()));
    if let Err(e) = balancer.clone().serve(ready).await {
        tracing::error!(error = %e, "front door stopped");
    }
}
