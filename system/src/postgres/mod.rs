//! A PostgreSQL-like primary/standby cluster run by Patroni-like agents, behind an HAProxy-like
//! proxy, with WAL archiving and point-in-time restore to an object store in another region.
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
//!   As in PostgreSQL, a commit waiting for the synchronous standby is not visible to other
//!   sessions on the primary until the standby confirms it (it waits before leaving the proc
//!   array); a hot standby shows it once replayed.
//! - **Patroni, as a process of its own** ([`agent`], its sans-IO cycle [`manager`]; [`dcs`],
//!   [`dcs_server`]): one agent per member, a separate node next to its server, holding a leader
//!   key with a lease (`ttl`) in an etcd-like DCS on Raft across three zones, renewed every
//!   `loop_wait`; it drives its server through a local control channel (promote, demote by
//!   restarting in recovery, follow, the synchronous standby's name, the watchdog). The server
//!   knows nothing of the lease: a stalled agent (a fault: pause the `<prefix>-primary-agent`
//!   role) leaves its primary accepting writes, and only the **watchdog** stops it (Patroni's
//!   `watchdog.mode`, a cluster knob, on by default): unpetted, it resets the machine before the
//!   lease can expire in the DCS (observation `pg.watchdog_reset`). `synchronous_mode` with the
//!   `/sync` key (only the synchronous standby or the old leader may take over, so a failover
//!   never loses a synchronously committed transaction); losing every healthy standby degrades
//!   to `/sync = none` (observation `pg.sync_degraded`), or, with `synchronous_mode_strict` (a
//!   knob), blocks synchronous commits instead; promotion of the most advanced eligible member;
//!   the old primary demoted, restarted as a standby and rewound.
//! - **An HAProxy-like proxy** ([`proxy`]): clients connect to it, never to the DCS; it checks
//!   every agent's `/primary` (`inter`, `rise 2`, `fall 3`) and forwards each connection to a
//!   member up; a connection stays on its member until that fails, answers "not primary", or
//!   (with `on-marked-down shutdown-sessions`, a knob, off by default) is marked down.
//! - **Backups** ([`archive`]): `archive_timeout`-driven WAL archiving, periodic base backups,
//!   and restore to a `recovery_target_time` on the latest timeline.
//! - **A cluster as a unit** ([`cluster`]): servers, agents, DCS, proxy and backup store named
//!   under one prefix (roles too), so several clusters share a world; members report
//!   promotions, demotions, flush positions, rewinds, degradations and watchdog resets as typed
//!   observations ([`observe`]).
//!
//! # Defaults copied (all timeouts scaled by one factor, see [`manager::Timing`])
//! Patroni `ttl` 30 s, `loop_wait` 10 s, `retry_timeout` 10 s, `watchdog.safety_margin` 5 s;
//! PostgreSQL `wal_sender_timeout` and `wal_receiver_timeout` 60 s; HAProxy `inter 3s`: all
//! divided by 5 in simulation, so `wal_sender_timeout` stays longer than `ttl` and
//! `loop_wait + 2 * retry_timeout <= ttl`. `synchronous_mode: true`,
//! `synchronous_mode_strict: false`, `watchdog.mode: required`, `master_start_timeout` 0;
//! `synchronous_commit = on` for credentials and permissions, `local` otherwise;
//! `archive_timeout` 1 s, `recovery_target_inclusive = on`, `recovery_target_timeline = latest`.
//!
//! # What it leaves out
//! SQL, MVCC and locks (transactions are serialized by the primary's single WAL order; the
//! snapshot a session reads is the flushed state minus commits still waiting for the standby),
//! checkpoints and WAL recycling (a restart replays the whole WAL), `synchronous_commit` levels
//! `off`, `remote_write` and `remote_apply`, quorum commit (`ANY n`), cancelling a commit's
//! wait for the standby (which in PostgreSQL makes it visible unreplicated), cascading
//! replication, replication slots, `maximum_lag_on_failover`, Patroni's failsafe mode, its
//! `/optime` and `/members` keys (agents poll each other directly instead), a REST API thread
//! that answers while the HA loop hangs (the agent stalls as a whole), demoting on one failed
//! renewal (the agent demotes when its own view of the lease runs out), the agent restarting a
//! crashed postmaster (a dead server's agent releases the key), the watchdog reset as a power
//! loss (it stops the server and restarts it from disk; unsynced page-cache data survives),
//! HAProxy's replica listener (clients read from replicas directly), byte-addressed LSNs
//! (positions count records), and WAL segment files (archive segments are whatever was flushed
//! in one interval). The control channel is a network link between two nodes of one zone (a
//! local socket in reality): schedules must not cut an agent from its own server.

pub mod agent;
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
pub mod proxy;
pub mod replication;
mod standby;
pub mod timeline;
pub mod wal;

pub use client::{Executed, PgClient};
pub use cluster::{PgCluster, PgClusterSpec};
pub use node::{run, PgConfig};
