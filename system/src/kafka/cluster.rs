//! A Kafka cluster as one unit a scenario adds to a world: a KRaft controller quorum and brokers
//! spread over zones, the topics the controllers create, and the durability a cluster promises.
//!
//! [`KafkaClusterSpec::add_to`] places the members in the plan's topology, gives each its main,
//! and returns a [`KafkaCluster`] handle: the member names, the role names faults target, what
//! a client needs to reach the cluster, and readers of the members' durable state (the partition
//! logs on the brokers' disks) for checkers.
//!
//! Every node name and role name starts with the spec's `prefix`, so two clusters share a world
//! without colliding: prefix `kafka` gives brokers `kafka-1`.., controllers `kafka-kraft-1`..,
//! and roles `kafka-leader-edits-0`, `kafka-active-controller`; prefix `audit` gives `audit-1`,
//! `audit-leader-edits-0`, and so on.
//!
//! ```
//! use system::kafka::cluster::KafkaClusterSpec;
//!
//! let mut spec = KafkaClusterSpec::new("kafka");
//! spec.topics = vec![("edits".into(), 3)];
//! let mut plan = sim::Plan::new(sim::Topology::new(), 60_000);
//! let kafka = spec.add_to(&mut plan);
//! assert_eq!(kafka.brokers(), ["kafka-1", "kafka-2", "kafka-3"]);
//! assert_eq!(kafka.role_leader(&system::kafka::TopicPartition::new("edits", 0)), "kafka-leader-edits-0");
//! assert_eq!(kafka.partitions().len(), 4); // edits-0..2 and the group offsets partition
//! ```

use std::collections::BTreeMap;

use sim::{node_main, NodeCtx, Plan, WorldState};

use super::client::Client;
use super::config::{Acks, BrokerSettings, ClientSettings, ControllerSettings, TopicSpec};
use super::controller_node::ControllerConfig;
use super::coordinator::GroupRecord;
use super::protocol::CommittedOffset;
use super::topic::{
    active_controller_role, offsets_partition_for, quorum_leader_role, BrokerId, Record, TopicPartition, OFFSETS_TOPIC,
};

/// What the cluster promises about acknowledged records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Durability {
    /// `acks` of the cluster's producers.
    pub acks: Acks,
    /// `min.insync.replicas` of every topic.
    pub min_insync_replicas: usize,
    /// `unclean.leader.election.enable` of the data topics (never of `__consumer_offsets`).
    pub unclean_leader_election: bool,
}

impl Default for Durability {
    /// `acks=all`, `min.insync.replicas=2`, no unclean election: no acknowledged record is lost
    /// while one in-sync replica survives.
    fn default() -> Self {
        Durability { acks: Acks::All, min_insync_replicas: 2, unclean_leader_election: false }
    }
}

/// The cluster's timeouts and intervals, under Kafka's names (see [`super::config`]).
#[derive(Clone, Debug)]
pub struct Timing {
    /// `broker.session.timeout.ms` of the controllers.
    pub broker_session_timeout_ms: u64,
    /// Every broker setting but `cluster` and `broker_id`, which [`KafkaClusterSpec::add_to`]
    /// sets per member.
    pub broker: BrokerSettings,
    pub client: ClientSettings,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            broker_session_timeout_ms: ControllerSettings::default().broker_session_timeout_ms,
            broker: BrokerSettings::new("", 0),
            client: ClientSettings::default(),
        }
    }
}

/// How to build one cluster.
#[derive(Clone)]
pub struct KafkaClusterSpec {
    /// Namespaces every node and role name of the cluster.
    pub prefix: String,
    pub region: String,
    /// Members are spread over these round robin: controller i and broker i in zone i.
    pub zones: Vec<String>,
    /// Size of the KRaft quorum (`controller.quorum.voters`).
    pub controllers: usize,
    pub brokers: usize,
    /// Data topics: name and partition count.
    pub topics: Vec<(String, u32)>,
    /// `replication.factor` of every topic, `__consumer_offsets` included.
    pub replication_factor: usize,
    pub durability: Durability,
    pub timing: Timing,
}

impl KafkaClusterSpec {
    /// Three controllers and three brokers over `az-1`..`az-3` of `region-1`, replication
    /// factor 3, [`Durability::default`], no data topics yet.
    pub fn new(prefix: &str) -> Self {
        KafkaClusterSpec {
            prefix: prefix.into(),
            region: "region-1".into(),
            zones: ["az-1", "az-2", "az-3"].map(String::from).to_vec(),
            controllers: 3,
            brokers: 3,
            topics: Vec::new(),
            replication_factor: 3,
            durability: Durability::default(),
            timing: Timing::default(),
        }
    }

    /// Adds the cluster's nodes to the plan's topology, their mains to the plan, and returns the
    /// handle.
    pub fn add_to(&self, plan: &mut Plan) -> KafkaCluster {
        assert!(!self.zones.is_empty(), "a Kafka cluster needs a zone");
        let cluster = self.cluster();
        for (i, name) in cluster.controllers.iter().enumerate() {
            plan.topology.add(name, self.zone(i), &self.region);
            let config = self.controller_config(i as u64 + 1, &cluster);
            plan.node(name, node_main(move |ctx| super::controller_node::run(ctx, config.clone())));
        }
        for (i, name) in cluster.brokers.iter().enumerate() {
            plan.topology.add(name, self.zone(i), &self.region);
            let mut settings = self.timing.broker.clone();
            settings.cluster = self.prefix.clone();
            settings.broker_id = i as BrokerId + 1;
            let controllers = cluster.controllers.clone();
            plan.node(name, node_main(move |ctx| super::broker_node::run(ctx, settings.clone(), controllers.clone())));
        }
        cluster
    }

    fn zone(&self, i: usize) -> &str {
        &self.zones[i % self.zones.len()]
    }

    /// The handle [`Self::add_to`] returns, for code that needs the names before there is a
    /// plan (a fault schedule drawn from a seed).
    pub fn cluster(&self) -> KafkaCluster {
        let p = &self.prefix;
        KafkaCluster {
            prefix: p.clone(),
            controllers: (1..=self.controllers).map(|i| format!("{p}-kraft-{i}")).collect(),
            brokers: (1..=self.brokers).map(|i| format!("{p}-{i}")).collect(),
            zones: self.zones.clone(),
            topics: self.topic_specs(),
            acks: self.durability.acks,
            client: self.timing.client.clone(),
        }
    }

    fn topic_specs(&self) -> Vec<TopicSpec> {
        let d = &self.durability;
        let mut specs: Vec<TopicSpec> = self
            .topics
            .iter()
            .map(|(name, partitions)| {
                let mut t = TopicSpec::new(name, *partitions);
                t.unclean_leader_election = d.unclean_leader_election;
                t
            })
            .chain([TopicSpec::offsets()])
            .collect();
        for t in &mut specs {
            t.replication_factor = self.replication_factor;
            t.min_insync_replicas = d.min_insync_replicas;
        }
        specs
    }

    fn controller_config(&self, id: u64, cluster: &KafkaCluster) -> ControllerConfig {
        let voters = (1..).zip(cluster.controllers.iter().cloned()).collect();
        let settings = ControllerSettings {
            broker_session_timeout_ms: self.timing.broker_session_timeout_ms,
            topics: cluster.topics.clone(),
        };
        ControllerConfig { cluster: self.prefix.clone(), id, voters, settings }
    }
}

/// A cluster added to a plan: its names, what clients need, and readers of its durable state.
#[derive(Clone, Debug)]
pub struct KafkaCluster {
    prefix: String,
    controllers: Vec<String>,
    /// Broker `i + 1` runs on `brokers[i]`.
    brokers: Vec<String>,
    zones: Vec<String>,
    /// Every topic the controllers create, `__consumer_offsets` last.
    topics: Vec<TopicSpec>,
    acks: Acks,
    client: ClientSettings,
}

impl KafkaCluster {
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn controllers(&self) -> &[String] {
        &self.controllers
    }

    pub fn brokers(&self) -> &[String] {
        &self.brokers
    }

    /// The zones the members are spread over.
    pub fn zones(&self) -> &[String] {
        &self.zones
    }

    /// The broker id of a broker node of this cluster (`kafka-2` → 2).
    pub fn broker_id(&self, node: &str) -> Option<BrokerId> {
        self.brokers.iter().position(|b| b == node).map(|i| i as BrokerId + 1)
    }

    /// The node of broker `id`.
    pub fn broker_node(&self, id: BrokerId) -> Option<&str> {
        let i = usize::try_from(id).ok()?.checked_sub(1)?;
        self.brokers.get(i).map(String::as_str)
    }

    /// The role of `tp`'s leader.
    pub fn role_leader(&self, tp: &TopicPartition) -> String {
        tp.leader_role(&self.prefix)
    }

    /// The role of the active controller.
    pub fn role_active_controller(&self) -> String {
        active_controller_role(&self.prefix)
    }

    /// The role of the controller quorum's Raft leader.
    pub fn role_quorum_leader(&self) -> String {
        quorum_leader_role(&self.prefix)
    }

    /// Every partition of every topic, the data topics' first and `__consumer_offsets`' last.
    pub fn partitions(&self) -> Vec<TopicPartition> {
        self.topics.iter().flat_map(|t| (0..t.partitions).map(|p| TopicPartition::new(&t.name, p))).collect()
    }

    /// The partitions of data topic `topic`.
    pub fn partitions_of(&self, topic: &str) -> Vec<TopicPartition> {
        self.partitions().into_iter().filter(|tp| tp.topic == topic).collect()
    }

    /// The `acks` this cluster's producers use.
    pub fn acks(&self) -> Acks {
        self.acks
    }

    /// The `__consumer_offsets` partition count.
    pub fn offsets_partitions(&self) -> u32 {
        self.topics.iter().find(|t| t.name == OFFSETS_TOPIC).map_or(1, |t| t.partitions)
    }

    /// A client of this cluster over `net`, bootstrapping from every broker.
    pub fn client(&self, ctx: &mut NodeCtx) -> Client {
        Client::new(ctx, self.brokers.clone(), self.client.clone())
    }

    pub fn client_settings(&self) -> &ClientSettings {
        &self.client
    }

    /// Every partition's replicas as their disks hold them at the end of a run, and who leads
    /// it then (the broker claiming its leader role, if exactly one does).
    pub fn final_logs(&self, world: &WorldState) -> BTreeMap<TopicPartition, FinalPartition> {
        self.partitions()
            .into_iter()
            .map(|tp| {
                let holders = world.holders_of(&self.role_leader(&tp));
                let leader = (holders.len() == 1).then(|| holders[0].clone());
                let replicas = self.replicas_on_disk(world, &tp);
                (tp, FinalPartition { leader, replicas })
            })
            .collect()
    }

    /// `group`'s offset commits in the order its offsets partition holds them on the final
    /// leader's disk (`None` if no single broker leads it then). A coordinator that loads the
    /// group folds exactly these, so the last one of a partition is what a consumer that
    /// restarts reads back.
    pub fn final_offset_commits(
        &self,
        world: &WorldState,
        group: &str,
    ) -> Option<Vec<(TopicPartition, CommittedOffset)>> {
        let tp = offsets_partition_for(group, self.offsets_partitions());
        let logs = self.final_logs(world);
        let commits = logs
            .get(&tp)?
            .leader_log()?
            .iter()
            .filter_map(|r| match serde_json::from_str(&r.value) {
                Ok(GroupRecord::Offset { group: g, tp, offset, .. }) if g == group => Some((tp, offset)),
                _ => None,
            })
            .collect();
        Some(commits)
    }

    /// `tp`'s log on each broker's disk. With as many replicas as brokers every broker holds
    /// one; otherwise the replicas are the brokers whose disk has the log (the assignment is
    /// the controllers' choice, made at run time).
    fn replicas_on_disk(&self, world: &WorldState, tp: &TopicPartition) -> BTreeMap<String, Vec<Record>> {
        let every_broker = self.topics.iter().all(|t| t.replication_factor >= self.brokers.len());
        let file = tp.log_file();
        self.brokers
            .iter()
            .filter_map(|b| {
                let disk = world.disks.disk(b);
                let bytes = disk.read(&file).ok();
                if bytes.is_none() && !every_broker {
                    return None;
                }
                Some((b.clone(), super::log::decode(&bytes.unwrap_or_default()).0))
            })
            .collect()
    }
}

/// One partition at the end of a run: every replica's log, read from its broker's disk.
#[derive(Clone, Debug)]
pub struct FinalPartition {
    pub leader: Option<String>,
    pub replicas: BTreeMap<String, Vec<Record>>,
}

impl FinalPartition {
    pub fn leader_log(&self) -> Option<&[Record]> {
        self.replicas.get(self.leader.as_ref()?).map(Vec::as_slice)
    }
}
