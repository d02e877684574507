//! The real-time collaboration service: a WebSocket endpoint speaking y-sync over the net
//! seam, one live `yrs` document per open document, and every edit made durable in the log
//! before it is acknowledged.
//!
//! What runs on a `collab-<i>` node ([`run`]):
//! - the endpoint on [`HTTP_PORT`]: `GET /collab/<tenant>/<doc>?token=<jwt>[&ack=1]` with a
//!   WebSocket upgrade ([`session`]); admission and the permission re-checks are in [`gate`],
//!   which also states the revocation bound ([`gate::REVOCATION_BOUND_MS`]);
//! - the rooms ([`rooms`], around the sans-IO [`room::Room`]): loaded from the document service
//!   when they open and caught up with the log's updates the consumers have not persisted yet,
//!   closed a grace period after their last session leaves;
//! - the producer of the durable path ([`durable`]): each applied update to Kafka topic
//!   `doc-updates`, keyed by document, idempotent, `acks=all`; an acknowledgement (message type
//!   100, [`protocol`]) goes to a session that asked for it only once the log acknowledged;
//! - health on `HEALTH_PORT` (up once the endpoint listens).
//!
//! What the checkers get is in [`observe`]: updates applied and acks sent with their (client,
//! clock) ranges, rooms opened (with the loaded state vector) and closed, sessions admitted,
//! refused and closed with a reason.
//!
//! Left out, and why: y-websocket's persistence callbacks (the log is the persistence), its
//! `auth` message (admission happens at the handshake, so a refused client never gets a byte
//! of the document), sub-documents, and compression. A room's live document is not itself
//! durable: after a crash or a move the room reloads what the log made durable, and each
//! editor's sync step 2 resends whatever it holds that the reloaded room lacks.
//!
//! `ack_before_durable` is the planted bug the `kill-az` checkers must catch: acknowledging
//! an edit once the producer accepted it (a `producer.send()` whose future nobody awaits), not
//! once the log acknowledged it, lets a zone loss take an edit its editor believes durable.
//! With a `produce_linger_ms` it is a write-behind: edits acknowledged on receipt, written to
//! the log a linger later.

pub mod durable;
pub mod gate;
pub mod observe;
pub mod protocol;
pub mod room;
pub mod rooms;
pub mod session;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use sim::NodeCtx;

use crate::http::health::{self, HealthFlag};
use crate::kafka::KafkaCluster;

pub use crate::http::HTTP_PORT;

/// A collaboration node's configuration (the stack builder fills it from cluster handles).
#[derive(Clone)]
pub struct CollabConfig {
    /// The log: its brokers (bootstrap), and the partitions of `doc-updates`.
    pub kafka: KafkaCluster,
    /// The document service instances (`docs-<i>`), tried in a seeded order when a room opens.
    pub docs: Vec<String>,
    /// Builds the node's admission gate: [`gate::AuthGateConfig`] (the auth service's verifier
    /// and permissions, through the PostgreSQL proxies) or a double ([`gate::FakeGate`]).
    pub gate: Arc<dyn gate::MakeGate>,
    /// UNSAFE: acknowledge an edit once the producer accepted it into its buffer, not once the
    /// log acknowledged it.
    pub ack_before_durable: bool,
    /// How long a room with no session stays open.
    pub room_grace_ms: u64,
    /// How long a room may try to load its document before closing its sessions.
    pub load_timeout_ms: u64,
    /// The longest one load request may take.
    pub load_attempt_timeout_ms: u64,
    /// A session silent this long is closed (pings go out every third of it).
    pub idle_timeout_ms: u64,
    /// Bytes of updates queued per log partition before rooms refuse edits (and close):
    /// Kafka's `buffer.memory`.
    pub durable_queue_bytes: usize,
    /// Kafka's `linger.ms` for the producer of the durable path ([`durable`]); 0 by default.
    pub produce_linger_ms: u64,
}

impl CollabConfig {
    /// Safe defaults: acks after durability, 5 s room grace, 10 s to load (2 s an attempt),
    /// 30 s idle timeout, 32 MiB queued per partition ([`durable::BUFFER_MEMORY_BYTES`]), no
    /// linger.
    pub fn new(kafka: KafkaCluster, docs: Vec<String>, gate: Arc<dyn gate::MakeGate>) -> Self {
        CollabConfig {
            kafka,
            docs,
            gate,
            ack_before_durable: false,
            room_grace_ms: 5_000,
            load_timeout_ms: 10_000,
            load_attempt_timeout_ms: 2_000,
            idle_timeout_ms: 30_000,
            durable_queue_bytes: durable::BUFFER_MEMORY_BYTES,
            produce_linger_ms: 0,
        }
    }
}

/// A collaboration node, until it dies.
pub async fn run(mut ctx: NodeCtx, config: CollabConfig) {
    let flag = HealthFlag::new();
    tokio::spawn(health::serve(ctx.net.clone(), flag.clone()));
    let durable =
        durable::Durable::spawn(&mut ctx, &config.kafka, config.durable_queue_bytes, config.produce_linger_ms);
    let gate = config.gate.make(&mut ctx);
    let rooms = rooms::Rooms::new(ctx.fork(), config.clone(), durable);
    let node = Arc::new(session::Node {
        rooms,
        gate: Arc::new(tokio::sync::Mutex::new(gate)),
        idle_timeout_ms: config.idle_timeout_ms,
    });
    let listener = loop {
        match ctx.net.bind(HTTP_PORT).await {
            Ok(l) => break l,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen");
                sim::timer::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    flag.set(true);
    let mut next = 0u64;
    loop {
        match listener.accept().await {
            Ok((conn, peer)) => {
                next += 1;
                // Unique within the node's life, and across its lives.
                let id = (ctx.incarnation << 32) | next;
                let sub = ctx.fork();
                tokio::spawn(session::serve(sub, node.clone(), conn, peer, id));
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                sim::timer::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
