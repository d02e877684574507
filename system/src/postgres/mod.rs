//! A PostgreSQL-like primary/standby cluster run by a Patroni-like failover manager, with WAL
//! archiving and point-in-time restore to an object store in another region.
//!
//! # What it models
//! - **WAL** ([`wal`]): checksummed records on the disk seam; a commit is fsynced before it is
//!   acknowledged; a torn or corrupt record is detected by its checksum on load and never
//!   applied. A node whose WAL lost synced records marks itself damaged (durably), refuses reads
//!   and promotion, and repairs itself by streaming the missing tail from the primary.
//! - **Streaming replication** ([`member`], a sans-IO core with table tests; [`timeline`]; the
//!   shells `node`, `primary`, `standby`): standbys stream flushed WAL, flush it, apply it and
//!   report `flush`/`replay` positions; hot standbys serve (stale) reads with their lag.
//!   Timelines are epochs; a standby that diverged rewinds to the new primary's timeline before
//!   streaming (`pg_rewind`).
//! - **`synchronous_commit` per table class** ([`data::Durability`]): `on` (credentials and
//!   permissions) waits for the synchronous standby's flush, `local` (tenants, users) does not.
//!   As in PostgreSQL, a transaction is visible on the primary once flushed locally, before the
//!   synchronous standby confirms it.
//! - **Patroni** ([`manager`], [`dcs`], [`dcs_server`]): a leader key with a lease (`ttl`) in an
//!   etcd-like DCS on Raft across three zones, renewed every `loop_wait`, writes fenced by the
//!   lease and by the epoch each write names; `synchronous_mode` with the `/sync` key (only the
//!   synchronous standby or the old leader may take over, so a failover never loses a
//!   synchronously committed transaction); promotion of the most advanced eligible member;
//!   the old primary demoted, restarted as a standby and rewound.
//! - **Backups** ([`archive`]): `archive_timeout`-driven WAL archiving, periodic base backups,
//!   and restore to a `recovery_target_time` on the latest timeline.
//! - **A cluster as a unit** ([`cluster`]): members, DCS and backup store named under one prefix
//!   (roles too), so several clusters share a world; members report promotions, demotions,
//!   flush positions and rewinds as typed observations ([`observe`]).
//!
//! # Defaults copied (scaled for simulation, see [`manager::Timing::simulation`])
//! Patroni `ttl` 30 s → 6 s, `loop_wait` 10 s → 1 s, `retry_timeout` 10 s → 2 s,
//! `synchronous_mode: true`, `synchronous_mode_strict: false`, `master_start_timeout` 300 s → 0;
//! PostgreSQL `wal_sender_timeout` and `wal_receiver_timeout` 60 s → 3 s,
//! `synchronous_commit = on` for credentials and permissions, `local` otherwise,
//! `archive_timeout` 1 s, `recovery_target_inclusive = on`, `recovery_target_timeline = latest`.
//!
//! # What it leaves out
//! SQL, MVCC and locks (transactions are serialized by the primary's single WAL order),
//! checkpoints and WAL recycling (a restart replays the whole WAL), `synchronous_commit` levels
//! `off`, `remote_write` and `remote_apply`, quorum commit (`ANY n`), cascading replication,
//! replication slots, `maximum_lag_on_failover`, Patroni's failsafe mode and the `/optime` and
//! `/members` keys (members are polled directly instead), byte-addressed LSNs (positions count
//! records), and WAL segment files (archive segments are whatever was flushed in one interval).

pub mod archive;
pub mod client;
pub mod cluster;
pub mod data;
pub mod dcs;
pub mod dcs_client;
pub mod dcs_server;
pub mod manager;
pub mod member;
mod node;
pub mod observe;
pub mod planted;
mod primary;
pub mod protocol;
pub mod replication;
mod standby;
pub mod timeline;
pub mod wal;

pub use client::{Executed, PgClient};
pub use cluster::{PgCluster, PgClusterSpec};
pub use node::{run, PgConfig};
