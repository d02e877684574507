//! The smoke fault schedule, drawn from the seed: torn writes armed from the start, then three to
//! six faults (each undone a few seconds later) before everything heals at [`HEAL_AT_MS`].
//!
//! Process crashes (the page cache kept, so a restart reads unsynced entries back) are drawn
//! too, and at most once a run, damage to one replica's synced data: a corrupt block of its log
//! or hard state (found by checksum when the restart reads it) or a wiped disk. The member must
//! notice, refuse to vote or acknowledge, and be repaired from the leader.
//!
//! Faults are bounded by what a three-replica Raft log promises: overlapping faults may take a
//! majority down for a while (the log then stalls, which is allowed), but nothing destroys synced
//! data on a majority (hence one damaged replica a run), so every acknowledged append must
//! survive.
//!
//! Two kinds aim at Raft's deciding windows. The leader cut off from the other replicas but not
//! from the client keeps appending what the client sends, uncommitted, until check-quorum
//! deposes it; the majority elects a leader whose entries take the same indexes in a newer term,
//! so when the cut heals the old leader's log holds the leader's index with another term, and
//! the consistency check truncates it (`raft.term_mismatch`). And a replica's disk returns I/O
//! errors for a while (`io_error`): the member must fail-stop — no vote or acknowledgement past
//! a failed write, fsync or hard-state write — and rebuild from its disk.

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use sim::disk::DiskFaults;
use sim::link::LinkShape;
use sim::ratio::Ratio;
use sim::{Fault, Scheduled, Target};

use super::{CLIENT, HEAL_AT_MS, REPLICAS, ZONES};

pub fn draw(seed: u64) -> Vec<Scheduled> {
    let mut rng = sim::rng::derive(seed, "~schedule", 0);
    let torn = DiskFaults { torn_writes: true, ..DiskFaults::default() };
    let mut schedule = vec![Scheduled { at_ms: 0, fault: Fault::Disk { target: replicas(), faults: torn } }];
    let count = rng.gen_range(3..=6);
    let mut at = 2_000;
    let mut damaged = false;
    for _ in 0..count {
        at += rng.gen_range(1_000..6_000);
        if at >= HEAL_AT_MS - 8_000 {
            break;
        }
        // One kind in eleven damages a replica's synced data, once a run at most.
        if !damaged && rng.gen_ratio(1, 11) {
            damaged = true;
            schedule.extend(damage(&mut rng, at));
        } else {
            schedule.extend(one(&mut rng, at));
        }
    }
    schedule.push(Scheduled { at_ms: HEAL_AT_MS, fault: Fault::HealAll });
    schedule
}

fn replicas() -> Target {
    Target::Nodes(REPLICAS.iter().map(|r| r.to_string()).collect())
}

fn pick<'a>(rng: &mut ChaCha8Rng, from: &[&'a str]) -> &'a str {
    from.choose(rng).expect("non-empty")
}

/// Damage to one replica's synced data, and its restart (which reads the damage back).
fn damage(rng: &mut ChaCha8Rng, at: u64) -> Vec<Scheduled> {
    let t = Target::node(pick(rng, &REPLICAS));
    let restart_at = at + rng.gen_range(500..4_000);
    if rng.gen_ratio(1, 2) {
        let corrupt = Fault::Corrupt { target: t.clone(), file: None, file_prefix: None, block: None };
        vec![
            Scheduled { at_ms: at, fault: corrupt },
            // A crash-restart of the damaged replica: its recovery reads the block.
            Scheduled { at_ms: restart_at, fault: Fault::Restart(t) },
        ]
    } else {
        vec![Scheduled { at_ms: at, fault: Fault::Wipe(t) }, Scheduled { at_ms: restart_at, fault: Fault::HealAll }]
    }
}

/// One fault and the fault that undoes it.
fn one(rng: &mut ChaCha8Rng, at: u64) -> Vec<Scheduled> {
    let undo_at = at + rng.gen_range(1_000..6_000);
    let (fault, undo) = match rng.gen_range(0..10) {
        0 => {
            let t = if rng.gen_ratio(1, 2) { Target::role("log-leader") } else { Target::node(pick(rng, &REPLICAS)) };
            (Fault::Kill(t.clone()), Fault::Restart(Target::Nodes(REPLICAS.iter().map(|s| s.to_string()).collect())))
        }
        1 => {
            let z = Target::zone(pick(rng, &ZONES));
            (Fault::Kill(z.clone()), Fault::Restart(z))
        }
        2 => {
            let t = if rng.gen_ratio(1, 2) { Target::role("log-leader") } else { Target::node(pick(rng, &REPLICAS)) };
            (Fault::Isolate(t), Fault::HealNetwork)
        }
        3 => {
            let (a, b) = (pick(rng, &ZONES), pick(rng, &ZONES));
            let b = if a == b { ZONES[(ZONES.iter().position(|z| *z == a).unwrap_or(0) + 1) % 3] } else { b };
            (Fault::Partition { a: Target::zone(a), b: Target::zone(b) }, Fault::HealNetwork)
        }
        4 => {
            let t = Target::node(pick(rng, &REPLICAS));
            (Fault::Pause(t.clone()), Fault::Resume(t))
        }
        5 => {
            let shape = LinkShape {
                latency_ms: rng.gen_range(10..200),
                jitter_ms: rng.gen_range(0..100),
                loss: Ratio::new(1, rng.gen_range(5..50)),
            };
            let (a, b) = (Target::zone(pick(rng, &ZONES)), Target::All);
            (Fault::Link { a: a.clone(), b: b.clone(), shape }, Fault::Link { a, b, shape: LinkShape::default() })
        }
        7 => {
            let leader = Target::role("log-leader");
            (Fault::Partition { a: leader, b: replicas() }, Fault::HealNetwork)
        }
        8 => {
            let t = Target::node(pick(rng, &REPLICAS));
            let failing = DiskFaults {
                io_error: Ratio::new(1, rng.gen_range(3..20)),
                torn_writes: true,
                ..DiskFaults::default()
            };
            let torn = DiskFaults { torn_writes: true, ..DiskFaults::default() };
            (Fault::Disk { target: t.clone(), faults: failing }, Fault::Disk { target: t, faults: torn })
        }
        9 => {
            // The process dies, the page cache stays: a restart finds unsynced entries on disk.
            let t = if rng.gen_ratio(1, 2) { Target::role("log-leader") } else { Target::node(pick(rng, &REPLICAS)) };
            (Fault::Crash(t), Fault::HealAll)
        }
        _ => {
            let mut nodes = REPLICAS.to_vec();
            nodes.push(CLIENT);
            let t = Target::node(pick(rng, &nodes));
            let offset_ms = rng.gen_range(-30_000..30_000);
            (Fault::ClockSkew { target: t.clone(), offset_ms }, Fault::ClockSkew { target: t, offset_ms: 0 })
        }
    };
    // Kill faults are undone by restarting only the dead: Restart of a live node would crash it.
    let undo = match undo {
        Fault::Restart(Target::Nodes(_)) => Fault::HealAll,
        other => other,
    };
    vec![Scheduled { at_ms: at, fault }, Scheduled { at_ms: undo_at, fault: undo }]
}
