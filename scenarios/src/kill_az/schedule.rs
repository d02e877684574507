//! The `kill-az` schedule: one zone loses power with every node in it at a seeded moment
//! between 2 and 5 minutes in, and everything is healed (the zone restarts) 1 to 2 minutes
//! later, leaving at least two minutes of editing after the heal.
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

/// `zones`: the candidates (non-empty).
pub fn draw(seed: u64, zones: &[String]) -> Vec<Scheduled> {
    let mut rng = sim::rng::derive(seed, "~schedule", 0);
    let zone = &zones[rng.gen_range(0..zones.len())];
    let kill_ms = rng.gen_range(120_000..300_000);
    let heal_ms = kill_ms + rng.gen_range(60_000..120_000);
    vec![
        Scheduled { at_ms: kill_ms, fault: Fault::Kill(Target::zone(zone)) },
        Scheduled { at_ms: heal_ms, fault: Fault::HealAll },
    ]
}
