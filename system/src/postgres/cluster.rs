//! A PostgreSQL-like cluster as one unit a scenario adds to its plan: the members (one per
//! zone, each a server and its Patroni agent), the DCS they elect their leader in, the proxy
//! clients go through, and the object store they archive to, all named under one prefix, so
//! that two clusters can share a world without sharing a node or a role.
//!
//! ```
//! use sim::{Plan, Topology};
//! use system::postgres::cluster::PgClusterSpec;
//!
//! let mut plan = Plan::new(Topology::new(), 10_000);
//! let a = PgClusterSpec::new("pg").add_to(&mut plan);
//! let b = PgClusterSpec::new("pgb").add_to(&mut plan);
//! assert_eq!(a.members(), ["pg-1", "pg-2", "pg-3"]);
//! assert_eq!(a.agents(), ["pg-1-agent", "pg-2-agent", "pg-3-agent"]);
//! assert_eq!(a.proxy(), "pg-proxy");
//! assert_eq!((a.role_primary(), b.role_primary()), ("pg-primary", "pgb-primary"));
//! assert_eq!(a.role_primary_agent(), "pg-primary-agent");
//! assert_eq!(b.dcs(), ["pgb-dcs-1", "pgb-dcs-2", "pgb-dcs-3"]);
//! assert_eq!(b.backup(), Some("pgb-backup"));
//! ```
//!
//! Names: members' servers `<prefix>-1`.. and their agents `<prefix>-1-agent`.. (same zone),
//! DCS nodes `<prefix>-dcs-1`.., the proxy `<prefix>-proxy`, the backup store
//! `<prefix>-backup`; roles (what faults target) `<prefix>-primary`, `<prefix>-sync-standby`
//! and `<prefix>-async-replica` (claimed by a member's server and agent alike: the machine),
//! `<prefix>-primary-agent` (the primary's agent alone: a stalled Patroni with a live
//! postmaster) and `<prefix>-dcs-leader`. The handle reads the members' WAL from their disks,
//! the durable state a checker must judge by (see the architecture's "what checkers trust").
//!
//! Knobs ([`PgClusterSpec`]): `timing` (every timeout scaled by one factor), `watchdog`
//! (Patroni's `watchdog.mode`: on by default; off lets a stalled agent leave an old primary
//! accepting writes), `sync_strict` (`synchronous_mode_strict`), and `shutdown_sessions`
//! (HAProxy's `on-marked-down shutdown-sessions`, off by default).

use serde::{Deserialize, Serialize};
use sim::disk::Disk;
use sim::{node_main, NodeCtx, Plan};

use super::agent::{AgentConfig, MemberNodes};
use super::data::Durability;
use super::manager::Timing;
use super::node::PgConfig;
use super::planted::Planted;
use super::proxy::ProxyConfig;
use super::wal::{read_segments, Wal};
use super::PgClient;

/// Where a node goes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    pub zone: String,
    pub region: String,
}

impl Placement {
    pub fn new(zone: &str, region: &str) -> Self {
        Placement { zone: zone.into(), region: region.into() }
    }
}

/// The roles a cluster's nodes claim, each namespaced by the cluster's prefix.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PgRoles {
    pub primary: String,
    /// The primary's agent alone.
    pub primary_agent: String,
    pub sync_standby: String,
    pub async_replica: String,
    pub dcs_leader: String,
}

impl PgRoles {
    pub fn for_prefix(prefix: &str) -> Self {
        PgRoles {
            primary: format!("{prefix}-primary"),
            primary_agent: format!("{prefix}-primary-agent"),
            sync_standby: format!("{prefix}-sync-standby"),
            async_replica: format!("{prefix}-async-replica"),
            dcs_leader: format!("{prefix}-dcs-leader"),
        }
    }
}

/// What a cluster is made of and where it goes.
#[derive(Clone, Debug)]
pub struct PgClusterSpec {
    /// Namespaces every node and role name.
    pub prefix: String,
    /// One member per placement (the first is `<prefix>-1`).
    pub members: Vec<Placement>,
    /// One DCS node per placement; an odd count, so a majority survives one loss.
    pub dcs: Vec<Placement>,
    /// The object store base backups and archived WAL go to; None: no archiving.
    pub backup: Option<Placement>,
    /// Where the proxy clients connect to goes.
    pub proxy: Placement,
    pub durability: Durability,
    pub timing: Timing,
    /// Bugs planted for the checkers to catch (none by default).
    pub planted: Planted,
    /// Patroni's `watchdog.mode`: `required` (true) or `off`.
    pub watchdog: bool,
    /// Patroni's `synchronous_mode_strict`.
    pub sync_strict: bool,
    /// HAProxy's `on-marked-down shutdown-sessions`.
    pub shutdown_sessions: bool,
}

impl PgClusterSpec {
    /// Three members and three DCS nodes over `az-1`..`az-3` of `region-1`, the proxy in
    /// `az-1`, the backup store in `az-b1` of `region-2`, the standard durability, the
    /// simulation timing, the watchdog on, non-strict synchronous mode, and sessions kept on a
    /// member marked down.
    pub fn new(prefix: &str) -> Self {
        let zones: Vec<Placement> = (1..=3).map(|i| Placement::new(&format!("az-{i}"), "region-1")).collect();
        PgClusterSpec {
            prefix: prefix.into(),
            members: zones.clone(),
            dcs: zones,
            backup: Some(Placement::new("az-b1", "region-2")),
            proxy: Placement::new("az-1", "region-1"),
            durability: Durability::standard(),
            timing: Timing::simulation(),
            planted: Planted::default(),
            watchdog: true,
            sync_strict: false,
            shutdown_sessions: false,
        }
    }

    /// Runs every member with the bugs `planted` (an unsafe configuration).
    pub fn planted(mut self, planted: Planted) -> Self {
        self.planted = planted;
        self
    }

    pub fn timing(mut self, timing: Timing) -> Self {
        self.timing = timing;
        self
    }

    pub fn watchdog(mut self, on: bool) -> Self {
        self.watchdog = on;
        self
    }

    pub fn sync_strict(mut self, on: bool) -> Self {
        self.sync_strict = on;
        self
    }

    pub fn shutdown_sessions(mut self, on: bool) -> Self {
        self.shutdown_sessions = on;
        self
    }

    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Adds the cluster's nodes to `plan` (its topology and their mains) and returns its handle.
    pub fn add_to(&self, plan: &mut Plan) -> PgCluster {
        let cluster = self.cluster();
        for (name, at) in cluster.dcs.iter().zip(&self.dcs) {
            plan.topology.add(name, &at.zone, &at.region);
            let (members, role) = (cluster.dcs.clone(), cluster.roles.dcs_leader.clone());
            plan.node(name, node_main(move |ctx| super::dcs_server::run(ctx, members.clone(), role.clone())));
        }
        let config = cluster.member_config(self);
        for (i, at) in self.members.iter().enumerate() {
            let (name, agent) = (&cluster.members[i], &cluster.agents[i]);
            plan.topology.add(name, &at.zone, &at.region);
            let config = config.clone();
            plan.node(name, node_main(move |ctx| super::node::run(ctx, config.clone())));
            plan.topology.add(agent, &at.zone, &at.region);
            let config = cluster.agent_config(self, name);
            plan.node(agent, node_main(move |ctx| super::agent::run(ctx, config.clone())));
        }
        plan.topology.add(&cluster.proxy, &self.proxy.zone, &self.proxy.region);
        let mut proxy = ProxyConfig::new(cluster.member_nodes(), self.timing.check_interval_ms);
        proxy.shutdown_sessions = self.shutdown_sessions;
        plan.node(&cluster.proxy, node_main(move |ctx| super::proxy::run(ctx, proxy.clone())));
        if let (Some(name), Some(at)) = (&cluster.backup, &self.backup) {
            plan.topology.add(name, &at.zone, &at.region);
            plan.node(name, node_main(crate::objstore::run));
        }
        cluster
    }

    /// The handle of the cluster this spec makes (its names), without adding it to a plan:
    /// what a schedule drawn before the plan exists needs.
    pub fn cluster(&self) -> PgCluster {
        let p = &self.prefix;
        PgCluster {
            members: (1..=self.members.len()).map(|i| format!("{p}-{i}")).collect(),
            agents: (1..=self.members.len()).map(|i| format!("{p}-{i}-agent")).collect(),
            proxy: format!("{p}-proxy"),
            dcs: (1..=self.dcs.len()).map(|i| format!("{p}-dcs-{i}")).collect(),
            backup: self.backup.as_ref().map(|_| format!("{p}-backup")),
            roles: PgRoles::for_prefix(p),
        }
    }
}

/// A cluster in a plan: its names, and what clients and checkers need.
#[derive(Clone, Debug)]
pub struct PgCluster {
    members: Vec<String>,
    agents: Vec<String>,
    proxy: String,
    dcs: Vec<String>,
    backup: Option<String>,
    roles: PgRoles,
}

impl PgCluster {
    pub fn members(&self) -> &[String] {
        &self.members
    }

    pub fn is_member(&self, node: &str) -> bool {
        self.members.iter().any(|m| m == node)
    }

    /// The members' Patroni agents, in the members' order.
    pub fn agents(&self) -> &[String] {
        &self.agents
    }

    /// The proxy clients connect to.
    pub fn proxy(&self) -> &str {
        &self.proxy
    }

    fn member_nodes(&self) -> Vec<MemberNodes> {
        let pairs = self.members.iter().zip(&self.agents);
        pairs.map(|(server, agent)| MemberNodes { server: server.clone(), agent: agent.clone() }).collect()
    }

    pub fn dcs(&self) -> &[String] {
        &self.dcs
    }

    pub fn backup(&self) -> Option<&str> {
        self.backup.as_deref()
    }

    pub fn roles(&self) -> &PgRoles {
        &self.roles
    }

    /// The role the primary claims (for faults aimed at whoever is primary when they fire).
    pub fn role_primary(&self) -> &str {
        &self.roles.primary
    }

    /// The role the primary's agent alone claims (to stall Patroni, not the postmaster).
    pub fn role_primary_agent(&self) -> &str {
        &self.roles.primary_agent
    }

    pub fn role_sync_standby(&self) -> &str {
        &self.roles.sync_standby
    }

    pub fn role_async_replica(&self) -> &str {
        &self.roles.async_replica
    }

    /// An application client of this cluster on `ctx`'s node (it goes through the proxy).
    pub fn client(&self, ctx: &mut NodeCtx) -> PgClient {
        PgClient::new(ctx, vec![self.proxy.clone()])
    }

    fn member_config(&self, spec: &PgClusterSpec) -> PgConfig {
        PgConfig {
            members: self.members.clone(),
            sync_strict: spec.sync_strict,
            archive: self.backup.clone(),
            durability: spec.durability.clone(),
            timing: spec.timing.clone(),
            roles: self.roles.clone(),
            planted: spec.planted.clone(),
        }
    }

    fn agent_config(&self, spec: &PgClusterSpec, server: &str) -> AgentConfig {
        AgentConfig {
            server: server.into(),
            members: self.member_nodes(),
            dcs: self.dcs.clone(),
            timing: spec.timing.clone(),
            roles: self.roles.clone(),
            watchdog: spec.watchdog,
        }
    }

    /// Each member's WAL as its disk holds it at the end of a run (what survives, not what a
    /// member said it flushed).
    pub fn durable_logs(&self, outcome: &sim::Outcome) -> Vec<(String, Wal)> {
        self.members
            .iter()
            .map(|n| {
                let segments = read_segments(&Disk::from(outcome.world.disks.disk(n))).unwrap_or_default();
                (n.clone(), Wal::load(&segments).wal)
            })
            .collect()
    }
}
