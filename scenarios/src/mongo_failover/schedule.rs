//! The mongo-failover fault schedule, drawn from the seed: one fault on a replica set's primary
//! (kill, partition from its set, isolate, or pause) lasting past the election timeout, maybe a
//! second one until the heal, and independent of them up to two GC-like pauses of an app (its
//! compactor may hold a lock) and maybe a clock step on the config primary (leases expire
//! early).
//! Torn writes are armed on every mongod from the start. Everything heals at [`HEAL_AT_MS`].
//!
//! Bounded by what a replica set promises: each fault takes out one member of one set, so
//! every set keeps a majority; the faults on primaries never overlap.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use sim::disk::DiskFaults;
use sim::{Fault, Scheduled, Target};

use super::history::PrimaryFault;
use super::{members, APPS, CONFIG_SET, HEAL_AT_MS, SHARDS};

pub struct Drawn {
    pub schedule: Vec<Scheduled>,
    pub faults: Vec<PrimaryFault>,
}

pub fn draw(seed: u64) -> Drawn {
    let mut rng = sim::rng::derive(seed, "~schedule", 0);
    let mut drawn = Drawn { schedule: Vec::new(), faults: Vec::new() };
    // A killed member's unsynced oplog tail may be torn; recovery must cut it, not serve it.
    let torn = DiskFaults { torn_writes: true, ..DiskFaults::default() };
    let mongods = Target::Nodes(SHARDS.iter().chain([&CONFIG_SET]).flat_map(|s| members(s)).collect());
    drawn.schedule.push(Scheduled { at_ms: 0, fault: Fault::Disk { target: mongods, faults: torn } });
    let at = rng.gen_range(6_000..10_000);
    let until = at + rng.gen_range(13_000..19_000);
    on_primary(&mut rng, &mut drawn, at, until);
    if rng.gen_range(0..2) == 0 {
        let at = until + rng.gen_range(1_000..4_000);
        on_primary(&mut rng, &mut drawn, at, HEAL_AT_MS);
    }
    for _ in 0..2 {
        if rng.gen_range(0..3) != 0 {
            let app = APPS[rng.gen_range(0..APPS.len())];
            let at = rng.gen_range(5_000..30_000);
            let until = at + rng.gen_range(3_000..8_000);
            drawn.schedule.push(Scheduled { at_ms: at, fault: Fault::Pause(Target::node(app)) });
            drawn.schedule.push(Scheduled { at_ms: until, fault: Fault::Resume(Target::node(app)) });
        }
    }
    if rng.gen_range(0..3) == 0 {
        let delta_ms = rng.gen_range(5_000..20_000);
        let target = Target::role(&format!("{CONFIG_SET}-primary"));
        drawn
            .schedule
            .push(Scheduled { at_ms: rng.gen_range(5_000..30_000), fault: Fault::ClockStep { target, delta_ms } });
    }
    drawn.schedule.push(Scheduled { at_ms: HEAL_AT_MS, fault: Fault::HealAll });
    drawn
}

/// One fault on `set`'s primary from `at` to `until`, and what undoes it.
fn on_primary(rng: &mut ChaCha8Rng, drawn: &mut Drawn, at: u64, until: u64) {
    let set = match rng.gen_range(0..5) {
        0 | 1 => SHARDS[0],
        2 | 3 => SHARDS[1],
        _ => CONFIG_SET,
    };
    let primary = Target::role(&format!("{set}-primary"));
    let whole_set = Target::Nodes(members(set));
    let (kind, fault, undo) = match rng.gen_range(0..4) {
        0 => ("kill", Fault::Kill(primary), Fault::HealAll),
        // Cut from its own set only: routers still reach it, so it keeps taking writes it can
        // never commit until it notices it lost the majority.
        1 => ("partition", Fault::Partition { a: primary, b: whole_set }, Fault::HealNetwork),
        2 => ("isolate", Fault::Isolate(primary), Fault::HealNetwork),
        _ => ("pause", Fault::Pause(primary), Fault::Resume(whole_set)),
    };
    drawn.schedule.push(Scheduled { at_ms: at, fault });
    if until < HEAL_AT_MS {
        drawn.schedule.push(Scheduled { at_ms: until, fault: undo });
    }
    drawn.faults.push(PrimaryFault { set: set.into(), kind, at_ms: at });
}
