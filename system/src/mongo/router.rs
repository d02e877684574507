//! The router (mongos): routes each operation to the shard that owns its route key, by the
//! hashed shard key, and finds each shard's primary.
//!
//! It runs inside the application process, as a mongos sidecar would. It loads the shard map
//! from the config servers (`readConcern: majority`, as mongos reads `config.*`) and caches one
//! primary per replica set. Like mongos's replica set monitor, it refreshes a set's primary
//! when a member answers `NotWritablePrimary` (following the member's hint) or when the cached
//! primary stops answering: it then asks every member `hello` and keeps the primary claim with
//! the highest term (MongoDB compares `electionId`, which holds the term). Writes are retried
//! on another primary within the operation's deadline, like retryable writes; every write the
//! stack sends is idempotent, so a retry of a write that did land is harmless.
//!
//! Left out: `serverSelectionTimeoutMS` tuning, read preferences other than `primary`, chunk
//! version checks (the map never changes), and connection pool limits.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::json;
use sim::NodeCtx;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::oplog::{Fence, OpTime};
use super::protocol::{Command, FoundDoc, Frame, ReadConcern, Reply, WriteConcern, WriteOp, ENCODING, MONGOD_PORT};
use super::shard_map::{ShardMap, CHUNKS_NS, SHARDS_NS};
use crate::rpc::{Channel, ChannelOptions};

/// What a router needs to know of its cluster: where the config servers are (the rest it
/// learns from them), and its timing. A cluster builder makes one
/// ([`crate::mongo::cluster::MongoCluster::router_config`]).
#[derive(Clone, Debug)]
pub struct RouterConfig {
    /// The config server replica set's name (`sharding.configDB`'s set name).
    pub config_set: String,
    /// Its members (`sharding.configDB`'s seed list).
    pub config_hosts: Vec<String>,
    pub settings: RouterSettings,
}

/// Router timing.
#[derive(Clone, Debug)]
pub struct RouterSettings {
    /// How long one operation may take, retries included.
    pub op_timeout_ms: u64,
    /// `wtimeout` sent with `w:majority` writes.
    pub wtimeout_ms: u64,
    /// How long to wait for a reply that needs no replication.
    pub call_timeout_ms: u64,
    pub connect_timeout_ms: u64,
    /// Pause between attempts while a set has no reachable primary.
    pub retry_backoff_ms: u64,
}

impl Default for RouterSettings {
    fn default() -> Self {
        RouterSettings {
            op_timeout_ms: 8_000,
            wtimeout_ms: 3_000,
            call_timeout_ms: 2_000,
            connect_timeout_ms: 1_000,
            retry_backoff_ms: 200,
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RouteError {
    #[error("no primary of {set} answered within the operation's deadline")]
    Unavailable { set: String },
    #[error("the shard map is not available yet")]
    NoShardMap,
    #[error("fencing token {token} of {lock} is stale (shard has seen {highest})")]
    StaleFence { lock: String, token: u64, highest: u64 },
    #[error("write concern failed at {optime}: {reason}")]
    WriteConcern { optime: OpTime, reason: String },
    #[error("lock held by {holder} until {expires_wall_ms}")]
    LockBusy { holder: String, expires_wall_ms: u64 },
    #[error("server error: {0}")]
    Server(String),
}

/// An acknowledged write: where it landed and at which optime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    pub set: String,
    pub primary: String,
    pub optime: OpTime,
    pub inserted: u32,
    pub duplicates: u32,
}

/// A granted lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockGrant {
    pub token: u64,
    pub expires_wall_ms: u64,
    pub optime: OpTime,
}

#[derive(Default)]
struct State {
    map: Option<Arc<ShardMap>>,
    primaries: BTreeMap<String, String>,
}

/// A handle on the router; clones share its caches.
#[derive(Clone)]
pub struct Router {
    inner: Arc<Inner>,
}

struct Inner {
    ctx: Mutex<NodeCtx>,
    /// Connections to the mongods, pooled: concurrent operations each hold their own.
    channel: Channel,
    config_set: String,
    config_hosts: Vec<String>,
    settings: RouterSettings,
    state: Mutex<State>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Router {
    pub fn new(mut ctx: NodeCtx, config: RouterConfig) -> Self {
        let RouterConfig { config_set, config_hosts, settings } = config;
        let mut options = ChannelOptions::new(MONGOD_PORT, ENCODING);
        options.connect_timeout_ms = settings.connect_timeout_ms;
        // Every write the stack sends is idempotent, so a command that met a connection the
        // mongod closed while it sat in the pool may be sent again on a fresh one.
        options.retry_stale_once = true;
        let channel = Channel::new(&mut ctx, options);
        let inner =
            Inner { ctx: Mutex::new(ctx), channel, config_set, config_hosts, settings, state: Mutex::default() };
        Router { inner: Arc::new(inner) }
    }

    pub fn settings(&self) -> &RouterSettings {
        &self.inner.settings
    }

    fn trace(&self, kind: &str, fields: serde_json::Value) {
        lock(&self.inner.ctx).trace(kind, fields);
    }

    fn sometimes(&self, what: &str) {
        lock(&self.inner.ctx).sometimes(what);
    }

    /// Writes `writes` (all for `route_key`'s shard) with `concern`, carrying `fence` if given.
    pub async fn write(
        &self,
        route_key: &str,
        writes: Vec<WriteOp>,
        concern: WriteConcern,
        fence: Option<Fence>,
    ) -> Result<Written, RouteError> {
        let deadline = self.deadline();
        let (set, hosts) = self.route(route_key, deadline).await?;
        let wtimeout_ms = self.inner.settings.wtimeout_ms;
        let cmd = Command::Write { writes, concern, wtimeout_ms, fence };
        let (primary, reply) = self.exec(&set, &hosts, &cmd, deadline, wtimeout_ms).await?;
        match reply {
            Reply::Written { optime, inserted, duplicates } => {
                Ok(Written { set, primary, optime, inserted, duplicates })
            }
            other => Err(error_of(other)),
        }
    }

    /// Reads the documents of `ns` whose id starts with `prefix`, from `route_key`'s shard.
    pub async fn find(
        &self,
        route_key: &str,
        ns: &str,
        prefix: &str,
        read: ReadConcern,
    ) -> Result<Vec<FoundDoc>, RouteError> {
        self.find_after(route_key, ns, prefix, read, 0).await
    }

    /// [`Router::find`], keeping only the documents written at an oplog position after `after`
    /// (of `route_key`'s shard: positions of different shards do not compare).
    pub async fn find_after(
        &self,
        route_key: &str,
        ns: &str,
        prefix: &str,
        read: ReadConcern,
        after: u64,
    ) -> Result<Vec<FoundDoc>, RouteError> {
        let deadline = self.deadline();
        let (set, hosts) = self.route(route_key, deadline).await?;
        let cmd = Command::Find { ns: ns.into(), prefix: prefix.into(), read, after };
        match self.exec(&set, &hosts, &cmd, deadline, 0).await?.1 {
            Reply::Found { docs } => Ok(docs),
            other => Err(error_of(other)),
        }
    }

    /// The shard (replica set name) that owns `route_key`.
    pub async fn shard_for(&self, route_key: &str) -> Result<String, RouteError> {
        Ok(self.route(route_key, self.deadline()).await?.0)
    }

    pub async fn acquire_lock(&self, name: &str, holder: &str, lease_ms: u64) -> Result<LockGrant, RouteError> {
        let cmd = Command::AcquireLock { name: name.into(), holder: holder.into(), lease_ms };
        let (set, hosts) = (&self.inner.config_set, &self.inner.config_hosts);
        match self.exec(set, hosts, &cmd, self.deadline(), self.inner.settings.wtimeout_ms).await?.1 {
            Reply::Locked { token, expires_wall_ms, optime } => Ok(LockGrant { token, expires_wall_ms, optime }),
            other => Err(error_of(other)),
        }
    }

    pub async fn release_lock(&self, name: &str, holder: &str, token: u64) -> Result<(), RouteError> {
        let cmd = Command::ReleaseLock { name: name.into(), holder: holder.into(), token };
        let (set, hosts) = (&self.inner.config_set, &self.inner.config_hosts);
        match self.exec(set, hosts, &cmd, self.deadline(), self.inner.settings.wtimeout_ms).await?.1 {
            Reply::Released => Ok(()),
            other => Err(error_of(other)),
        }
    }

    fn deadline(&self) -> Instant {
        Instant::now() + Duration::from_millis(self.inner.settings.op_timeout_ms)
    }

    /// The shard owning `route_key` and its hosts, loading the shard map first if needed.
    async fn route(&self, route_key: &str, deadline: Instant) -> Result<(String, Vec<String>), RouteError> {
        let map = self.shard_map(deadline).await?;
        let set = map.shard_for(route_key).ok_or(RouteError::NoShardMap)?.to_string();
        let hosts = map.hosts(&set).ok_or(RouteError::NoShardMap)?.to_vec();
        Ok((set, hosts))
    }

    async fn shard_map(&self, deadline: Instant) -> Result<Arc<ShardMap>, RouteError> {
        if let Some(map) = lock(&self.inner.state).map.clone() {
            return Ok(map);
        }
        let (set, hosts) = (&self.inner.config_set, &self.inner.config_hosts);
        loop {
            let read = |ns: &str| Command::Find {
                ns: ns.into(),
                prefix: String::new(),
                read: ReadConcern::Majority,
                after: 0,
            };
            let shards = self.exec(set, hosts, &read(SHARDS_NS), deadline, 0).await?.1;
            let chunks = self.exec(set, hosts, &read(CHUNKS_NS), deadline, 0).await?.1;
            if let (Reply::Found { docs: s }, Reply::Found { docs: c }) = (shards, chunks) {
                if let Some(map) = ShardMap::from_docs(&s, &c) {
                    let map = Arc::new(map);
                    lock(&self.inner.state).map = Some(map.clone());
                    self.trace(
                        "router.shard_map_loaded",
                        json!({ "shards": map.shards.len(), "chunks": map.chunks.len() }),
                    );
                    return Ok(map);
                }
            }
            if Instant::now() >= deadline {
                return Err(RouteError::NoShardMap);
            }
            sim::timer::sleep(Duration::from_millis(self.inner.settings.retry_backoff_ms)).await;
        }
    }

    /// Sends `cmd` to `set`'s primary until one answers or the deadline passes. `wait_ms` is
    /// how long the primary may legitimately hold the reply (the write concern's wtimeout).
    async fn exec(
        &self,
        set: &str,
        hosts: &[String],
        cmd: &Command,
        deadline: Instant,
        wait_ms: u64,
    ) -> Result<(String, Reply), RouteError> {
        let backoff = Duration::from_millis(self.inner.settings.retry_backoff_ms);
        loop {
            if Instant::now() >= deadline {
                return Err(RouteError::Unavailable { set: set.into() });
            }
            let cached = lock(&self.inner.state).primaries.get(set).cloned();
            let host = match cached {
                Some(h) => h,
                None => match self.discover(set, hosts).await {
                    Some(h) => h,
                    None => {
                        sim::timer::sleep(backoff).await;
                        continue;
                    }
                },
            };
            let limit =
                Duration::from_millis(self.inner.settings.call_timeout_ms + wait_ms).min(deadline - Instant::now());
            match self.call(&host, cmd, limit).await {
                Some(Reply::NotPrimary { primary }) => {
                    let hint = primary.filter(|p| hosts.contains(p) && *p != host);
                    self.set_primary(set, hint.clone());
                    if hint.is_none() {
                        sim::timer::sleep(backoff).await;
                    }
                }
                Some(reply) => return Ok((host, reply)),
                None => {
                    self.set_primary(set, None);
                    sim::timer::sleep(backoff).await;
                }
            }
        }
    }

    fn set_primary(&self, set: &str, host: Option<String>) {
        let mut state = lock(&self.inner.state);
        match host {
            Some(h) => state.primaries.insert(set.to_string(), h),
            None => state.primaries.remove(set),
        };
    }

    /// Asks every member `hello` at once; keeps the primary claim with the highest term.
    async fn discover(&self, set: &str, hosts: &[String]) -> Option<String> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        for host in hosts {
            let (router, host, tx) = (self.clone(), host.clone(), tx.clone());
            tokio::spawn(async move {
                let limit = Duration::from_millis(router.inner.settings.call_timeout_ms / 2);
                let reply = router.call(&host, &Command::Hello, limit).await;
                let _ = tx.send((host, reply));
            });
        }
        drop(tx);
        let mut best: Option<(u64, String)> = None;
        while let Some((host, reply)) = rx.recv().await {
            if let Some(Reply::Hello { is_primary: true, term, set: s, .. }) = reply {
                if s == set && best.as_ref().is_none_or(|(t, h)| term > *t || (term == *t && host < *h)) {
                    best = Some((term, host));
                }
            }
        }
        let (term, host) = best?;
        self.set_primary(set, Some(host.clone()));
        self.trace("router.primary_found", json!({ "set": set, "primary": host, "term": term }));
        self.sometimes("mongo.router_rediscovered");
        Some(host)
    }

    /// One request and its reply; None on any connection error or timeout.
    async fn call(&self, host: &str, cmd: &Command, limit: Duration) -> Option<Reply> {
        self.inner.channel.call(host, &Frame::Command(cmd.clone()), limit).await.ok()
    }
}

fn error_of(reply: Reply) -> RouteError {
    match reply {
        Reply::StaleFence { lock, token, highest } => RouteError::StaleFence { lock, token, highest },
        Reply::WriteConcernFailed { optime, reason } => RouteError::WriteConcern { optime, reason },
        Reply::LockBusy { holder, expires_wall_ms } => RouteError::LockBusy { holder, expires_wall_ms },
        Reply::Error { reason } => RouteError::Server(reason),
        other => RouteError::Server(format!("unexpected reply {other:?}")),
    }
}
