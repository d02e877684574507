//! `postgres-failover`: a PostgreSQL-like cluster (primary, synchronous standby, asynchronous
//! replica, one per zone) run by a Patroni-like manager over a three-zone DCS, under a load of
//! sign-ups, permission grants and revocations (`synchronous_commit = on`), profile updates and
//! tenant creation (`local`), while the primary is killed, isolated, partitioned, paused or
//! crash-restarted at seeded moments (see [`schedule`]).
//!
//! Checked ([`checker`]): every acknowledged commit by its class (`on` never lost; `local` lost
//! only to a failover, and then counted with it); no primary of an older epoch acknowledges after
//! a newer primary accepted its first write (the dual-writer window is measured); replicas never
//! serve a row the primary had not committed; after each fault that took the primary away, a
//! primary accepts writes within [`FAILOVER_BOUND_MS`]; after the heal, commits resume and every
//! member converges on the primary's WAL. The checkers read fault times from the faults the
//! world applied, so any schedule (`run --schedule`, a shrunk one, `[]`) is judged by the same
//! rules. The deciding windows are probes ([`probes`]) a sweep must reach at a minimum rate.
//!
//! Configs. Unsafe, each a bug the checkers must catch: `async-credentials` (credentials on
//! `local` commit: failovers lose acknowledged sign-ups), `pg-replica-reads` (register reads from
//! any member: stale reads make the history not linearizable), `pg-no-watchdog` (Patroni's
//! watchdog off: a stalled agent leaves the old primary acknowledging for the sessions it has after
//! a newer primary's first write, which the fencing check reports as split brain),
//! `pg-ack-before-fsync` (the primary answers `local` commits before its fsync: the power loss
//! that ends the run takes them; see [`system::postgres::planted`]), `pg-send-unflushed` (the
//! walsender streams WAL before the primary's fsync: a replica serves a commit its primary then
//! loses, reported as replica ahead of primary) and `pg-skip-rewind` (a rejoining standby keeps
//! the records the new timeline discarded: replicas diverged). Safe: `pg-sync-strict`
//! (`synchronous_mode_strict`: synchronous commits block while no standby is healthy, instead of
//! degrading to `/sync = none`).
//!
//! The run ends (`sim::ending`) with a power loss of every server and a recovery: durability is
//! judged from the members' WAL as their disks hold it after that recovery, not from what a
//! member said it flushed; a verifier reads every register back through the proxy.
//!
//! For the availability report every workload operation is recorded as it completes
//! (`sim::observation::OpOutcome`, with its simulated latency) in one of two classes: [`COMMIT`],
//! a transaction that writes (the auth load's sign-ups, grants, revocations, profile updates and
//! tenant creations, the register writes, the multi-key transactions), successful when the store
//! acknowledged it, failed when it was rejected or its fate is unknown (no answer within the 4 s
//! budget); and [`READ`], a read (the register reads and group scans on the primary, the auth
//! load's permission scans on a random member), successful when served. The verifier's reads
//! after the final power loss are not counted. Data lost: every acknowledged commit missing from
//! the final primary's recovered WAL, as `commit` (`synchronous_commit = on`) or `local commit`
//! (`local`, whether or not a failover allowed its loss).

pub(crate) mod checker;
pub(crate) mod history;
pub(crate) mod probes;
pub mod registers;
mod schedule;
pub mod transactions;
mod workload;

use sim::{node_main, Ending, Plan, Topology};
use system::postgres::data::Durability;
use system::postgres::planted::Planted;
use system::postgres::{PgCluster, PgClusterSpec};

use crate::scenario::{Built, Scenario, WindowProbe};
use checker::{LivenessChecker, SafetyChecker};
use sim::ratio::Ratio;

pub static SCENARIO: Scenario = Scenario {
    name: "postgres-failover",
    about: "PostgreSQL-like primary/standby with a Patroni-like manager: kill, isolate, partition or pause the primary under sign-ups and permission changes",
    configs: &[
        ("async-credentials", "credentials on asynchronous commit (unsafe): failovers must lose acknowledged sign-ups"),
        (registers::REPLICA_READS, "register reads from any member (unsafe): stale reads must make the history not linearizable"),
        ("pg-no-watchdog", "Patroni's watchdog off (unsafe): a stalled agent leaves the old primary committing after a failover"),
        ("pg-ack-before-fsync", "the primary acknowledges local commits before its fsync (unsafe): a power loss loses them"),
        ("pg-send-unflushed", "the walsender streams WAL before the primary's fsync (unsafe): a replica serves what its primary then loses"),
        ("pg-skip-rewind", "a rejoining standby keeps its log without rewinding to the new timeline (unsafe): replicas diverge"),
        ("pg-sync-strict", "synchronous_mode_strict: commits block rather than degrade to /sync = none"),
    ],
    sweep_must_reach: &[
        "fault.kill",
        "fault.isolate",
        "fault.partition",
        "fault.pause",
        "pg.bootstrapped",
        "pg.sync_standby_named",
        "pg.promoted_standby",
        "pg.demoted",
        "pg.rewind",
        "pg.wal_corruption_detected",
        "pg.wal_repaired_from_peer",
        "pg.replica_read",
        "pg.wal_archived",
        "pg.base_backup",
    ],
    window_probes: &[
        // Measured over seeds 0..300: 287, 202, 68 and 44 runs; each minimum about half of that.
        WindowProbe { name: probes::ON_COMMIT_IN_FLIGHT_AT_FAILOVER, min_rate: Ratio::new(1, 2) },
        WindowProbe { name: probes::PRIMARY_CRASH_RESTARTED_IN_LEASE, min_rate: Ratio::new(1, 3) },
        WindowProbe { name: probes::CRASH_WITHOUT_SYNC_STANDBY, min_rate: Ratio::new(1, 9) },
        WindowProbe { name: probes::SYNC_STANDBY_DEGRADED, min_rate: Ratio::new(1, 14) },
    ],
    draw: |seed, _config| schedule::draw(seed, &names()),
    build,
};

/// Every postgres scenario's cluster: members `pg-1`..`pg-3`, one per zone.
pub const PREFIX: &str = "pg";
/// The application node running the workload.
pub const CLIENT: &str = "app-1";
/// The availability report's class of a writing transaction.
pub const COMMIT: &str = "commit";
/// The availability report's class of a read.
pub const READ: &str = "read";
/// The drawn schedules heal everything here.
pub const HEAL_AT_MS: u64 = 30_000;
/// Writers stop here, so that by the end every member has caught up.
pub const WORKLOAD_END_MS: u64 = 41_000;
pub const DURATION_MS: u64 = 45_000;
/// The run's ending: healed and quiet, then every server loses power and recovers; the checkers
/// read the members' WAL from the recovered disks.
const ENDING: Ending = Ending { settle_ms: 3_000, recover_ms: 12_000 };
/// A new primary must accept writes within this long of the fault (a 6 s lease, which a new
/// DCS leader restarts in full, and a 2 s `loop_wait`: Patroni's defaults divided by 5).
pub const FAILOVER_BOUND_MS: u64 = 16_000;
/// Commits must resume after the last heal when at least this much workload follows it.
pub const RESUME_WINDOW_MS: u64 = 10_000;
/// Members must have converged when the world was healed at least this long before the end.
pub const SETTLE_MS: u64 = 10_000;

/// The names of the cluster every postgres scenario runs (for drawing schedules).
pub(crate) fn names() -> PgCluster {
    PgClusterSpec::new(PREFIX).cluster()
}

/// The cluster every postgres scenario runs, with `durability`.
pub(crate) fn spec(durability: Durability) -> PgClusterSpec {
    PgClusterSpec::new(PREFIX).durability(durability)
}

/// The cluster (with its DCS and backup store) and the application node running the workload;
/// shared with `postgres-pitr`, which adds a node of its own.
pub(crate) fn cluster(durability: Durability) -> (Plan, PgCluster) {
    cluster_of(spec(durability))
}

/// [`cluster`] of any spec (a config's knobs).
pub(crate) fn cluster_of(spec: PgClusterSpec) -> (Plan, PgCluster) {
    let mut plan = Plan::new(Topology::new(), DURATION_MS);
    let pg = spec.add_to(&mut plan);
    plan.topology.add(CLIENT, "az-1", "region-1");
    let cluster = pg.clone();
    plan.client(CLIENT, node_main(move |ctx| workload::run(ctx, cluster.clone())));
    (plan, pg)
}

/// The checkers of this scenario, for cluster `pg`.
pub(crate) fn liveness(pg: &PgCluster) -> LivenessChecker {
    LivenessChecker {
        pg: pg.clone(),
        failover_bound_ms: FAILOVER_BOUND_MS,
        workload_end_ms: WORKLOAD_END_MS,
        resume_window_ms: RESUME_WINDOW_MS,
        settle_ms: SETTLE_MS,
    }
}

fn build(_seed: u64, config: Option<&str>, schedule: Vec<sim::Scheduled>) -> Built {
    let spec = match config {
        Some("async-credentials") => spec(Durability::async_credentials()),
        Some("pg-no-watchdog") => spec(Durability::standard()).watchdog(false),
        Some("pg-sync-strict") => spec(Durability::standard()).sync_strict(true),
        _ => spec(Durability::standard()),
    };
    let planted = Planted {
        ack_before_fsync: config == Some("pg-ack-before-fsync"),
        send_unflushed: config == Some("pg-send-unflushed"),
        skip_rewind: config == Some("pg-skip-rewind"),
    };
    let (mut plan, pg) = cluster_of(spec.planted(planted));
    plan.schedule = schedule;
    // Before the register and transaction clients: the registers' verifier exists only in a run
    // with an ending.
    plan.ending = Some(ENDING);
    let replica_reads = config == Some(registers::REPLICA_READS);
    registers::add(&mut plan, &pg, replica_reads);
    transactions::add(&mut plan, &pg, replica_reads);
    let built = Built::new(plan).checker(registers::checker(&pg)).checker(transactions::checker(&pg));
    built.checker(SafetyChecker { pg: pg.clone() }).checker(liveness(&pg))
}
