//! The `redis-failover` fault schedule: at a seeded moment one of these, each long enough for
//! the Sentinels to act, and everything heals at [`HEAL_AT_MS`]:
//! - the master is killed (it restarts empty at the heal, still configured as a master),
//!   isolated, partitioned from the Sentinels and replicas while clients still reach it, or
//!   paused (every Sentinel loses it at once);
//! - the Sentinels are split: one or two of them are cut off from the master (which keeps its
//!   replicas and clients), the master keeps one Sentinel while the two others and the replicas
//!   are cut off from it (a minority sees the master, a majority does not), or the reverse (the
//!   master keeps two Sentinels and loses one and its replicas);
//! - one Sentinel's disk fails every I/O (`io_error` always) shortly before the master is
//!   killed or isolated; the disk is repaired and that Sentinel restarted when the master's
//!   fault is undone.
//!
//! Before that fault, in a third of the seeds, one Sentinel is isolated from everything (its peers
//! included) for a few seconds ([`lone_sentinel`]): the one window in which the election's
//! majority rule, not the quorum, is what keeps a Sentinel from failing over alone.
//!
//! The replicas always stay with a majority of the Sentinels, so the cluster keeps a master it
//! can promote (the faults stay within what Sentinel promises to survive).

use rand::Rng;
use sim::disk::DiskFaults;
use sim::ratio::Ratio;
use sim::{Fault, Scheduled, Target};
use system::redis::RedisCluster;

use super::HEAL_AT_MS;

fn at(at_ms: u64, fault: Fault) -> Scheduled {
    Scheduled { at_ms, fault }
}

/// How many kinds of fault [`draw`] chooses from.
const KINDS: u32 = 9;

pub fn draw(seed: u64, redis: &RedisCluster) -> Vec<Scheduled> {
    let mut rng = sim::rng::derive(seed, "~schedule", 0);
    let t = rng.gen_range(8_000..14_000);
    let undo = (t + rng.gen_range(8_000..12_000)).min(HEAL_AT_MS);
    let master = Target::role(&redis.role_master());
    let replicas = Target::role(&redis.role_replica());
    let sentinels = redis.sentinels().to_vec();
    // The Sentinels in a seeded order: the first ones are those the fault cuts off.
    let mut order = sentinels.clone();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.gen_range(0..=i));
    }
    let nodes = |ns: &[String]| Target::Nodes(ns.to_vec());
    let cut = |ns: &[String]| Fault::Partition { a: master.clone(), b: nodes(ns) };
    let mut schedule = match rng.gen_range(0..KINDS) {
        0 => vec![at(t, Fault::Kill(master))],
        1 => vec![at(t, Fault::Isolate(master)), at(undo, Fault::HealNetwork)],
        2 => {
            let others = Target::Nodes(sentinels.iter().chain(redis.nodes()).cloned().collect());
            vec![at(t, Fault::Partition { a: master, b: others }), at(undo, Fault::HealNetwork)]
        }
        3 => vec![at(t, Fault::Pause(master.clone())), at(undo, Fault::Resume(Target::All))],
        // One Sentinel cut off from the master: it alone sees it down, short of the quorum.
        4 => vec![at(t, cut(&order[..1])), at(undo, Fault::HealNetwork)],
        // Two cut off: a majority fails over a master that the third still sees, and that still
        // has its replicas and clients.
        5 => vec![at(t, cut(&order[..2])), at(undo, Fault::HealNetwork)],
        // The master keeps one Sentinel; the two others and the replicas lose it.
        6 => vec![
            at(t, cut(&order[1..])),
            at(t, Fault::Partition { a: master.clone(), b: replicas }),
            at(undo, Fault::HealNetwork),
        ],
        // The reverse: the master keeps two Sentinels and loses one and its replicas.
        7 => vec![
            at(t, cut(&order[..1])),
            at(t, Fault::Partition { a: master.clone(), b: replicas }),
            at(undo, Fault::HealNetwork),
        ],
        _ => {
            let broken = Target::node(&order[0]);
            let faults = DiskFaults { io_error: Ratio::ALWAYS, ..DiskFaults::default() };
            let (fault, heal) = match rng.gen_ratio(1, 2) {
                true => (Fault::Kill(master.clone()), Fault::Restart(master)),
                false => (Fault::Isolate(master), Fault::HealNetwork),
            };
            vec![
                at(t - 1_000, Fault::Disk { target: broken.clone(), faults }),
                at(t, fault),
                at(undo, heal),
                at(undo, Fault::Disk { target: broken.clone(), faults: DiskFaults::default() }),
                at(undo, Fault::Restart(broken)),
            ]
        }
    };
    schedule.push(at(HEAL_AT_MS, Fault::HealAll));
    lone_sentinel(seed, &sentinels, &mut schedule);
    schedule
}

/// In a third of the seeds, before the fault above (which starts at 8 s at the earliest): one
/// Sentinel isolated from everything, its peers included, for 4 to 5.5 s. It sees the master
/// down and no peer: with `quorum 2` it cannot reach ODOWN, and with `quorum 1` only the
/// election's majority rule (no peer can vote for it) stops it from failing over on its own. Drawn
/// from a stream of its own, so the rest of every seed's schedule is unchanged.
fn lone_sentinel(seed: u64, sentinels: &[String], schedule: &mut Vec<Scheduled>) {
    let mut rng = sim::rng::derive(seed, "~schedule-lone-sentinel", 0);
    if !rng.gen_ratio(1, 3) {
        return;
    }
    let lone = Target::node(&sentinels[rng.gen_range(0..sentinels.len())]);
    let (from_ms, to_ms) = (1_500, 1_500 + rng.gen_range(4_000..5_500));
    schedule.splice(0..0, [at(from_ms, Fault::Isolate(lone)), at(to_ms, Fault::HealNetwork)]);
}
