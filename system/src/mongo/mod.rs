//! A MongoDB-like sharded cluster: replica sets with pv1 elections, oplog replication with
//! `w:1` / `w:majority` write concerns and `local` / `majority` read concerns, rollback, a
//! config-server replica set holding the shard map and distributed locks, and a router.
//!
//! Every process is a node of the simulated world and touches it only through the seams
//! ([`sim::NodeCtx`]), so the same code runs under madsim, turmoil and the real runtime.
//!
//! ```text
//!  app ── Router (mongos, in-process) ──┬── mongo-shard-a: replica set of 3 mongods (one per zone)
//!                                       ├── mongo-shard-b: replica set of 3 mongods
//!                                       └── mongo-config:  replica set of 3 mongods (shard map, locks)
//! ```
//!
//! A scenario builds a cluster with [`cluster::MongoClusterSpec`] (names namespaced by a prefix,
//! here `mongo`), and learns what happened from typed observations ([`observe`]) and from the
//! members' disks ([`cluster::MongoCluster::oplogs_on_disk`]).
//!
//! # What it models
//! - **Replica sets** ([`replset`], sans-IO, driven by [`mongod`]): terms, one durable vote per
//!   term, dry-run elections, priorities and priority takeover, heartbeats, the election
//!   timeout, stepping down without a majority or on a newer term.
//! - **Replication** ([`oplog`], [`replset`]): a primary applies writes to its oplog at once;
//!   secondaries pull the oplog, journal it and report their durable optime; the majority
//!   commit point advances over entries of the current term. `w:1` is acknowledged after the
//!   primary's in-memory apply (before its journal flush), `w:majority` once the commit point
//!   covers the write. `readConcern: "local"` reads the newest applied data on the primary,
//!   `"majority"` reads at the commit point ([`store`] keeps every version).
//! - **Disk faults**: a mongod stops on an I/O error rather than pass over it, and a member that
//!   finds synced records damaged votes for no one and counts towards no majority until it has
//!   repaired itself from its peers ([`mongod`]).
//! - **Rollback**: a member whose oplog diverged from the primary's (a deposed primary's
//!   unreplicated writes) truncates to the common point and undoes its data, writing what it
//!   undid to a rollback file. So `w:1` writes can be lost; `w:majority` writes cannot.
//! - **Sharding** ([`shard_map`], [`router`]): two or more shards, each a replica set; a config
//!   server replica set holds `config.shards` and `config.chunks`; the router routes each
//!   operation by the hashed document id and rediscovers primaries after failovers.
//! - **Distributed locks** ([`locks`]): in `config.locks`, a lease plus a fencing token that
//!   grows with every grant; shards reject writes carrying a token below the highest they
//!   accepted for that lock ([`writes`]).
//! - **The stack's collections** ([`collections`]): versioned immutable snapshots, CRDT
//!   operations stored idempotently by (client id, clock), per-document version vectors, and the
//!   consumer's last processed position.
//!
//! # What it leaves out
//! Reconfiguration, arbiters and non-voting members, chained replication, primary catch-up
//! (`catchUpTimeoutMillis` taken as 0), catch-up takeover, `replSetStepDown` and election
//! handoff, reads from secondaries, causal sessions, multi-document transactions, chunk
//! migration and the balancer, oplog size limits, the query language (reads are by id prefix),
//! indexes, authentication, and BSON: documents are JSON, kept and shipped as their text
//! ([`document`]), inside postcard frames and oplog records.
//!
//! # Defaults copied from MongoDB
//! `settings.heartbeatIntervalMillis` 2000, `settings.electionTimeoutMillis` 10000,
//! `electionTimeoutOffsetLimitFraction` 0.15, `priorityTakeoverFreshnessWindowSeconds` 2, the
//! priority takeover delay `(priority rank + 1) * electionTimeoutMillis`, the oplog fetcher's
//! await time of half the election timeout, `storage.journal.commitIntervalMs` 100,
//! `writeConcernMajorityJournalDefault` true, member `priority` 1, port 27017. Timeouts are not
//! scaled for simulation: madsim skips idle time, and scenarios size their runs around them.

pub mod cluster;
pub mod collections;
pub mod document;
pub mod locks;
pub mod mongod;
pub mod observe;
pub mod oplog;
pub mod protocol;
pub mod replset;
pub mod router;
pub mod shard_map;
pub mod store;
pub mod writes;

pub use cluster::{MongoCluster, MongoClusterSpec, SetSpec};
pub use document::Document;
pub use mongod::{run as run_mongod, ClusterRole, Flaw, MongodConfig};
pub use observe::{FencedOut, LockGranted, MajorityRead, MemberEvent, WriteAcked};
pub use oplog::{Fence, OpTime, OplogEntry};
pub use protocol::{ReadConcern, WriteConcern, WriteOp};
pub use replset::{MemberConfig, SetConfig, Settings};
pub use router::{LockGrant, RouteError, Router, RouterConfig, RouterSettings, Written};
pub use shard_map::ShardMap;
