//! The document service, and the durable document model it shares with the log consumers
//! ([`crate::log_consumer`]).
//!
//! A document lives durably in the MongoDB-like store as immutable, versioned snapshots plus
//! the CRDT operations (yrs v1 updates) stored after them, and a version vector (the yrs state
//! vector of what is stored) ([`store`] has the schema). The service loads a document from the
//! Redis-like cache when the cached copy is not behind the durable version vector, else from
//! the latest snapshot plus the operations after it, applied in causal order ([`rebuild`]),
//! and fills the cache ([`cache`], behind a sans-IO circuit breaker, [`breaker`]). It serves
//! metadata and the snapshot history ([`service`] has the HTTP API).
//!
//! What of the design it realises: "Document Service: state recovery from MongoDB and version
//! vectors"; "Server Failure Recovery": snapshot, then pending operations, applied in causal
//! order using version vectors; "Graceful degradation to MongoDB if Redis is unavailable",
//! "Data in Redis is treated as ephemeral"; "Circuit breakers prevent cascading failures";
//! "Immutable document version snapshots", "CRDT operations stored with idempotency
//! guarantees"; and "Kafka Failure Recovery": the collaboration service opens a room from here,
//! reading operations from MongoDB directly.
//!
//! Operations "based on timestamp": a load reads the operations written after the oplog
//! position the snapshot contains everything up to, so it costs the tail since the last
//! compaction, not the document's history (the version vector still decides what is applied).
//!
//! Left out: cache invalidation (freshness is checked by vector on every read), and
//! multi-region replication of the documents.
//!
//! For checkers: [`rebuild_from_mongo`] rebuilds a document from MongoDB alone, [`DocStore`]
//! reads the stored operations and snapshots through a router, and [`audit`] reads them from
//! the members' recovered oplogs.

pub mod audit;
pub mod breaker;
pub mod cache;
pub mod observe;
pub mod rebuild;
pub mod service;
pub mod snapshot;
pub mod store;
#[cfg(all(test, not(madsim)))]
mod tests;
pub mod vector;

use std::time::Duration;

use sim::NodeCtx;

pub use cache::CacheSettings;
pub use rebuild::{rebuild, OpBytes, Rebuilt};
pub use service::{Service, HTTP_PORT};
pub use snapshot::{Snapshot, SnapshotMeta};
pub use store::{rebuild_from_mongo, DocStore, LoadError, Loaded, StoredOp};
pub use vector::VersionVector;

use crate::http::health::{self, HealthFlag};
use crate::mongo::{Router, RouterConfig};
use crate::redis::client::{ClientConfig, RedisClient};

/// What a document service node needs; the stack builder fills it from the cluster handles.
#[derive(Clone, Debug)]
pub struct DocsConfig {
    pub mongo: RouterConfig,
    pub redis: ClientConfig,
    pub cache: CacheSettings,
}

impl DocsConfig {
    pub fn new(mongo: RouterConfig, redis: ClientConfig) -> Self {
        DocsConfig { mongo, redis, cache: CacheSettings::default() }
    }
}

/// A document service node's main: health on 8081 (up once MongoDB answers), the API on
/// [`HTTP_PORT`].
pub async fn run(mut ctx: NodeCtx, config: DocsConfig) {
    let flag = HealthFlag::new();
    tokio::spawn(health::serve(ctx.net.clone(), flag.clone()));
    let store = DocStore::new(Router::new(ctx.fork(), config.mongo.clone()));
    let redis = RedisClient::new(&mut ctx, config.redis.clone());
    let cache = cache::Cache::new(redis, ctx.clock.clone(), config.cache.clone());
    let service = Service::new(ctx.fork(), store.clone(), cache);
    let serving = tokio::spawn(service.serve());
    // Ready once MongoDB answers a majority read (the shard map loads on the way).
    while store.version_vector("health/probe").await.is_err() {
        sim::timer::sleep(Duration::from_millis(500)).await;
    }
    flag.set(true);
    ctx.trace("docs.ready", serde_json::json!({}));
    if let Ok(Err(e)) = serving.await {
        ctx.trace("docs.serve_failed", serde_json::json!({ "error": e.to_string() }));
    }
}
