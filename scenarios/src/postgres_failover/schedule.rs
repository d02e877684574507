//! The `postgres-failover` fault schedule, drawn from the seed.
//!
//! Torn writes are armed on every member from the start. Before the main fault, some seeds
//! restart the asynchronous replica with a disk that corrupts what it reads (so it must detect
//! the damage and repair it from the primary), or kill a DCS member for a while (the DCS keeps
//! its majority). Then, at a seeded moment, the primary is killed, isolated, partitioned from
//! the DCS and the standbys (clients still reach it), or paused, long enough that the lease runs
//! out. Half the seeds first make the synchronous standby lag (a slow link, or a one-way cut from
//! the primary): that is when a commit acknowledged without waiting for the standby would be lost.
//! Some seeds crash-restart the primary before the main fault (a power loss inside its lease,
//! after which it is usually elected again: no failover), and some crash-restart whoever is
//! primary a few seconds after the main fault, when a new primary may not have named a
//! synchronous standby yet. Everything heals at [`HEAL_AT_MS`]; the rest of the run shows
//! recovery.
//!
//! Some seeds stall only the primary's Patroni agent instead (its postmaster runs on), or kill
//! both standbys rather than the primary (the synchronous standby lost, with no other to name).
//!
//! Faults stay within what the cluster promises: the primary's data is never lost with its
//! only copy (one member lost at a time, or both standbys while the primary runs), plus, at
//! most, one DCS member.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use sim::disk::DiskFaults;
use sim::link::LinkShape;
use sim::ratio::Ratio;
use sim::{Fault, Scheduled, Target};

use system::postgres::PgCluster;

use super::HEAL_AT_MS;

fn members(pg: &PgCluster) -> Target {
    Target::Nodes(pg.members().to_vec())
}

fn at(at_ms: u64, fault: Fault) -> Scheduled {
    Scheduled { at_ms, fault }
}

/// The schedule seed `seed` draws for cluster `pg`.
pub fn draw(seed: u64, pg: &PgCluster) -> Vec<Scheduled> {
    let mut rng = sim::rng::derive(seed, "~schedule", 0);
    let torn = DiskFaults { torn_writes: true, ..DiskFaults::default() };
    let mut schedule = vec![at(0, Fault::Disk { target: members(pg), faults: torn.clone() })];
    let fault_at_ms = rng.gen_range(10_000..18_000);
    if rng.gen_ratio(1, 4) {
        let dcs = Target::node(&pg.dcs()[rng.gen_range(0..pg.dcs().len())]);
        let down = rng.gen_range(4_000..24_000);
        schedule.push(at(down, Fault::Kill(dcs.clone())));
        schedule.push(at(down + rng.gen_range(3_000..8_000), Fault::Restart(dcs)));
    }
    // At most one episode on the members before the main fault, so that no two of them take
    // away more than the cluster promises to survive (nor retarget a role mid-transition).
    let episode = rng.gen_range(0..6);
    match episode {
        0 | 1 => schedule.extend(corrupt_replica(&mut rng, pg, fault_at_ms, torn.clone())),
        2 | 3 => {
            // A crash-restart inside the lease, before the main fault (and its lag) begins.
            let t = rng.gen_range(3_000..fault_at_ms - 3_000);
            schedule.extend(crash_restart_untorn(pg, t, &torn));
        }
        4 => schedule.extend(degrade_then_crash(&mut rng, pg, fault_at_ms, &torn)),
        _ => {}
    }
    if episode != 4 && rng.gen_ratio(1, 2) {
        schedule.push(lag_sync_standby(&mut rng, pg, fault_at_ms));
    }
    schedule.extend(main_fault(&mut rng, pg, fault_at_ms));
    if rng.gen_ratio(1, 2) {
        // Around the new primary's promotion, before it names a synchronous standby.
        let t = fault_at_ms + rng.gen_range(5_000..10_000);
        schedule.extend(crash_restart_untorn(pg, t, &torn));
    }
    schedule.push(at(HEAL_AT_MS, Fault::HealAll));
    schedule
}

/// Restarts the asynchronous replica on a disk that flips a byte in whatever it reads.
fn corrupt_replica(rng: &mut ChaCha8Rng, pg: &PgCluster, before_ms: u64, torn: DiskFaults) -> Vec<Scheduled> {
    let t = rng.gen_range(5_000..before_ms - 3_000);
    let rot = DiskFaults { read_corruption: Ratio::ALWAYS, ..torn.clone() };
    vec![
        at(t, Fault::Disk { target: Target::role(pg.role_async_replica()), faults: rot }),
        at(t, Fault::Restart(Target::role(pg.role_async_replica()))),
        at(t + 1_000, Fault::Disk { target: members(pg), faults: torn }),
    ]
}

/// A crash-restart of whoever is primary at `t`, with torn writes off for that one crash.
///
/// Why untorn: this model reads a torn sector ending in garbage as damage (it cannot tell it
/// from synced records lost), and a damaged member never leads. When the crashed primary is the
/// only member `/sync` lets lead (a new primary with no synchronous standby yet, or one
/// degraded to none), the cluster would then wait forever for a repair that needs a primary,
/// where PostgreSQL's crash recovery would have ended its WAL at the torn record and come back.
fn crash_restart_untorn(pg: &PgCluster, t: u64, torn: &DiskFaults) -> Vec<Scheduled> {
    vec![
        at(t.saturating_sub(1), Fault::Disk { target: members(pg), faults: DiskFaults::default() }),
        at(t, Fault::Restart(Target::role(pg.role_primary()))),
        at(t + 1, Fault::Disk { target: members(pg), faults: torn.clone() }),
    ]
}

/// Cuts the primary off from both standbys (one way: they stop receiving WAL) long enough for
/// Patroni to degrade `/sync` to none and acknowledge `on` commits on the primary's fsync alone,
/// crash-restarts the primary inside that window (it is then the only member allowed to lead),
/// and heals the network seconds before the main fault, so that a synchronous standby is named
/// again by then (without one, Patroni rightly refuses any failover).
fn degrade_then_crash(rng: &mut ChaCha8Rng, pg: &PgCluster, fault_at_ms: u64, torn: &DiskFaults) -> Vec<Scheduled> {
    let cut = fault_at_ms - rng.gen_range(8_000..9_500);
    // Every member: the primary's traffic to itself is not cut.
    let mut out = vec![at(cut, Fault::PartitionOneWay { from: Target::role(pg.role_primary()), to: members(pg) })];
    let crash = fault_at_ms - rng.gen_range(3_500..4_500);
    out.extend(crash_restart_untorn(pg, crash, torn));
    out.push(at(crash + 300, Fault::HealNetwork));
    out
}

/// Makes the synchronous standby fall behind the primary just before the main fault.
fn lag_sync_standby(rng: &mut ChaCha8Rng, pg: &PgCluster, fault_at_ms: u64) -> Scheduled {
    let start = fault_at_ms - rng.gen_range(500..2_500);
    let (a, b) = (Target::role(pg.role_primary()), Target::role(pg.role_sync_standby()));
    if rng.gen_ratio(1, 2) {
        let shape =
            LinkShape { latency_ms: rng.gen_range(100..400), jitter_ms: rng.gen_range(0..100), loss: Ratio::NEVER };
        at(start, Fault::Link { a, b, shape })
    } else {
        at(start, Fault::PartitionOneWay { from: a, to: b })
    }
}

/// The fault on the primary, and what undoes it (kills wait for the heal).
fn main_fault(rng: &mut ChaCha8Rng, pg: &PgCluster, t: u64) -> Vec<Scheduled> {
    let primary = Target::role(pg.role_primary());
    let undo_at = (t + rng.gen_range(8_000..14_000)).min(HEAL_AT_MS);
    match rng.gen_range(0..6) {
        0 => vec![at(t, Fault::Kill(primary))],
        4 => stall_primary_agent(pg, t, undo_at),
        5 => lose_sync_standby(pg, t),
        1 => vec![at(t, Fault::Isolate(primary)), at(undo_at, Fault::HealNetwork)],
        2 => {
            // From the DCS and the other members' machines (server and agent), by role: a
            // list of every member would cut the primary's agent from its own server.
            let cut = |b: Target| at(t, Fault::Partition { a: primary.clone(), b });
            vec![
                cut(Target::Nodes(pg.dcs().to_vec())),
                cut(Target::role(pg.role_sync_standby())),
                cut(Target::role(pg.role_async_replica())),
                at(undo_at, Fault::HealNetwork),
            ]
        }
        _ => vec![at(t, Fault::Pause(primary.clone())), at(undo_at, Fault::Resume(Target::All))],
    }
}

/// Stalls the primary's Patroni agent alone (SIGSTOP, a hung DCS call) while its postmaster
/// runs on: the lease runs out, another member takes over, and only the watchdog stops the
/// old primary (without one, its sessions keep committing).
fn stall_primary_agent(pg: &PgCluster, t: u64, undo_at: u64) -> Vec<Scheduled> {
    let agent = Target::role(pg.role_primary_agent());
    vec![at(t, Fault::Pause(agent)), at(undo_at, Fault::Resume(Target::All))]
}

/// Kills both standbys until the heal (the primary keeps its data; a standby alone would just
/// be replaced by the other): after `wal_sender_timeout` the primary gives the synchronous one
/// up and degrades to `/sync = none`, or, under `synchronous_mode_strict`, blocks.
fn lose_sync_standby(pg: &PgCluster, t: u64) -> Vec<Scheduled> {
    vec![
        at(t, Fault::Kill(Target::role(pg.role_sync_standby()))),
        at(t, Fault::Kill(Target::role(pg.role_async_replica()))),
    ]
}
