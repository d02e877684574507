//! The `kill-az` schedule: one zone loses power with every node in it at a seeded moment
//! between a fifth and a half of the run (2 to 5 minutes in at the standard 10 minutes), and
//! everything is healed (the zone restarts) a tenth to a fifth of the run later (1 to 2
//! minutes), leaving at least a fifth of the run (two minutes) of editing after the heal.
//!
//! The zone is drawn from the seed among the zones that host a collaboration instance
//! ([`StackSpec::instance_zones`](crate::stack::spec::StackSpec::instance_zones)). What
//! `kill-az` adds over the store scenarios is a zone taking live documents with it: rooms whose
//! state is in one instance's memory move, and their editors reconnect and resync elsewhere.
//! With two instances of each service over three zones, a third of uniform draws would kill a
//! zone holding store members and a balancer but no collaboration instance (and, with the
//! round-robin placement, no instance of any service): realistic, but then no room moves and
//! the run only repeats what `postgres-failover`, `mongo-failover`, `redis-failover` and
//! `kafka-partition` check. Every zone holds members of every store cluster, so each draw still
//! costs each store a member (a primary or a partition leader when the seed puts one there).

use rand::Rng;
use sim::{Fault, Scheduled, Target};

/// `zones`: the candidates (non-empty); `duration_ms`: the run's workload length.
pub fn draw(seed: u64, zones: &[String], duration_ms: u64) -> Vec<Scheduled> {
    let mut rng = sim::rng::derive(seed, "~schedule", 0);
    let zone = &zones[rng.gen_range(0..zones.len())];
    let kill_ms = rng.gen_range(duration_ms / 5..duration_ms / 2);
    let heal_ms = kill_ms + rng.gen_range(duration_ms / 10..duration_ms / 5);
    vec![
        Scheduled { at_ms: kill_ms, fault: Fault::Kill(Target::zone(zone)) },
        Scheduled { at_ms: heal_ms, fault: Fault::HealAll },
    ]
}
