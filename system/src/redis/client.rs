//! A Sentinel-aware client, as redis-py's `Sentinel.master_for` and Jedis's `JedisSentinelPool`
//! behave: ask the Sentinels for the master (`get-master-addr-by-name`), check it with `ROLE`,
//! and look again after a connection error or a `READONLY` answer. Jedis also follows
//! `+switch-master` announcements; that is modelled by asking one Sentinel a second and
//! switching when it names a master under a newer configuration epoch than the one in use.
//! Connections are [`Channel`]s: one cached per node, reconnected after a backoff.

use std::time::Duration;

use sim::NodeCtx;
use tokio::time::Instant;

use super::protocol::{Command, ReplRole, Reply, SentinelReply, SentinelRequest, REDIS_PORT};
use super::sentinel_node::Links;
use crate::rpc::{Channel, ChannelOptions, Encoding, RpcError};

const CONNECT: Duration = Duration::from_millis(500);
const REPLY: Duration = Duration::from_secs(1);
const FOLLOW_PERIOD: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RedisError {
    #[error("no master found through the Sentinels")]
    NoMaster,
    #[error("READONLY: {0} is a replica")]
    ReadOnly(String),
    /// Sent, but no answer: the command may or may not have been applied.
    #[error("{node}: {reason}")]
    Io { node: String, reason: String },
    #[error("{0}")]
    Server(String),
}

/// How a client finds its master.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientConfig {
    /// The Sentinels to ask, in turn.
    pub sentinels: Vec<String>,
    /// Once a master is found, keep using it whatever happens: no rediscovery after errors or
    /// `READONLY`, no following of failovers. This is a client configured with the master's
    /// address instead of the Sentinels' (or a pool that never refreshes it); it exists to prove
    /// the checkers catch the writes it loses, and no correct deployment uses it.
    pub pinned: bool,
    /// Whether the client follows announced failovers (Jedis's `+switch-master` subscription,
    /// modelled as asking a Sentinel about once a second). Off, it looks for the master again
    /// only after a connection error or `READONLY`, as a client without that subscription does:
    /// a replaced master that clients still reach and that nobody has demoted yet keeps their
    /// writes (unsafe; it exists to prove the follow checker catches it).
    pub follows: bool,
}

impl ClientConfig {
    /// Discovers and follows the master through these Sentinels.
    pub fn sentinel(sentinels: Vec<String>) -> Self {
        ClientConfig { sentinels, pinned: false, follows: true }
    }

    /// Unsafe: finds the master once through these Sentinels and never looks again.
    pub fn pinned(sentinels: Vec<String>) -> Self {
        ClientConfig { sentinels, pinned: true, follows: true }
    }
}

pub struct RedisClient {
    /// The connection for commands.
    data: Channel,
    /// The Sentinels, and `ROLE` checks.
    links: Links,
    sentinels: Vec<String>,
    pinned: bool,
    follows: bool,
    next: usize,
    master: Option<(String, u64)>,
    last_follow: Option<Instant>,
}

impl RedisClient {
    /// A client of this node (its reconnect jitter is forked from the node's rng).
    pub fn new(ctx: &mut NodeCtx, config: ClientConfig) -> Self {
        let data = ChannelOptions {
            connect_timeout_ms: CONNECT.as_millis() as u64,
            ..ChannelOptions::new(REDIS_PORT, Encoding::Json)
        };
        RedisClient {
            data: Channel::new(ctx, data),
            links: Links::new(ctx),
            sentinels: config.sentinels,
            pinned: config.pinned,
            follows: config.follows,
            next: 0,
            master: None,
            last_follow: None,
        }
    }

    /// The master in use, if any.
    pub fn master(&self) -> Option<&str> {
        self.master.as_ref().map(|m| m.0.as_str())
    }

    /// Drops, unless pinned, the master (the next call rediscovers it).
    fn forget(&mut self) {
        if !self.pinned {
            self.master = None;
        }
    }

    async fn ask_sentinel(&mut self) -> Option<(String, u64)> {
        if self.sentinels.is_empty() {
            return None;
        }
        let s = self.sentinels[self.next % self.sentinels.len()].clone();
        self.next += 1;
        match self.links.sentinel(&s, &SentinelRequest::GetMaster).await {
            Ok(SentinelReply::Master { node, config_epoch }) => Some((node, config_epoch)),
            _ => None,
        }
    }

    async fn is_master(&self, node: &str) -> bool {
        matches!(self.links.redis(node, &Command::Role).await, Ok(Reply::Role { info }) if matches!(info.role, ReplRole::Master { .. }))
    }

    /// Asks the Sentinels in turn for a master that confirms its role.
    async fn discover(&mut self) -> Option<String> {
        for _ in 0..self.sentinels.len() {
            let Some((node, epoch)) = self.ask_sentinel().await else { continue };
            if self.is_master(&node).await {
                self.master = Some((node.clone(), epoch));
                return Some(node);
            }
        }
        None
    }

    /// Follows a failover announced under a newer configuration epoch.
    async fn follow(&mut self) {
        if self.pinned || !self.follows || self.last_follow.is_some_and(|t| t.elapsed() < FOLLOW_PERIOD) {
            return;
        }
        self.last_follow = Some(Instant::now());
        let Some((current, epoch)) = self.master.clone() else { return };
        if let Some((node, e)) = self.ask_sentinel().await {
            if node != current && e > epoch && self.is_master(&node).await {
                self.master = Some((node, e));
            }
        }
    }

    /// Runs `cmd` on the master; returns which node answered.
    pub async fn call(&mut self, cmd: &Command) -> Result<(String, Reply), RedisError> {
        self.follow().await;
        let node = match self.master.clone() {
            Some((m, _)) => m,
            None => self.discover().await.ok_or(RedisError::NoMaster)?,
        };
        match self.data.call(&node, cmd, CONNECT + REPLY).await {
            Ok(Reply::ReadOnly) => {
                self.forget();
                Err(RedisError::ReadOnly(node))
            }
            Ok(Reply::Err { message }) => Err(RedisError::Server(message)),
            Ok(reply) => Ok((node, reply)),
            Err(e) => {
                self.forget();
                let reason = match e {
                    RpcError::Connect(_) | RpcError::BackingOff => "cannot connect".into(),
                    RpcError::TimedOut => "no answer in time".into(),
                    other => other.to_string(),
                };
                Err(RedisError::Io { node, reason })
            }
        }
    }
}
