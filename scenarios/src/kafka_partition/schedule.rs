//! The fault schedule, drawn from the seed: torn writes armed on the brokers, then faults that
//! may overlap (the next one often starts before the previous one is undone) until
//! [`HEAL_AT_MS`], when everything heals. One kind is an overlap on purpose: a leader cut off
//! from its followers (the ISR shrinks to the leader alone, and `acks=all` refuses writes) is
//! then killed while still cut off.
//!
//! Faults are bounded by what `acks=all` with `min.insync.replicas=2` and unclean election off
//! promise. The brokers do not fsync produced records (Kafka's default; the OS writes pages back
//! every `writeback_interval_ms`), so Kafka's promise rests on replication: a record is
//! acknowledged once at least two replicas hold it, in their page caches. It is lost only if
//! every replica that holds it loses power before its writeback — in Kafka too, which is why
//! Kafka documents that simultaneous crashes of a whole ISR may lose acknowledged data. So any
//! two broker crashes (of a node or its zone) are at least [`CRASH_SPACING_MS`] apart, more
//! than a writeback interval: then at most one holder of a record crashes before its writeback,
//! and the checker counts every acknowledged record missing from the recovered logs as a
//! violation, never as a legitimate loss. Everything else overlaps freely with crashes and
//! with each other: cuts, isolations, pauses, controller and consumer kills (controllers fsync
//! their Raft log; consumers hold nothing durable).

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use sim::disk::DiskFaults;
use sim::{Fault, Scheduled, Target};
use system::kafka::KafkaCluster;

use super::{CLIENT_ZONE, CONSUMERS, HEAL_AT_MS, PRODUCERS};

/// Two broker crashes are at least this far apart: twice the brokers' writeback interval
/// (`BrokerSettings::writeback_interval_ms`, 1000 ms), so a record's other holder has written
/// it back before it can crash too.
pub const CRASH_SPACING_MS: u64 = 2_500;
const FIRST_FAULT_MS: u64 = 5_000;

pub fn draw(seed: u64, kafka: &KafkaCluster) -> Vec<Scheduled> {
    let mut rng = sim::rng::derive(seed, "~schedule", 0);
    let mut schedule = vec![arm_torn_writes(kafka, 0)];
    let mut at = FIRST_FAULT_MS + rng.gen_range(0..2_000);
    let mut last_crash_ms: Option<u64> = None;
    while at < HEAL_AT_MS - 4_000 {
        let crash_ok = last_crash_ms.is_none_or(|c| at >= c + CRASH_SPACING_MS);
        let drawn = one(&mut rng, kafka, at, crash_ok);
        let undo_at = drawn.iter().map(|s| s.at_ms).max().unwrap_or(at).min(HEAL_AT_MS - 1_000);
        for s in drawn {
            let at_ms = s.at_ms.min(undo_at);
            if is_broker_crash(&s.fault, kafka) {
                last_crash_ms = Some(at_ms);
            }
            let heals_all = s.fault == Fault::HealAll;
            schedule.push(Scheduled { at_ms, fault: s.fault });
            if heals_all {
                schedule.push(arm_torn_writes(kafka, at_ms));
            }
        }
        // Often the next fault starts while this one is still in force.
        at += rng.gen_range(500..(undo_at - at + 2_500));
    }
    schedule.push(Scheduled { at_ms: HEAL_AT_MS, fault: Fault::HealAll });
    schedule.sort_by_key(|s| s.at_ms);
    schedule
}

/// Whether `fault` kills a broker (a node kill of a broker, a leader role, or a zone).
fn is_broker_crash(fault: &Fault, kafka: &KafkaCluster) -> bool {
    match fault {
        Fault::Kill(Target::Role(role)) => role != &kafka.role_active_controller(),
        Fault::Kill(Target::Zone(_)) => true,
        Fault::Kill(Target::Nodes(nodes)) => nodes.iter().any(|n| kafka.brokers().contains(n)),
        _ => false,
    }
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

/// One fault starting at `at` and what undoes it (a broker crash only if `crash_ok`).
fn one(rng: &mut ChaCha8Rng, kafka: &KafkaCluster, at: u64, crash_ok: bool) -> Vec<Scheduled> {
    let kinds: &[u32] = if crash_ok {
        &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 12, 2, 4]
    } else {
        &[2, 3, 4, 5, 6, 7, 9, 10, 11, 2, 4]
    };
    let kind = *kinds.choose(rng).expect("non-empty");
    let clients = Target::Zone(CLIENT_ZONE.into());
    let brokers = kafka.brokers();
    let controllers = Target::Nodes(kafka.controllers().to_vec());
    let mut controllers_and_clients = kafka.controllers().to_vec();
    controllers_and_clients.extend(PRODUCERS.iter().chain(CONSUMERS.iter()).map(|c| c.to_string()));
    let undo_at = at + rng.gen_range(2_000..6_000);
    let fault = match kind {
        0 => Fault::Kill(some_leader(rng, kafka)),
        1 => Fault::Kill(Target::node(brokers.choose(rng).expect("brokers"))),
        2 => Fault::Partition { a: some_leader(rng, kafka), b: controllers },
        3 => Fault::Partition { a: some_leader(rng, kafka), b: clients },
        4 => Fault::Partition { a: some_leader(rng, kafka), b: Target::Nodes(controllers_and_clients) },
        5 => Fault::Isolate(some_leader(rng, kafka)),
        6 => Fault::Kill(Target::role(&kafka.role_active_controller())),
        7 => Fault::Kill(Target::node(CONSUMERS.choose(rng).expect("consumers"))),
        8 => Fault::Kill(Target::zone(kafka.zones().choose(rng).expect("zones"))),
        9 => Fault::Pause(some_leader(rng, kafka)),
        // The leader loses its followers but not the controller: the ISR shrinks to the leader
        // alone and `acks=all` must refuse writes (min.insync.replicas=2).
        10 => Fault::Partition { a: some_leader(rng, kafka), b: Target::Nodes(brokers.to_vec()) },
        // Two brokers cut off from everything: the third leads alone.
        11 => {
            let two: Vec<String> = brokers.choose_multiple(rng, 2).cloned().collect();
            Fault::Isolate(Target::Nodes(two))
        }
        // As 10, then, once the ISR has shrunk to it (`replica.lag.time.max.ms` and an
        // AlterPartition later), the leader is killed while still cut off.
        _ => {
            let leader = some_leader(rng, kafka);
            let kill_at = at + rng.gen_range(4_500..7_000);
            let heal_at = kill_at + rng.gen_range(2_000..5_000);
            return vec![
                Scheduled {
                    at_ms: at,
                    fault: Fault::Partition { a: leader.clone(), b: Target::Nodes(brokers.to_vec()) },
                },
                Scheduled { at_ms: kill_at, fault: Fault::Kill(leader) },
                Scheduled { at_ms: heal_at, fault: Fault::HealAll },
            ];
        }
    };
    let undo = undo_for(&fault);
    vec![Scheduled { at_ms: at, fault }, Scheduled { at_ms: undo_at, fault: undo }]
}

fn undo_for(fault: &Fault) -> Fault {
    match fault {
        Fault::Partition { .. } | Fault::Isolate(_) => Fault::HealNetwork,
        _ => Fault::HealAll,
    }
}
