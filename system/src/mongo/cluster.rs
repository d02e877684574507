//! The cluster builder: a MongoDB-like sharded cluster as one unit of a simulated world.
//!
//! A [`MongoClusterSpec`] says what to build: a name prefix, the shards and the config server
//! replica set (each member in a zone, with a priority), the write concern clients use by
//! default, replication and journal timing, and the routers' timing. [`MongoClusterSpec::add_to`]
//! adds every mongod to a [`Plan`] and returns a [`MongoCluster`] handle: the replica sets and
//! their hosts, the role each set's primary claims (for fault targeting), what a router needs,
//! and readers of what the members' disks hold (for checkers).
//!
//! Every name is namespaced by the prefix, so two clusters coexist in one world: with prefix
//! `mongo`, shard `shard-a` is the replica set `mongo-shard-a`, its members are the nodes
//! `mongo-shard-a-1`.., and its primary claims the role `mongo-shard-a-primary`. The role names
//! are made here and nowhere else.
//!
//! ```
//! use system::mongo::cluster::MongoClusterSpec;
//!
//! let a = MongoClusterSpec::new("mongo", &["az-1", "az-2", "az-3"], "region-1").handle();
//! let b = MongoClusterSpec::new("mongob", &["az-1", "az-2", "az-3"], "region-1").handle();
//! assert_eq!(a.shard_sets(), vec!["mongo-shard-a", "mongo-shard-b"]);
//! assert_eq!(a.members("mongo-config"), vec!["mongo-config-1", "mongo-config-2", "mongo-config-3"]);
//! assert_eq!(b.role_primary("mongob-shard-a"), "mongob-shard-a-primary");
//! assert!(a.mongods().iter().all(|h| !b.mongods().contains(h)));
//! ```

use std::io;

use sim::disk::DiskFarm;
use sim::{node_main, NodeCtx, Plan};

use super::mongod::{self, storage, ClusterRole, Flaw, MongodConfig};
use super::oplog::Oplog;
use super::protocol::WriteConcern;
use super::replset::{MemberConfig, SetConfig, Settings};
use super::router::{Router, RouterConfig, RouterSettings};
use super::shard_map::ShardMap;

/// One member of a replica set: where it runs and its election priority.
#[derive(Clone, Debug)]
pub struct MemberSpec {
    pub zone: String,
    /// `members[n].priority`.
    pub priority: u32,
}

/// A replica set before prefixing: its short name (`shard-a`, `config`) and its members.
#[derive(Clone, Debug)]
pub struct SetSpec {
    pub name: String,
    pub members: Vec<MemberSpec>,
}

impl SetSpec {
    /// One member per zone. The first has priority 2: it is initiated first and takes the
    /// primary back (priority takeover) after it returns from a fault.
    pub fn across(name: &str, zones: &[&str]) -> Self {
        let members = zones
            .iter()
            .enumerate()
            .map(|(i, z)| MemberSpec { zone: z.to_string(), priority: if i == 0 { 2 } else { 1 } })
            .collect();
        SetSpec { name: name.into(), members }
    }
}

/// What to build.
#[derive(Clone, Debug)]
pub struct MongoClusterSpec {
    /// Namespaces every replica set, node and role name of the cluster.
    pub prefix: String,
    pub region: String,
    pub shards: Vec<SetSpec>,
    /// The config server replica set (shard map and distributed locks).
    pub config_servers: SetSpec,
    /// Chunks of the hashed shard key per shard.
    pub chunks_per_shard: u64,
    /// The write concern the cluster's clients use for writes they rely on.
    pub write_concern: WriteConcern,
    /// Replica set timing (heartbeats, election timeout).
    pub replication: Settings,
    /// `storage.journal.commitIntervalMs`.
    pub journal_commit_interval_ms: u64,
    pub router: RouterSettings,
    /// A bug planted in every mongod (unsafe configs only).
    pub flaw: Option<Flaw>,
}

impl MongoClusterSpec {
    /// Two shards and a config server replica set, one member of each per zone, with each set's
    /// priority member in a different zone (so one zone's loss never takes every preferred
    /// primary); `w:majority`; MongoDB's timing.
    pub fn new(prefix: &str, zones: &[&str], region: &str) -> Self {
        let rotated = |k: usize| -> Vec<&str> { (0..zones.len()).map(|i| zones[(i + k) % zones.len()]).collect() };
        MongoClusterSpec {
            prefix: prefix.into(),
            region: region.into(),
            shards: vec![SetSpec::across("shard-a", &rotated(0)), SetSpec::across("shard-b", &rotated(1))],
            config_servers: SetSpec::across("config", &rotated(2)),
            chunks_per_shard: 4,
            write_concern: WriteConcern::Majority,
            replication: Settings::default(),
            journal_commit_interval_ms: 100,
            router: RouterSettings::default(),
            flaw: None,
        }
    }

    /// The handle of the cluster this spec describes, without building it (a fault schedule
    /// drawn before the plan exists needs the names).
    pub fn handle(&self) -> MongoCluster {
        MongoCluster {
            shards: self.shards.iter().map(|s| self.set_config(s)).collect(),
            config_servers: self.set_config(&self.config_servers),
            zones: self.zones(),
            write_concern: self.write_concern,
            router: self.router.clone(),
        }
    }

    /// Adds every member to the plan's topology, with its mongod as its main.
    pub fn add_to(&self, plan: &mut Plan) -> MongoCluster {
        let cluster = self.handle();
        let shard_map = ShardMap::hashed(
            &cluster.shards.iter().map(|s| (s.name.clone(), hosts(s))).collect::<Vec<_>>(),
            self.chunks_per_shard,
        );
        let config_role = ClusterRole::ConfigServer { shard_map };
        let sets = cluster.shards.iter().map(|s| (s, ClusterRole::ShardServer));
        for (set, role) in sets.chain([(&cluster.config_servers, config_role)]) {
            for (me, host) in hosts(set).iter().enumerate() {
                plan.topology.add(host, &cluster.zones[host], &self.region);
                let mut mongod = MongodConfig::new(set.clone(), me, role.clone(), role_primary(&set.name));
                mongod.settings = self.replication.clone();
                mongod.settings.dry_run_elects |= self.flaw == Some(Flaw::DryRunElects);
                mongod.journal_commit_interval_ms = self.journal_commit_interval_ms;
                mongod.flaw = self.flaw;
                plan.node(host, node_main(move |ctx| mongod::run(ctx, mongod.clone())));
            }
        }
        cluster
    }

    fn set_config(&self, set: &SetSpec) -> SetConfig {
        let name = format!("{}-{}", self.prefix, set.name);
        let members = (1..=set.members.len())
            .zip(&set.members)
            .map(|(i, m)| MemberConfig { host: format!("{name}-{i}"), priority: m.priority })
            .collect();
        SetConfig { name, members }
    }

    fn zones(&self) -> std::collections::BTreeMap<String, String> {
        let sets = self.shards.iter().chain([&self.config_servers]);
        sets.flat_map(|s| hosts(&self.set_config(s)).into_iter().zip(s.members.iter().map(|m| m.zone.clone())))
            .collect()
    }
}

/// The role a replica set's primary claims while it is primary.
fn role_primary(set: &str) -> String {
    format!("{set}-primary")
}

fn hosts(set: &SetConfig) -> Vec<String> {
    set.members.iter().map(|m| m.host.clone()).collect()
}

/// A built cluster: its names, what a client needs, and readers of its members' disks.
#[derive(Clone, Debug)]
pub struct MongoCluster {
    shards: Vec<SetConfig>,
    config_servers: SetConfig,
    /// host → zone.
    zones: std::collections::BTreeMap<String, String>,
    write_concern: WriteConcern,
    router: RouterSettings,
}

/// One member's oplog as its disk holds it.
#[derive(Clone, Debug)]
pub struct MemberOplog {
    pub host: String,
    /// Empty for a member that never wrote one.
    pub oplog: Oplog,
    /// Set when the file could not be read (an injected I/O error); `oplog` is then empty.
    pub unreadable: Option<String>,
}

impl MongoCluster {
    /// The shards' replica set names.
    pub fn shard_sets(&self) -> Vec<&str> {
        self.shards.iter().map(|s| s.name.as_str()).collect()
    }

    /// The config server replica set's name.
    pub fn config_set(&self) -> &str {
        &self.config_servers.name
    }

    /// Every replica set: the shards, then the config servers.
    pub fn sets(&self) -> Vec<&str> {
        let mut sets = self.shard_sets();
        sets.push(self.config_set());
        sets
    }

    /// The member hosts (node names) of `set`; empty for a set not of this cluster.
    pub fn members(&self, set: &str) -> Vec<String> {
        self.set(set).map(hosts).unwrap_or_default()
    }

    /// Every mongod of the cluster.
    pub fn mongods(&self) -> Vec<String> {
        self.sets().into_iter().flat_map(|s| self.members(s)).collect()
    }

    /// The replica set `host` is a member of.
    pub fn set_of(&self, host: &str) -> Option<&str> {
        self.all_sets().find(|s| s.index_of(host).is_some()).map(|s| s.name.as_str())
    }

    /// The role `set`'s primary claims while it is primary.
    pub fn role_primary(&self, set: &str) -> String {
        role_primary(set)
    }

    /// The role the config server primary claims.
    pub fn role_config_primary(&self) -> String {
        role_primary(self.config_set())
    }

    /// The write concern clients use for writes they rely on.
    pub fn write_concern(&self) -> WriteConcern {
        self.write_concern
    }

    /// What a router of this cluster needs.
    pub fn router_config(&self) -> RouterConfig {
        RouterConfig {
            config_set: self.config_set().into(),
            config_hosts: self.members(self.config_set()),
            settings: self.router.clone(),
        }
    }

    /// A router of this cluster, running in the calling node (as a mongos sidecar would).
    pub fn router(&self, ctx: NodeCtx) -> Router {
        Router::new(ctx, self.router_config())
    }

    /// The oplog `host`'s disk holds, decoded by the member's own reader: what it would serve
    /// if it started now. A missing file is an empty oplog.
    pub fn oplog_on_disk(&self, disks: &DiskFarm, host: &str) -> io::Result<Oplog> {
        match disks.disk(host).read(storage::OPLOG_FILE) {
            Ok(bytes) => Ok(storage::decode_oplog(&bytes).0),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Oplog::default()),
            Err(e) => Err(e),
        }
    }

    /// Every member of `set` with the oplog its disk holds.
    pub fn oplogs_on_disk(&self, disks: &DiskFarm, set: &str) -> Vec<MemberOplog> {
        let read = |host: String| match self.oplog_on_disk(disks, &host) {
            Ok(oplog) => MemberOplog { host, oplog, unreadable: None },
            Err(e) => MemberOplog { host, oplog: Oplog::default(), unreadable: Some(e.to_string()) },
        };
        self.members(set).into_iter().map(read).collect()
    }

    fn all_sets(&self) -> impl Iterator<Item = &SetConfig> {
        self.shards.iter().chain([&self.config_servers])
    }

    fn set(&self, name: &str) -> Option<&SetConfig> {
        self.all_sets().find(|s| s.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sim::Topology;

    #[test]
    fn two_clusters_share_a_plan_under_their_own_names() {
        let zones = ["az-1", "az-2", "az-3"];
        let mut plan = Plan::new(Topology::new(), 1_000);
        let a = MongoClusterSpec::new("mongo", &zones, "region-1").add_to(&mut plan);
        let b = MongoClusterSpec::new("mongob", &zones, "region-1").add_to(&mut plan);
        assert_eq!(plan.mains.len(), 18);
        assert_eq!(a.set_of("mongo-shard-b-2"), Some("mongo-shard-b"));
        assert_eq!(b.set_of("mongo-shard-b-2"), None);
        assert_eq!(a.role_config_primary(), "mongo-config-primary");
        assert_eq!(b.router_config().config_hosts, b.members("mongob-config"));
        // Each set's priority member sits in a different zone.
        let first_zones: Vec<&str> =
            a.sets().iter().map(|s| plan.topology.get(&a.members(s)[0]).expect("placed").zone.as_str()).collect();
        assert_eq!(first_zones, vec!["az-1", "az-2", "az-3"]);
    }
}
