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
//! violation, never as a legitimate loss.
//!
//! A broker cut off from the controllers (or paused past its session) is fenced, and KRaft
//! removes a fenced broker from every ISR at once, even below `min.insync.replicas`: an ISR
//! `[a, b]` becomes `[a]` although `b` holds every acknowledged record. If `a` then loses power
//! before its writeback, it comes back without the newest acknowledged records, is still the
//! whole ISR, is elected again (a clean election), and `b` truncates to it: real Kafka loses
//! those records too ("last replica standing", the loss KIP-966's eligible leader replicas and
//! unclean-shutdown detection address; this model is Kafka before them). A crash is one more
//! holder lost, so a fencing fault counts as a crash for the spacing: no broker crash while a
//! fencing fault is in force or within [`CRASH_SPACING_MS`] of its undo, and no fencing fault
//! within [`CRASH_SPACING_MS`] of a crash.
//!
//! A leader cut off from its followers shrinks the ISR to itself by lag
//! (`replica.lag.time.max.ms`, 3000 ms, longer than a writeback), which is safe while the cut
//! lasts: no follower fetches, so nothing is acknowledged. But when the cut heals, the
//! followers fetch at once while the leader may not yet know that the controller committed
//! the shrink (it acts under the last committed ISR while its shrink is in flight, as Kafka's
//! `PendingShrinkIsr` does): it acknowledges under an ISR of two what the controller's ISR of
//! one holds only in the leader's page cache. A power loss of that leader then loses the
//! records in real Kafka too: it is the whole ISR, it is elected again and its followers
//! truncate to it (the same "last replica standing" loss). So such a cut counts as a fencing
//! fault for the spacing: no broker crash within [`CRASH_SPACING_MS`] after it is undone. A
//! crash while the cut is in force is safe (kind 12 draws one on purpose), so while a kind-12
//! kill is pending, no later fault's undo comes before it: the leader is still cut off when it
//! dies. Everything else overlaps freely with crashes and with each other: cuts from clients,
//! controller and consumer kills (controllers fsync their Raft log; consumers hold nothing
//! durable).

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
    // When the last fencing fault (or cut of a leader from its followers) is undone.
    let mut fenced_until_ms: Option<u64> = None;
    // A kind-12 kill still to come: no undo drawn meanwhile may come before it.
    let mut pending_kill_ms: Option<u64> = None;
    let mut last_undo_ms = 0;
    while at < HEAL_AT_MS - 4_000 {
        let fence_ok = last_crash_ms.is_none_or(|c| at >= c + CRASH_SPACING_MS);
        let crash_ok = fence_ok && fenced_until_ms.is_none_or(|f| at >= f + CRASH_SPACING_MS);
        // A kind-12 kill must find its leader still cut off: no undo drawn before may come first.
        let cut_kill_ok = crash_ok && last_undo_ms <= at;
        let drawn = one(&mut rng, kafka, at, crash_ok, fence_ok, cut_kill_ok);
        let drawn_undo_ms = drawn.iter().map(|s| s.at_ms).max().unwrap_or(at);
        let undo_at = drawn_undo_ms.min(HEAL_AT_MS - 1_000).max(pending_kill_ms.filter(|k| *k > at).unwrap_or(0));
        last_undo_ms = last_undo_ms.max(undo_at);
        let fences = drawn.iter().any(|s| fences(&s.fault, kafka));
        if fences {
            fenced_until_ms = Some(fenced_until_ms.map_or(undo_at, |f| f.max(undo_at)));
        }
        for s in drawn {
            let at_ms = if s.at_ms == drawn_undo_ms { undo_at } else { s.at_ms.min(undo_at) };
            if is_broker_crash(&s.fault, kafka) {
                last_crash_ms = Some(at_ms);
                if at_ms > at {
                    pending_kill_ms = Some(at_ms);
                }
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

/// Whether `fault` can fence a broker (cut it off from the controllers past its session, or
/// pause it past its session), or cut a leader off from its followers, so that an ISR can
/// shrink to a leader alone while its followers hold what it acknowledged.
fn fences(fault: &Fault, kafka: &KafkaCluster) -> bool {
    match fault {
        Fault::Isolate(_) | Fault::Pause(_) => true,
        Fault::Partition { b: Target::Nodes(nodes), .. } => {
            nodes.iter().any(|n| kafka.controllers().contains(n) || kafka.brokers().contains(n))
        }
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

/// One fault starting at `at` and what undoes it (a broker crash only if `crash_ok`, a fencing
/// fault only if `fence_ok`, a kill of a cut-off leader only if `cut_kill_ok`).
fn one(
    rng: &mut ChaCha8Rng,
    kafka: &KafkaCluster,
    at: u64,
    crash_ok: bool,
    fence_ok: bool,
    cut_kill_ok: bool,
) -> Vec<Scheduled> {
    let kinds: &[u32] = match (crash_ok, fence_ok) {
        (true, _) if cut_kill_ok => &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 12, 2, 4],
        (true, _) => &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 2, 4],
        (false, true) => &[2, 3, 4, 5, 6, 7, 9, 10, 11, 2, 4],
        (false, false) => &[3, 6, 7, 10, 3, 10],
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

#[cfg(test)]
mod tests {
    use super::*;

    /// No broker crash while a fencing fault is in force or within the spacing after it is
    /// undone (after a cut of a leader from its followers is undone), and no fencing fault
    /// within the spacing after a crash: the "last replica standing" loss that Kafka permits is
    /// never drawn.
    #[test]
    fn crashes_keep_clear_of_fencing() {
        let kafka = super::super::spec(None).cluster();
        for seed in 0..500 {
            let schedule = draw(seed, &kafka);
            let crashes: Vec<(usize, u64)> = schedule
                .iter()
                .enumerate()
                .filter(|(_, s)| is_broker_crash(&s.fault, &kafka))
                .map(|(j, s)| (j, s.at_ms))
                .collect();
            for (i, s) in schedule.iter().enumerate().filter(|(_, s)| fences(&s.fault, &kafka)) {
                let (undone_idx, undone) = schedule
                    .iter()
                    .enumerate()
                    .skip(i + 1)
                    .find(|(_, u)| match s.fault {
                        Fault::Pause(_) => u.fault == Fault::HealAll,
                        _ => matches!(u.fault, Fault::HealAll | Fault::HealNetwork),
                    })
                    .map_or((usize::MAX, u64::MAX), |(j, u)| (j, u.at_ms));
                // A cut between a leader and its followers shrinks ISRs only by lag and lets
                // nothing be acknowledged while it lasts: a crash then is safe, a crash soon after
                // it heals is not, and it may start soon after a crash.
                let cut = matches!(&s.fault, Fault::Partition { b: Target::Nodes(n), .. } if n == kafka.brokers());
                for &(j, c) in &crashes {
                    let after_start = if cut { j > undone_idx } else { j > i };
                    assert!(
                        !(after_start && c < undone.saturating_add(CRASH_SPACING_MS)),
                        "seed {seed}: a broker crash at {c} ms while {:?} (from {} ms, undone at {undone} ms) fences",
                        s.fault,
                        s.at_ms
                    );
                    assert!(
                        cut || !(j < i && s.at_ms < c + CRASH_SPACING_MS),
                        "seed {seed}: {:?} fences at {} ms, within the spacing after a broker crash at {c} ms",
                        s.fault,
                        s.at_ms
                    );
                }
            }
        }
    }
}
