//! The Redis cluster builder: a spec (name prefix, zones, how many Sentinels, quorum, timing)
//! that adds a master, its replicas and their Sentinels to a [`Plan`], and the [`RedisCluster`]
//! handle a scenario keeps: node and role names, a client constructor, and readers of what the
//! members keep on disk.
//!
//! Every node and role name carries the prefix (prefix `redis`: nodes `redis-1`..,
//! `redis-sentinel-1`.., role `redis-master`), so two clusters share a world without mixing up
//! their nodes or a fault aimed at "the master" of one.
//!
//! ```
//! use sim::{Plan, Topology};
//! use system::redis::cluster::RedisClusterSpec;
//!
//! let mut plan = Plan::new(Topology::new(), 10_000);
//! let zones = ["az-1", "az-2", "az-3"].map(String::from).to_vec();
//! let cache = RedisClusterSpec::new("cache", "region-1", zones).add_to(&mut plan);
//! assert_eq!(cache.nodes(), ["cache-1", "cache-2", "cache-3"]);
//! assert_eq!(cache.role_master(), "cache-master");
//! assert_eq!(cache.sentinels()[0], "cache-sentinel-1");
//! ```

use sim::{node_main, NodeCtx, Plan, WorldState};

use super::client::{ClientConfig, RedisClient};
use super::planted::Planted;
use super::sentinel::{Persisted, SentinelConfig};
use super::sentinel_node::CONF_FILE as SENTINEL_CONF_FILE;
use super::server::{ConfigFile, RedisConfig, Roles, CONFIG_FILE};

/// How to lay out one Redis deployment with Sentinel.
///
/// Nothing of the data is durable (`save ""`, `appendonly no`, as cache deployments run Redis):
/// only each node's role (`redis.conf`) and each Sentinel's view (`sentinel.conf`) survive a
/// restart, so there is no durability knob.
#[derive(Clone, Debug)]
pub struct RedisClusterSpec {
    /// Namespaces every node and role name.
    pub prefix: String,
    pub region: String,
    /// Members and Sentinels are spread over these round-robin.
    pub zones: Vec<String>,
    /// Redis nodes: the first starts as the master, the rest replicate it.
    pub members: usize,
    pub sentinels: usize,
    /// `sentinel monitor ... <quorum>`.
    pub quorum: usize,
    /// `down-after-milliseconds` (30000 in Redis).
    pub down_after_ms: u64,
    /// `failover-timeout` (180000 in Redis).
    pub failover_timeout_ms: u64,
    /// `replica-priority` of every member (100 in Redis; 0: never promoted).
    pub replica_priority: u32,
    /// `min-replicas-to-write` of every member (0 in Redis: off).
    pub min_replicas_to_write: usize,
    /// `min-replicas-max-lag` (10 s in Redis; scaled to 2 s, twice the replicas' ack period,
    /// and below `down-after-milliseconds`, so a master cut off from its replicas stops
    /// accepting writes before the Sentinels replace it).
    pub min_replicas_max_lag_ms: u64,
    /// Unsafe, a planted fault: every Sentinel fails over on its own opinion (quorum 1, its own
    /// vote elects it). See [`SentinelConfig::single_opinion`].
    pub sentinel_single_opinion: bool,
    /// Unsafe, bugs planted in every member and Sentinel ([`super::planted`]); none by default.
    pub planted: Planted,
}

impl RedisClusterSpec {
    /// One member and one Sentinel per zone, `quorum` 2, and the Sentinel timing scaled for
    /// simulation ([`SentinelConfig::simulation`]).
    pub fn new(prefix: &str, region: &str, zones: Vec<String>) -> Self {
        let timing = SentinelConfig::simulation("", Vec::new(), Vec::new(), "");
        RedisClusterSpec {
            prefix: prefix.into(),
            region: region.into(),
            members: zones.len(),
            sentinels: zones.len(),
            zones,
            quorum: timing.quorum,
            down_after_ms: timing.down_after_ms,
            failover_timeout_ms: timing.failover_timeout_ms,
            replica_priority: 100,
            min_replicas_to_write: 0,
            min_replicas_max_lag_ms: 2_000,
            sentinel_single_opinion: false,
            planted: Planted::default(),
        }
    }

    /// Adds the members and Sentinels to `plan` (topology and mains).
    pub fn add_to(&self, plan: &mut Plan) -> RedisCluster {
        assert!(!self.zones.is_empty() && self.members > 0 && self.sentinels > 0, "an empty Redis cluster");
        let cluster = self.names();
        let zone = |i: usize| self.zones[i % self.zones.len()].as_str();
        for (i, name) in cluster.nodes.iter().enumerate() {
            plan.topology.add(name, zone(i), &self.region);
            let replica_of = (i > 0).then(|| cluster.initial_master().to_string());
            let config = RedisConfig {
                replica_of,
                priority: self.replica_priority,
                roles: cluster.roles(),
                min_replicas_to_write: self.min_replicas_to_write,
                min_replicas_max_lag_ms: self.min_replicas_max_lag_ms,
                planted: self.planted,
            };
            plan.node(name, node_main(move |ctx| super::server::run(ctx, config.clone())));
        }
        for (i, name) in cluster.sentinels.iter().enumerate() {
            plan.topology.add(name, zone(i), &self.region);
            let config = self.sentinel_config(&cluster, name);
            plan.node(name, node_main(move |ctx| super::sentinel_node::run(ctx, config.clone())));
        }
        cluster
    }

    /// The handle [`Self::add_to`] returns, without adding anything: what a schedule drawn
    /// before the plan exists needs (node and role names).
    pub fn names(&self) -> RedisCluster {
        let p = &self.prefix;
        RedisCluster {
            prefix: p.clone(),
            nodes: (1..=self.members).map(|i| format!("{p}-{i}")).collect(),
            sentinels: (1..=self.sentinels).map(|i| format!("{p}-sentinel-{i}")).collect(),
            quorum: self.quorum,
            down_after_ms: self.down_after_ms,
            min_replicas: (self.min_replicas_to_write, self.min_replicas_max_lag_ms),
        }
    }

    fn sentinel_config(&self, cluster: &RedisCluster, me: &str) -> SentinelConfig {
        SentinelConfig {
            me: me.into(),
            peers: cluster.sentinels.iter().filter(|s| *s != me).cloned().collect(),
            instances: cluster.nodes.clone(),
            initial_master: cluster.initial_master().into(),
            quorum: self.quorum,
            down_after_ms: self.down_after_ms,
            failover_timeout_ms: self.failover_timeout_ms,
            single_opinion: self.sentinel_single_opinion,
            elect_on_quorum: self.planted.elect_on_quorum,
        }
    }
}

/// What a scenario holds on to once a cluster is in the plan.
#[derive(Clone, Debug)]
pub struct RedisCluster {
    prefix: String,
    nodes: Vec<String>,
    sentinels: Vec<String>,
    quorum: usize,
    down_after_ms: u64,
    /// `min-replicas-to-write` and `min-replicas-max-lag` (ms) of every member.
    min_replicas: (usize, u64),
}

impl RedisCluster {
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The Redis nodes, the initial master first.
    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }

    pub fn sentinels(&self) -> &[String] {
        &self.sentinels
    }

    /// The master every Sentinel starts from.
    pub fn initial_master(&self) -> &str {
        &self.nodes[0]
    }

    /// How many Sentinels must agree the master is down, and be a majority of all Sentinels,
    /// for a failover to start: `max(quorum, majority)`.
    pub fn sentinels_to_fail_over(&self) -> usize {
        self.quorum.max(self.sentinels.len() / 2 + 1)
    }

    /// `sentinel monitor ... <quorum>`: how many Sentinels must see the master down.
    pub fn quorum(&self) -> usize {
        self.quorum
    }

    /// `min-replicas-to-write` and `min-replicas-max-lag` (ms) of every member (0: off).
    pub fn min_replicas(&self) -> (usize, u64) {
        self.min_replicas
    }

    /// `down-after-milliseconds`: how long the master may be silent before a failover starts.
    pub fn down_after_ms(&self) -> u64 {
        self.down_after_ms
    }

    /// The role a node claims while it is a master (faults target "the master" by it).
    pub fn role_master(&self) -> String {
        format!("{}-master", self.prefix)
    }

    /// The role a node claims while it is a replica.
    pub fn role_replica(&self) -> String {
        format!("{}-replica", self.prefix)
    }

    fn roles(&self) -> Roles {
        Roles { master: self.role_master(), replica: self.role_replica() }
    }

    /// How a client of this cluster finds its master: through these Sentinels.
    pub fn client_config(&self) -> ClientConfig {
        ClientConfig::sentinel(self.sentinels.clone())
    }

    /// A Sentinel-aware client on `ctx`'s node.
    pub fn client(&self, ctx: &mut NodeCtx) -> RedisClient {
        RedisClient::new(ctx, self.client_config())
    }

    /// What `sentinel` last wrote to its `sentinel.conf` (None: nothing readable).
    pub fn sentinel_state(&self, world: &WorldState, sentinel: &str) -> Option<Persisted> {
        let bytes = world.disks.disk(sentinel).read(SENTINEL_CONF_FILE).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// The master the Sentinels' newest durable configuration names (highest config epoch; ties
    /// go to the first Sentinel), or the initial master if none has rewritten its configuration.
    pub fn configured_master(&self, world: &WorldState) -> String {
        self.sentinels
            .iter()
            .filter_map(|s| self.sentinel_state(world, s))
            .fold(None::<Persisted>, |best, p| match best {
                Some(b) if b.config_epoch >= p.config_epoch => Some(b),
                _ => Some(p),
            })
            .map_or_else(|| self.initial_master().to_string(), |p| p.master)
    }

    /// The master `node`'s `redis.conf` names (`Some(None)`: it is configured as a master;
    /// None: it has never rewritten its configuration).
    pub fn replica_of(&self, world: &WorldState, node: &str) -> Option<Option<String>> {
        let bytes = world.disks.disk(node).read(CONFIG_FILE).ok()?;
        serde_json::from_slice::<ConfigFile>(&bytes).ok().map(|c| c.replica_of)
    }
}
