//! The mongo-failover fault schedule, drawn from the seed: one fault on a replica set's primary
//! (kill, partition from its set, isolate, or pause) lasting past the election timeout, maybe a
//! second one until the heal, and independent of them up to two GC-like pauses of an app (its
//! compactor may hold a lock) and maybe a clock step on the config primary (leases expire
//! early).
//! Torn writes are armed on every mongod from the start. On a set no primary fault touches, the
//! disk may also turn bad for a while: one member's disk returns I/O errors (the mongod must
//! stop, not pass over them), or one member is crash-restarted while its disk flips a byte on
//! every read (it must find the damage by checksum and repair from its peers before it votes or
//! counts again), or a block of a synced file is corrupted before a crash-restart, or the disk is
//! wiped (a rebuilt host). Everything heals at [`HEAL_AT_MS`].
//!
//! Bounded by what a replica set promises: each fault takes out one member of one set, so
//! every set keeps a majority; the faults on primaries never overlap, and disk faults hit a set
//! no primary fault does.
//!
//! Faults aim at roles (`mongo-shard-a-primary`), resolved when they fire; the names come from
//! the cluster handle. Nothing drawn here reaches the checkers, which read what happened from
//! the observations.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use sim::disk::DiskFaults;
use sim::ratio::Ratio;
use sim::{Fault, Scheduled, Target};
use system::mongo::MongoCluster;

use super::{APPS, HEAL_AT_MS};

pub fn draw(seed: u64) -> Vec<Scheduled> {
    let mongo = super::spec(None).handle();
    let mut rng = sim::rng::derive(seed, "~schedule", 0);
    // A killed member's unsynced oplog tail may be torn; recovery must cut it, not serve it.
    let torn = DiskFaults { torn_writes: true, ..DiskFaults::default() };
    let mut schedule =
        vec![Scheduled { at_ms: 0, fault: Fault::Disk { target: Target::Nodes(mongo.mongods()), faults: torn } }];
    let at = rng.gen_range(6_000..10_000);
    let until = at + rng.gen_range(13_000..19_000);
    let mut hit = vec![on_primary(&mut rng, &mongo, &mut schedule, at, until)];
    if rng.gen_range(0..2) == 0 {
        let at = until + rng.gen_range(1_000..4_000);
        hit.push(on_primary(&mut rng, &mongo, &mut schedule, at, HEAL_AT_MS));
    }
    let spared: Vec<&str> = mongo.sets().into_iter().filter(|s| !hit.contains(s)).collect();
    let set = spared[rng.gen_range(0..spared.len())];
    // Damage to synced data draws from its own stream, so adding it left every other draw as it was.
    let mut damage_rng = sim::rng::derive(seed, "~schedule-damage", 0);
    bad_disk(&mut rng, &mut damage_rng, &mongo.members(set), &mut schedule);
    for _ in 0..2 {
        if rng.gen_range(0..3) != 0 {
            let app = APPS[rng.gen_range(0..APPS.len())];
            let at = rng.gen_range(5_000..30_000);
            let until = at + rng.gen_range(3_000..8_000);
            schedule.push(Scheduled { at_ms: at, fault: Fault::Pause(Target::node(app)) });
            schedule.push(Scheduled { at_ms: until, fault: Fault::Resume(Target::node(app)) });
        }
    }
    if rng.gen_range(0..3) == 0 {
        let delta_ms = rng.gen_range(5_000..20_000);
        let target = Target::role(&mongo.role_config_primary());
        schedule.push(Scheduled { at_ms: rng.gen_range(5_000..30_000), fault: Fault::ClockStep { target, delta_ms } });
    }
    schedule.push(Scheduled { at_ms: HEAL_AT_MS, fault: Fault::HealAll });
    schedule
}

/// Maybe a bad disk on one member of `members`: I/O errors for a while, a crash-restart that
/// reads damaged records back, a corrupt block of a synced file found by the restart that
/// follows, or a disk replaced by an empty one.
fn bad_disk(rng: &mut ChaCha8Rng, damage_rng: &mut ChaCha8Rng, members: &[String], schedule: &mut Vec<Scheduled>) {
    let torn = DiskFaults { torn_writes: true, ..DiskFaults::default() };
    let member = Target::node(&members[rng.gen_range(0..members.len())]);
    let at = rng.gen_range(5_000..30_000);
    let disk = |faults: DiskFaults| Fault::Disk { target: member.clone(), faults };
    match rng.gen_range(0..3) {
        0 => {
            let faults = DiskFaults { io_error: Ratio::new(1, rng.gen_range(20..200)), ..torn.clone() };
            schedule.push(Scheduled { at_ms: at, fault: disk(faults) });
            schedule.push(Scheduled { at_ms: at + rng.gen_range(2_000..8_000), fault: disk(torn) });
        }
        1 => {
            // Every read of the restart's recovery flips a byte, and the damage stays.
            let faults = DiskFaults { read_corruption: Ratio::new(1, 1), ..torn.clone() };
            schedule.push(Scheduled { at_ms: at, fault: disk(faults) });
            schedule.push(Scheduled { at_ms: at + 1, fault: Fault::Restart(member.clone()) });
            schedule.push(Scheduled { at_ms: at + 2, fault: disk(torn) });
        }
        _ => match damage_rng.gen_range(0..3) {
            0 => {
                let corrupt = Fault::Corrupt { target: member.clone(), file: None, file_prefix: None, block: None };
                schedule.push(Scheduled { at_ms: at, fault: corrupt });
                let restart_at = at + damage_rng.gen_range(500..4_000);
                schedule.push(Scheduled { at_ms: restart_at, fault: Fault::Restart(member.clone()) });
            }
            1 => {
                // A rebuilt host: no oplog, no vote record; it must not vote until it has
                // caught up from its set.
                schedule.push(Scheduled { at_ms: at, fault: Fault::Wipe(member.clone()) });
                let restart_at = at + damage_rng.gen_range(500..4_000);
                schedule.push(Scheduled { at_ms: restart_at, fault: Fault::Restart(member.clone()) });
            }
            _ => {}
        },
    }
}

/// One fault on a set's primary from `at` to `until`, and what undoes it: a shard's primary
/// two times in five, the config servers' one in five. Returns the set.
fn on_primary<'a>(
    rng: &mut ChaCha8Rng,
    mongo: &'a MongoCluster,
    schedule: &mut Vec<Scheduled>,
    at: u64,
    until: u64,
) -> &'a str {
    let shards = mongo.shard_sets();
    let set = match rng.gen_range(0..5) {
        0 | 1 => shards[0],
        2 | 3 => shards[1],
        _ => mongo.config_set(),
    };
    let primary = Target::role(&mongo.role_primary(set));
    let whole_set = Target::Nodes(mongo.members(set));
    let (fault, undo) = match rng.gen_range(0..4) {
        0 => (Fault::Kill(primary), Fault::HealAll),
        // Cut from its own set only: routers still reach it, so it keeps taking writes it can
        // never commit until it notices it lost the majority.
        1 => (Fault::Partition { a: primary, b: whole_set }, Fault::HealNetwork),
        2 => (Fault::Isolate(primary), Fault::HealNetwork),
        _ => (Fault::Pause(primary), Fault::Resume(whole_set)),
    };
    schedule.push(Scheduled { at_ms: at, fault });
    if until < HEAL_AT_MS {
        schedule.push(Scheduled { at_ms: until, fault: undo });
    }
    set
}
