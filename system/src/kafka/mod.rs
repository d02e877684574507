//! A Kafka-like replicated log: brokers with partition replicas, a KRaft-style controller
//! quorum, idempotent producers and consumer groups, built only on the `sim` seams.
//!
//! # What it models
//! - **Controller quorum (KRaft).** Three controllers run the project's Raft
//!   ([`crate::consensus`]) as the `__cluster_metadata` log. The active controller (the Raft
//!   leader, once it applied its term's first entry) registers brokers from their heartbeats
//!   (`broker.heartbeat.interval.ms`), fences a broker whose session expires
//!   (`broker.session.timeout.ms`), registers a restarted broker as a new, fenced life that
//!   leaves every ISR (KIP-903), unfences a broker once it has caught up with the metadata log,
//!   applies leaders' `AlterPartition` requests (rejecting fenced replicas, KIP-841) and elects
//!   partition leaders: the first live ISR member in assignment order, or — only with
//!   `unclean.leader.election.enable` — the first live replica at all. The last ISR member stays
//!   in the ISR when it dies, so the partition waits for it (Kafka before KIP-966's ELR).
//!   Brokers learn the metadata image from their heartbeat responses (real KRaft brokers fetch
//!   the metadata log itself; the image here is small).
//! - **Partitions** ([`partition`]): replication factor 3, leader epochs, follower fetching
//!   with long polls (`replica.fetch.wait.max.ms`), ISR shrink after `replica.lag.time.max.ms`
//!   without catching up and expansion once a follower reaches the high watermark, the high
//!   watermark as the smallest log end offset over the (maximal, KIP-497) ISR, and follower
//!   truncation by diverging epoch (KIP-595 fetch): a follower drops whatever a deposed leader
//!   appended that the new leader does not have.
//! - **Durability settings.** `acks=all` (default) acknowledges once the high watermark passed
//!   the batch and the ISR has at least `min.insync.replicas` (default here 2; Kafka's broker
//!   default is 1) members, else `NOT_ENOUGH_REPLICAS` / `NOT_ENOUGH_REPLICAS_AFTER_APPEND`.
//!   `acks=1` acknowledges after the leader's own append, so a leader that is deposed (cut from
//!   the controller) or dies before its followers fetch loses acknowledged records — as Kafka
//!   does. Unclean election loses whatever only the ISR had.
//! - **Disk.** Logs are checksummed records ([`sim::disk::records`]); torn tails are cut on
//!   recovery. Kafka does not fsync produced records (`flush.messages`,
//!   `log.flush.interval.ms` are effectively infinite) and relies on replication: the broker
//!   here never fsyncs a log either; the OS writes dirty pages back every
//!   `writeback_interval_ms` (Linux `vm.dirty_expire_centisecs`, scaled). A crash loses what was
//!   written since. So `acks=all` survives any one broker crash, but crashes of every ISR member
//!   within one writeback interval can lose acknowledged records, exactly as in Kafka; the
//!   `kafka-partition` scenario keeps its kills further apart than that (see its schedule).
//!   High watermarks are checkpointed (`replication-offset-checkpoint`) every
//!   `replica.high.watermark.checkpoint.interval.ms`.
//! - **Idempotent producers** ([`idempotence`]): producer id and per-partition sequence numbers;
//!   a retried batch is answered with its original offset, never appended twice; a gap is
//!   `OUT_OF_ORDER_SEQUENCE_NUMBER`. The table is rebuilt from the log on recovery and after a
//!   truncation, so a new leader deduplicates retries of batches its predecessor appended.
//!   Producers keep up to `max.in.flight.requests.per.connection` (5) batches outstanding per
//!   partition; a batch that reaches the leader before its predecessor is refused
//!   (`OUT_OF_ORDER_SEQUENCE_NUMBER`) and sent again after it, so records stay in order. With
//!   `enable.idempotence=false` retried batches may land twice or out of order, as in Kafka.
//! - **Consumer groups** ([`coordinator`]): the coordinator is the leader of the group's
//!   `__consumer_offsets` partition; JoinGroup / SyncGroup / Heartbeat / LeaveGroup with
//!   generations, `session.timeout.ms`, `rebalance.timeout.ms`,
//!   `group.initial.rebalance.delay.ms`; eager rebalancing when a member joins, leaves or its
//!   session expires; offset commits and group metadata written to `__consumer_offsets` with
//!   `acks=all` semantics (`offsets.commit.required.acks=-1`) and answered once committed, so a
//!   new coordinator loads exactly what was acknowledged and a restarted consumer resumes from
//!   its group's last commit. Beyond Kafka, a commit also carries the member's `commit_seq`
//!   and the coordinator refuses one older than a commit it already accepted from that member:
//!   Kafka's generation and member-epoch fences do not stop a late copy of a timed-out
//!   `OffsetCommit` from overwriting the member's newer commit (the coordinator module says
//!   when that happens, what Kafka users do about it, and why the model fences it here;
//!   `GroupSettings::fence_late_commits = false` gives Kafka's behaviour).
//! - **Clients** ([`client`]): metadata that never goes back to an older leader epoch, a
//!   producer that retries a batch until acknowledged, a group member. Committed offsets carry
//!   the leader epoch of the last consumed record (KIP-320), and a consumer whose metadata is
//!   older than that refreshes it before fetching, rather than asking a deposed leader (whose
//!   shorter log would answer `OFFSET_OUT_OF_RANGE` and reset the position).
//!
//! - **Clusters and observations.** [`cluster`] adds a whole cluster (controllers, brokers,
//!   topics, durability, timing) to a plan under a name prefix that namespaces its node and
//!   role names, and reads its members' logs back from their disks; [`observations`] are the
//!   typed facts controllers and clients report to checkers.
//!
//! # What it leaves out
//! Segments, retention and compaction (the log starts at offset 0 forever); transactions and
//! producer epochs (a producer session that sees a sequence gap starts a new producer id —
//! Kafka allocates ids through the controller, here a client derives unique ones); the
//! broker's five-batch dedup window (the table keeps every sequence); one ordered connection
//! per broker (the model's producer sends a window's batches on pooled connections, so they
//! can arrive in any order, which only makes its ordering harder to keep); controlled
//! shutdown; preferred-leader rebalancing
//! (`auto.leader.rebalance.enable`); partition reassignment; static membership and the
//! KIP-848 protocol; rack awareness; quotas; the metadata log's snapshots; group assignment by
//! the group's leader member (the coordinator computes a range assignment itself).
//!
//! # Defaults copied (and scaled for simulated runs of about a minute)
//! See [`config`]: every setting is under its Kafka name with Kafka's default and the scale.
//! Notably `broker.session.timeout.ms` 9000 → 2000, `broker.heartbeat.interval.ms` 2000 → 500,
//! `replica.lag.time.max.ms` 30000 → 3000, `session.timeout.ms` 45000 → 4500,
//! `request.timeout.ms` 30000 → 3000, `controller.quorum.election.timeout.ms` 1000 (unscaled).

pub mod broker;
pub mod broker_node;
pub mod client;
pub mod cluster;
pub mod config;
pub mod controller;
pub mod controller_node;
pub mod coordinator;
pub mod idempotence;
pub mod log;
pub mod metadata;
pub mod observations;
pub mod partition;
pub mod protocol;
#[cfg(test)]
mod tests;
pub mod topic;

pub use cluster::{Durability, KafkaCluster, KafkaClusterSpec};
pub use config::{Acks, BrokerSettings, ClientSettings, ControllerSettings, GroupSettings, TopicSpec};
pub use controller_node::ControllerConfig;
pub use metadata::Applied;
pub use topic::{BrokerId, Record, TopicPartition, OFFSETS_TOPIC};

/// FNV-1a over `bytes`: a hash that is the same on every platform and run.
pub fn fnv(bytes: &[u8]) -> u64 {
    sim::trace::fnv1a(0xcbf2_9ce4_8422_2325, bytes)
}
