//! The `redis-failover` fault schedule: at a seeded moment the master is killed (it restarts
//! empty at the heal, still configured as a master), isolated, partitioned from the Sentinels and
//! replicas while clients still reach it, or paused; each long enough for the Sentinels to act.
//! Everything heals at [`HEAL_AT_MS`].

use rand::Rng;
use sim::{Fault, Scheduled, Target};
use system::redis::RedisCluster;

use super::HEAL_AT_MS;

fn at(at_ms: u64, fault: Fault) -> Scheduled {
    Scheduled { at_ms, fault }
}

pub fn draw(seed: u64, redis: &RedisCluster) -> Vec<Scheduled> {
    let mut rng = sim::rng::derive(seed, "~schedule", 0);
    let t = rng.gen_range(8_000..14_000);
    let undo = (t + rng.gen_range(8_000..12_000)).min(HEAL_AT_MS);
    let master = Target::role(&redis.role_master());
    let mut schedule = match rng.gen_range(0..4) {
        0 => vec![at(t, Fault::Kill(master))],
        1 => vec![at(t, Fault::Isolate(master)), at(undo, Fault::HealNetwork)],
        2 => {
            let others = Target::Nodes(redis.sentinels().iter().chain(redis.nodes()).cloned().collect());
            vec![at(t, Fault::Partition { a: master, b: others }), at(undo, Fault::HealNetwork)]
        }
        _ => vec![at(t, Fault::Pause(master)), at(undo, Fault::Resume(Target::All))],
    };
    schedule.push(at(HEAL_AT_MS, Fault::HealAll));
    schedule
}
