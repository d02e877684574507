//! The `kill-az` schedule: one zone, drawn from the seed, loses power with every node in it at a
//! seeded moment between 2 and 5 minutes in, and everything is healed (the zone restarts) 1 to
//! 2 minutes later, leaving at least two minutes of editing after the heal.

use rand::Rng;
use sim::{Fault, Scheduled, Target};

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
