//! The document cache in the Redis-like store, behind a circuit breaker.
//!
//! Redis is ephemeral here (the design: "data in Redis is treated as ephemeral with recovery
//! from source data"): a cached document is a copy of a state rebuilt from MongoDB, keyed
//! `doc:<tenant>/<name>`, with a TTL, and any cache answer other than a well-formed value
//! counts as a miss. The service only serves a cached copy that is not behind the durable
//! version vector (checked by the caller), so a stale or lost cache costs a rebuild, never an
//! edit.
//!
//! A cache call that fails or times out is reported to the [`Breaker`]; while it is open,
//! calls are skipped without touching the network, so a dead Redis (or a failover in
//! progress, when the client asks each Sentinel in turn) adds no latency to requests.
//!
//! Value format: `v1:<hex state vector>:<hex yrs v1 update>`. Left out: compression, and
//! invalidation on writes (the consumer never touches the cache; freshness is checked by
//! vector on every read instead).

use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use sim::clock::Clock;
use tokio::sync::Mutex;

use super::breaker::{Breaker, BreakerSettings, Permit, Transition};
use super::vector::{hex, unhex, VersionVector};
use crate::redis::client::RedisClient;
use crate::redis::protocol::{Command, Reply};

/// The largest cached value read back (a larger one is treated as garbage).
const MAX_VALUE_BYTES: usize = 8 << 20;

#[derive(Clone, Debug)]
pub struct CacheSettings {
    /// `PX` of every fill.
    pub ttl_ms: u64,
    /// The longest a cache call (including waiting for the shared client) may take.
    pub call_timeout_ms: u64,
    pub breaker: BreakerSettings,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings { ttl_ms: 600_000, call_timeout_ms: 1_000, breaker: BreakerSettings::default() }
    }
}

/// A cached document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedDoc {
    pub vector: VersionVector,
    pub state: Vec<u8>,
}

impl CachedDoc {
    pub fn encode(&self) -> String {
        format!("v1:{}:{}", self.vector.to_hex(), hex(&self.state))
    }

    pub fn decode(s: &str) -> Option<CachedDoc> {
        if s.len() > MAX_VALUE_BYTES {
            return None;
        }
        let mut parts = s.splitn(3, ':');
        if parts.next()? != "v1" {
            return None;
        }
        let vector = VersionVector::decode_v1(&unhex(parts.next()?)?).ok()?;
        let state = unhex(parts.next()?)?;
        Some(CachedDoc { vector, state })
    }
}

pub fn key(doc: &str) -> String {
    format!("doc:{doc}")
}

/// What a cache read found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    Found(CachedDoc),
    Absent,
    /// The breaker is open or the call failed.
    Unavailable,
}

/// The cache of one service node. Clones share the client and the breaker.
#[derive(Clone)]
pub struct Cache {
    client: Arc<Mutex<RedisClient>>,
    breaker: Arc<StdMutex<Breaker>>,
    clock: Clock,
    settings: CacheSettings,
}

impl Cache {
    pub fn new(client: RedisClient, clock: Clock, settings: CacheSettings) -> Self {
        Cache {
            client: Arc::new(Mutex::new(client)),
            breaker: Arc::new(StdMutex::new(Breaker::new(settings.breaker))),
            clock,
            settings,
        }
    }

    fn breaker(&self) -> std::sync::MutexGuard<'_, Breaker> {
        self.breaker.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One command through the breaker; None when skipped or failed. The transition, if the
    /// outcome opened or closed the circuit, comes back for the caller to trace.
    async fn call(&self, cmd: &Command) -> (Option<Reply>, Transition) {
        if self.breaker().permit(self.clock.now_ms()) == Permit::Skip {
            return (None, Transition::None);
        }
        let limit = Duration::from_millis(self.settings.call_timeout_ms);
        let result = sim::timer::timeout(limit, async {
            let mut client = self.client.lock().await;
            client.call(cmd).await
        })
        .await;
        let reply = match result {
            Ok(Ok((_, reply))) => Some(reply),
            _ => None,
        };
        let transition = self.breaker().report(self.clock.now_ms(), reply.is_some());
        (reply, transition)
    }

    pub async fn get(&self, doc: &str) -> (Lookup, Transition) {
        let (reply, t) = self.call(&Command::Get { key: key(doc) }).await;
        let lookup = match reply {
            Some(Reply::Value { value: Some(v) }) => CachedDoc::decode(&v).map_or(Lookup::Absent, Lookup::Found),
            Some(_) => Lookup::Absent,
            None => Lookup::Unavailable,
        };
        (lookup, t)
    }

    /// Fills the cache; whether the store took it.
    pub async fn put(&self, doc: &str, cached: &CachedDoc) -> (bool, Transition) {
        let cmd = Command::Set { key: key(doc), value: cached.encode(), px: Some(self.settings.ttl_ms) };
        let (reply, t) = self.call(&cmd).await;
        (matches!(reply, Some(Reply::Ok)), t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_values_round_trip_and_garbage_is_a_miss() {
        let mut vector = VersionVector::default();
        vector.raise(42, 7);
        let c = CachedDoc { vector, state: vec![1, 2, 3] };
        assert_eq!(CachedDoc::decode(&c.encode()), Some(c));
        for bad in ["", "v2:00:00", "v1:zz:00", "v1:00", "v1:0100:0"] {
            assert_eq!(CachedDoc::decode(bad), None, "{bad:?}");
        }
    }
}
