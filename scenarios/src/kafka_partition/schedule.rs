//! The fault schedule, drawn from the seed: torn writes armed on the brokers, then one fault at
//! a time (each undone before the next starts) until [`HEAL_AT_MS`], when everything heals.
//!
//! Faults are bounded by what `acks=all` with `min.insync.replicas=2` promises. The brokers do
//! not fsync produced records (Kafka's default; the OS writes pages back within
//! `writeback_interval_ms`), so crashing every replica that holds a record within one writeback
//! interval may lose it — in Kafka too. Broker kills (of a node or its zone) are therefore at
//! least [`KILL_SPACING_MS`] apart, counted from the previous victim's restart, which leaves
//! time for the survivors' writeback and for the restarted broker to catch up and rejoin the
//! ISR. Network cuts, pauses and controller or consumer kills lose nothing and are not spaced.

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use sim::disk::DiskFaults;
use sim::{Fault, Scheduled, Target};
use system::kafka::KafkaCluster;

use super::{CLIENT_ZONE, CONSUMERS, HEAL_AT_MS, PRODUCERS};

/// Broker kills start at least this long after the previous killed broker restarted.
pub const KILL_SPACING_MS: u64 = 8_000;
const FIRST_FAULT_MS: u64 = 5_000;

pub fn draw(seed: u64, kafka: &KafkaCluster) -> Vec<Scheduled> {
    let mut rng = sim::rng::derive(seed, "~schedule", 0);
    let mut schedule = vec![arm_torn_writes(kafka, 0)];
    let mut at = FIRST_FAULT_MS + rng.gen_range(0..2_000);
    let mut kill_allowed_at = 0;
    while at < HEAL_AT_MS - 4_000 {
        let duration = rng.gen_range(2_000..6_000).min(HEAL_AT_MS - 1_000 - at);
        let kill_ok = at >= kill_allowed_at;
        let (fault, kills_broker) = one(&mut rng, kafka, kill_ok);
        let undo_at = at + duration;
        let undo = undo_for(&fault);
        let heals_all = undo == Fault::HealAll;
        schedule.push(Scheduled { at_ms: at, fault });
        schedule.push(Scheduled { at_ms: undo_at, fault: undo });
        if heals_all {
            schedule.push(arm_torn_writes(kafka, undo_at));
        }
        if kills_broker {
            kill_allowed_at = undo_at + KILL_SPACING_MS;
        }
        at = undo_at + rng.gen_range(1_000..3_000);
    }
    schedule.push(Scheduled { at_ms: HEAL_AT_MS, fault: Fault::HealAll });
    schedule
}

/// When each consumer leaves the group cleanly and rejoins, if it does in this run.
pub fn consumer_bounces(seed: u64) -> Vec<Option<u64>> {
    let mut rng = sim::rng::derive(seed, "~bounces", 0);
    CONSUMERS.iter().map(|_| rng.gen_ratio(2, 5).then(|| rng.gen_range(8_000..30_000))).collect()
}

fn arm_torn_writes(kafka: &KafkaCluster, at_ms: u64) -> Scheduled {
    let faults = DiskFaults { torn_writes: true, ..DiskFaults::default() };
    Scheduled { at_ms, fault: Fault::Disk { target: Target::Nodes(kafka.brokers().to_vec()), faults } }
}

/// The leader of a random partition (the data topic's or the group's offsets partition).
fn some_leader(rng: &mut ChaCha8Rng, kafka: &KafkaCluster) -> Target {
    let tps = kafka.partitions();
    let tp = &tps[rng.gen_range(0..tps.len())];
    Target::Role(kafka.role_leader(tp))
}

/// One fault, and whether it kills a broker.
fn one(rng: &mut ChaCha8Rng, kafka: &KafkaCluster, kill_ok: bool) -> (Fault, bool) {
    let kinds: &[u32] =
        if kill_ok { &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 2, 4] } else { &[2, 3, 4, 5, 6, 7, 9, 10, 11, 2, 4] };
    let kind = *kinds.choose(rng).expect("non-empty");
    let clients = Target::Zone(CLIENT_ZONE.into());
    let brokers = kafka.brokers();
    let controllers = Target::Nodes(kafka.controllers().to_vec());
    let mut controllers_and_clients = kafka.controllers().to_vec();
    controllers_and_clients.extend(PRODUCERS.iter().chain(CONSUMERS.iter()).map(|c| c.to_string()));
    match kind {
        0 => (Fault::Kill(some_leader(rng, kafka)), true),
        1 => (Fault::Kill(Target::node(brokers.choose(rng).expect("brokers"))), true),
        2 => (Fault::Partition { a: some_leader(rng, kafka), b: controllers }, false),
        3 => (Fault::Partition { a: some_leader(rng, kafka), b: clients }, false),
        4 => (Fault::Partition { a: some_leader(rng, kafka), b: Target::Nodes(controllers_and_clients) }, false),
        5 => (Fault::Isolate(some_leader(rng, kafka)), false),
        6 => (Fault::Kill(Target::role(&kafka.role_active_controller())), false),
        7 => (Fault::Kill(Target::node(CONSUMERS.choose(rng).expect("consumers"))), false),
        8 => (Fault::Kill(Target::zone(kafka.zones().choose(rng).expect("zones"))), true),
        9 => (Fault::Pause(some_leader(rng, kafka)), false),
        // The leader loses its followers but not the controller: the ISR shrinks to the leader
        // alone and `acks=all` must refuse writes (min.insync.replicas=2).
        10 => (Fault::Partition { a: some_leader(rng, kafka), b: Target::Nodes(brokers.to_vec()) }, false),
        // Two brokers cut off from everything: the third leads alone.
        _ => {
            let two: Vec<String> = brokers.choose_multiple(rng, 2).cloned().collect();
            (Fault::Isolate(Target::Nodes(two)), false)
        }
    }
}

fn undo_for(fault: &Fault) -> Fault {
    match fault {
        Fault::Partition { .. } | Fault::Isolate(_) => Fault::HealNetwork,
        _ => Fault::HealAll,
    }
}
