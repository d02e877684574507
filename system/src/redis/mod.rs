//! A Redis-like cache: a master with asynchronously replicated replicas, watched by Sentinels
//! that fail it over, and clients that find the master through the Sentinels.
//!
//! # What it models
//! - **Cache semantics** ([`keyspace`]): `GET`/`SET [PX]`/`DEL`, keys expiring at absolute
//!   times (lazily on access and by the active expire cycle on the master, deletions propagated
//!   to replicas; replicas hide logically expired keys). Nothing is persisted (`save ""`,
//!   `appendonly no`, as cache deployments run it): a restarted node starts empty, and a power
//!   loss of every member loses the whole dataset (with `appendonly yes` and `appendfsync
//!   everysec` Redis would lose up to about a second of acknowledged writes instead, and none
//!   with `appendfsync always`; AOF is not modelled). What survives a power loss is each node's
//!   `redis.conf` and each Sentinel's `sentinel.conf`, both written to a temporary file, fsynced
//!   and renamed.
//! - **Asynchronous replication** ([`replication`], a sans-IO core with table tests, run by the
//!   [`server`] shell): a write is acknowledged once applied in the
//!   master's memory and streamed to replicas afterwards, so a failover loses the writes the
//!   promoted replica had not received, and an old master cut off from the Sentinels but not
//!   from clients keeps acknowledging writes that are thrown away when it is turned into a
//!   replica (full resynchronisation). `PSYNC` resumes from the backlog when it can (PSYNC2:
//!   a promoted replica keeps its old replication id valid up to the promotion point).
//!   `replica-read-only yes`, `replica-serve-stale-data yes`; `min-replicas-to-write` (0 by
//!   default) with `min-replicas-max-lag` makes a master cut off from its replicas refuse writes
//!   (`NOREPLICAS`) once their acknowledgements are older than the lag.
//! - **Sentinel** ([`sentinel`], [`sentinel_node`]): SDOWN after `down-after-milliseconds`,
//!   ODOWN at `quorum`, leader election by epoch votes, replica selection, promotion, replica
//!   reconfiguration, configuration epochs spread by hello messages, and reconversion of an old
//!   master that comes back. A Sentinel saves `sentinel.conf` before it releases a vote or acts
//!   on a new epoch, and stops (fail-stop) when the save fails or the file cannot be read back.
//! - **Clients** ([`client`]): discovery through the Sentinels with a `ROLE` check, rediscovery
//!   on errors and `READONLY`, and following announced failovers.
//! - **Deployment** ([`cluster`]): a spec that adds members and Sentinels to a plan under a name
//!   prefix (so clusters coexist in one world) and a handle with node and role names, a client
//!   config and readers of the members' durable configuration. Nodes and Sentinels report what
//!   they do as typed [`observations`].
//!
//! # Defaults copied (scaled for simulation)
//! Sentinel `quorum` 2, `down-after-milliseconds` 30000 → 3000, `failover-timeout`
//! 180000 → 6000, `min-replicas-max-lag` 10 s → 2 s, ping period 1 s, ask period 1 s, hello period 2 s; Redis `repl-timeout`
//! 60 s → 3 s, `repl-backlog-size` 1 MB → 10000 writes, `replica-priority` 100.
//!
//! # What it leaves out
//! RESP and every other command and data type, eviction (`maxmemory`), RDB/AOF persistence,
//! `WAIT` (so no write is acknowledged by replicas: every acknowledged write may be lost at a
//! failover), Redis Cluster, Sentinel auto-discovery (peers and replicas are configured), TILT
//! mode, `parallel-syncs`, and replication on the client port (a separate port here).

pub mod client;
pub mod cluster;
pub mod keyspace;
pub mod observations;
pub mod planted;
pub mod protocol;
pub mod replication;
pub mod sentinel;
pub mod sentinel_node;
pub mod server;

pub use client::{ClientConfig, RedisClient, RedisError};
pub use cluster::{RedisCluster, RedisClusterSpec};
pub use observations::{RoleChanged, SentinelObserved};
pub use server::{run, RedisConfig, Roles};
