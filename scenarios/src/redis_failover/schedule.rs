//! The `redis-failover` fault schedule: at a seeded moment the master is killed (it restarts
//! empty at the heal, still configured as a master), isolated, partitioned from the Sentinels and
//! replicas while clients still reach it, or paused; each long enough for the Sentinels to act.
//! Everything heals at [`HEAL_AT_MS`].

use rand::Rng;
use sim::{Fault, Scheduled, Target};

use super::{HEAL_AT_MS, REDIS, SENTINELS};

pub struct Drawn {
    pub schedule: Vec<Scheduled>,
    pub fault_at_ms: u64,
    pub fault: &'static str,
}

fn at(at_ms: u64, fault: Fault) -> Scheduled {
    Scheduled { at_ms, fault }
}

pub fn draw(seed: u64) -> Drawn {
    let mut rng = sim::rng::derive(seed, "~schedule", 0);
    let t = rng.gen_range(8_000..14_000);
    let undo = (t + rng.gen_range(8_000..12_000)).min(HEAL_AT_MS);
    let master = Target::role("redis-master");
    let (fault, mut schedule) = match rng.gen_range(0..4) {
        0 => ("kill", vec![at(t, Fault::Kill(master))]),
        1 => ("isolate", vec![at(t, Fault::Isolate(master)), at(undo, Fault::HealNetwork)]),
        2 => {
            let others = Target::Nodes(SENTINELS.iter().chain(REDIS.iter()).map(|s| s.to_string()).collect());
            ("partition", vec![at(t, Fault::Partition { a: master, b: others }), at(undo, Fault::HealNetwork)])
        }
        _ => ("pause", vec![at(t, Fault::Pause(master)), at(undo, Fault::Resume(Target::All))]),
    };
    schedule.push(at(HEAL_AT_MS, Fault::HealAll));
    Drawn { schedule, fault_at_ms: t, fault }
}
