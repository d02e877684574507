//! Settings, under Kafka's own names, with the defaults this model copies.
//!
//! Timeouts are scaled down for simulation (a 60 s run cannot wait out Kafka's 45 s consumer
//! session); each field says the real default and the factor. Durability settings keep their
//! real meaning: `acks`, `min.insync.replicas`, `unclean.leader.election.enable`.

use serde::{Deserialize, Serialize};

use super::topic::{BrokerId, OFFSETS_TOPIC};

/// `acks` on a producer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Acks {
    /// `acks=1`: the leader acknowledges once the record is in its own log.
    Leader,
    /// `acks=all` (`-1`, Kafka's default since 3.0): acknowledged once every in-sync replica has
    /// it (the high watermark passed it) and the ISR has at least `min.insync.replicas` members.
    All,
}

/// A topic as the controller creates it; carried in the metadata log like Kafka's topic and
/// config records, so every broker applies the same settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: u32,
    /// `replication.factor` (3 here; Kafka's `default.replication.factor` is 1,
    /// `offsets.topic.replication.factor` is 3).
    pub replication_factor: usize,
    /// `min.insync.replicas`: Kafka's broker default is 1; the recommended production value, and
    /// this model's default, is 2.
    pub min_insync_replicas: usize,
    /// `unclean.leader.election.enable` (default false): with it, a replica outside the ISR may
    /// become leader when no in-sync replica is alive, losing what only the ISR had.
    pub unclean_leader_election: bool,
}

impl TopicSpec {
    pub fn new(name: &str, partitions: u32) -> Self {
        TopicSpec {
            name: name.into(),
            partitions,
            replication_factor: 3,
            min_insync_replicas: 2,
            unclean_leader_election: false,
        }
    }

    /// `__consumer_offsets`: `offsets.topic.num.partitions` is 50 in Kafka, 1 here (one group).
    pub fn offsets() -> Self {
        TopicSpec::new(OFFSETS_TOPIC, 1)
    }
}

/// The controller quorum's settings (KRaft).
#[derive(Clone, Debug)]
pub struct ControllerSettings {
    /// `broker.session.timeout.ms`: 9000 in Kafka, 2000 here (scaled about 1/4.5).
    pub broker_session_timeout_ms: u64,
    /// Topics created once enough brokers have registered (`replication_factor` of them).
    pub topics: Vec<TopicSpec>,
}

impl Default for ControllerSettings {
    fn default() -> Self {
        ControllerSettings { broker_session_timeout_ms: 2_000, topics: Vec::new() }
    }
}

/// A broker's settings.
#[derive(Clone, Debug)]
pub struct BrokerSettings {
    /// The cluster's name: it namespaces the roles the broker claims (see
    /// [`super::topic::TopicPartition::leader_role`]).
    pub cluster: String,
    pub broker_id: BrokerId,
    /// `broker.heartbeat.interval.ms`: 2000 in Kafka, 500 here.
    pub heartbeat_interval_ms: u64,
    /// `replica.lag.time.max.ms`: 30000 in Kafka, 3000 here (scaled 1/10). A follower that has
    /// not caught up with the leader's log end for this long leaves the ISR.
    pub replica_lag_time_max_ms: u64,
    /// `replica.fetch.wait.max.ms` (500, unscaled): how long a follower's fetch waits at the
    /// leader for new data.
    pub replica_fetch_wait_max_ms: u64,
    /// `replica.fetch.backoff.ms`: 1000 in Kafka, 200 here.
    pub replica_fetch_backoff_ms: u64,
    /// Records per fetch response (stands in for `replica.fetch.max.bytes`).
    pub fetch_max_records: u32,
    /// `replica.high.watermark.checkpoint.interval.ms`: 5000 in Kafka, 1000 here.
    pub hw_checkpoint_interval_ms: u64,
    /// How long dirty log pages wait before the OS writes them back. Kafka never fsyncs a
    /// write by default (`flush.messages` and `log.flush.interval.ms` are effectively
    /// infinite) and relies on replication; Linux's `vm.dirty_expire_centisecs` is 30 s,
    /// 1000 ms here (scaled 1/30). A crash loses what was written since the last writeback.
    pub writeback_interval_ms: u64,
    /// How long an `AlterPartition` may stay unanswered (in the metadata) before it is sent again.
    pub alter_partition_retry_ms: u64,
    /// Not a Kafka setting: `false` plants a broken leader that ignores producer ids and
    /// sequence numbers, appending every retried batch again (for proving the duplicates
    /// checker can fail).
    pub dedup_retries: bool,
    pub group: GroupSettings,
}

impl BrokerSettings {
    pub fn new(cluster: &str, broker_id: BrokerId) -> Self {
        BrokerSettings {
            cluster: cluster.into(),
            broker_id,
            heartbeat_interval_ms: 500,
            replica_lag_time_max_ms: 3_000,
            replica_fetch_wait_max_ms: 500,
            replica_fetch_backoff_ms: 200,
            fetch_max_records: 200,
            hw_checkpoint_interval_ms: 1_000,
            writeback_interval_ms: 1_000,
            alter_partition_retry_ms: 1_000,
            dedup_retries: true,
            group: GroupSettings::default(),
        }
    }
}

/// The group coordinator's settings.
#[derive(Clone, Debug)]
pub struct GroupSettings {
    /// `session.timeout.ms` (a consumer setting the coordinator enforces): 45000 in Kafka,
    /// 4500 here (scaled 1/10).
    pub session_timeout_ms: u64,
    /// `rebalance.timeout.ms` (= the consumer's `max.poll.interval.ms`, 300000): 5000 here.
    pub rebalance_timeout_ms: u64,
    /// `group.initial.rebalance.delay.ms`: 3000 in Kafka, 300 here.
    pub initial_rebalance_delay_ms: u64,
    /// Not a Kafka setting: refuse an `OffsetCommit` whose `commit_seq` is older than one
    /// already accepted from the same member (see [`super::coordinator`]). `false` behaves as
    /// Kafka does, where such a late commit overwrites a newer one.
    pub fence_late_commits: bool,
}

impl Default for GroupSettings {
    fn default() -> Self {
        GroupSettings {
            session_timeout_ms: 4_500,
            rebalance_timeout_ms: 5_000,
            initial_rebalance_delay_ms: 300,
            fence_late_commits: true,
        }
    }
}

/// Client settings (producer and consumer).
#[derive(Clone, Debug)]
pub struct ClientSettings {
    /// `request.timeout.ms`: 30000 in Kafka, 3000 here.
    pub request_timeout_ms: u64,
    /// `retry.backoff.ms` (100, unscaled).
    pub retry_backoff_ms: u64,
    /// `fetch.max.wait.ms` (consumer): 500 in Kafka, 200 here.
    pub fetch_max_wait_ms: u64,
    /// `heartbeat.interval.ms` (consumer): 3000 in Kafka, 500 here.
    pub heartbeat_interval_ms: u64,
    /// `max.in.flight.requests.per.connection` (producer): 5, Kafka's default and the most
    /// idempotence allows. Here it bounds the produce requests one partition's producer has
    /// outstanding at once.
    pub max_in_flight_requests: usize,
    /// `enable.idempotence` (producer; default true since Kafka 3.0): batches carry a producer
    /// id and sequence numbers, so the leader appends each batch once and in order. Off, a
    /// retried batch may be appended twice, and with more than one request in flight, after a
    /// batch that went after it.
    pub enable_idempotence: bool,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            request_timeout_ms: 3_000,
            retry_backoff_ms: 100,
            fetch_max_wait_ms: 200,
            heartbeat_interval_ms: 500,
            max_in_flight_requests: 5,
            enable_idempotence: true,
        }
    }
}
