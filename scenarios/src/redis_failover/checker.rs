//! What the `redis-failover` checkers share: the Sentinels' configuration over time and the
//! cache's acknowledged writes, both read from the observations of one cluster (nodes and
//! Sentinels are told apart by the names the [`RedisCluster`] handle gives, so two clusters in one
//! world are judged separately).

use sim::Observations;
use system::redis::{RedisCluster, SentinelObserved};

use super::history::CacheObserved;

/// At most this many individual violations are listed per kind; the count says the rest.
pub const LIST_AT_MOST: usize = 5;

/// A Sentinel adopted a configuration naming `to` as the master.
#[derive(Clone, Debug)]
pub struct Switch {
    pub t_ms: u64,
    pub to: String,
    pub config_epoch: u64,
}

/// The Sentinels' newest configuration at any time: the one a client asking them is sent to.
pub struct SentinelView {
    initial: String,
    /// In the order observed.
    pub switches: Vec<Switch>,
}

impl SentinelView {
    pub fn read(o: &Observations, redis: &RedisCluster) -> Self {
        let switches = o
            .of::<SentinelObserved>()
            .filter(|s| redis.sentinels().iter().any(|n| n == s.node))
            .filter_map(|s| match s.value {
                SentinelObserved::SwitchMaster { to, config_epoch, .. } => {
                    Some(Switch { t_ms: s.t_ms, to, config_epoch })
                }
                _ => None,
            })
            .collect();
        SentinelView { initial: redis.initial_master().to_string(), switches }
    }

    /// The newest configuration any Sentinel held at `t_ms`: (master, config epoch, when some
    /// Sentinel first adopted it). Before any switch, the initial master under epoch 0 since 0.
    pub fn at(&self, t_ms: u64) -> (&str, u64, u64) {
        let newest =
            self.switches.iter().filter(|s| s.t_ms <= t_ms).max_by_key(|s| (s.config_epoch, std::cmp::Reverse(s.t_ms)));
        match newest {
            Some(s) => (s.to.as_str(), s.config_epoch, s.t_ms),
            None => (self.initial.as_str(), 0, 0),
        }
    }

    pub fn master_at(&self, t_ms: u64) -> &str {
        self.at(t_ms).0
    }
}

/// A write the cache acknowledged.
#[derive(Clone, Debug)]
pub struct Ack {
    pub t_ms: u64,
    pub key: String,
    pub node: String,
    pub ttl_ms: u64,
}

impl Ack {
    /// Whether the key should still be live at `t_ms` (its TTL, stamped by the master a little
    /// before the acknowledgement, runs out at least a second later).
    pub fn outlives(&self, t_ms: u64) -> bool {
        self.t_ms + self.ttl_ms >= t_ms + 1_000
    }
}

/// The writes this cluster's nodes acknowledged, in order.
pub fn acks(o: &Observations, redis: &RedisCluster) -> Vec<Ack> {
    o.of::<CacheObserved>()
        .filter_map(|c| match c.value {
            CacheObserved::WriteAcked { key, node, ttl_ms } if redis.nodes().contains(&node) => {
                Some(Ack { t_ms: c.t_ms, key, node, ttl_ms })
            }
            _ => None,
        })
        .collect()
}

/// The final read-back from this cluster: when, which node answered, and the keys it held.
pub fn read_back(o: &Observations, redis: &RedisCluster) -> Option<(u64, String, Vec<String>)> {
    o.of::<CacheObserved>()
        .filter_map(|c| match c.value {
            CacheObserved::ReadBack { node, keys } if redis.nodes().contains(&node) => Some((c.t_ms, node, keys)),
            _ => None,
        })
        .last()
}
