//! The turmoil engine: runs the same plan on real tokio under turmoil, for plain `cargo test`.
//! It ticks every host each millisecond, so it is slower than madsim; its value is running with
//! no build flag. Pauses are modelled as held links (turmoil cannot freeze a host's tasks): the
//! paused node's timers still run, but nothing it sends or receives moves until it resumes.

use std::collections::BTreeSet;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use crate::ctx::NodeCtx;
use crate::net::Net;
use crate::plan::{Outcome, Plan, RunOptions};
use crate::world::{EngineOps, FaultDriver, Roster, TimeSource, WorldState};

/// How long past the plan's end turmoil may run before it gives up (it must not: the driver
/// stops at the plan's end).
const SLACK_MS: u64 = 60_000;

pub fn run(plan: Plan, mut options: RunOptions) -> Outcome {
    let trace = options.trace();
    let timeline = plan.timeline();
    let roster = Roster::of(&plan);
    let time = TimeSource::Shared(AtomicU64::new(0));
    let world = Arc::new(WorldState::new(options.seed, plan.topology.clone(), time, trace));
    crate::log::enter(&world);
    let mut sim = turmoil::Builder::new()
        .rng_seed(options.seed)
        .simulation_duration(Duration::from_millis(timeline.end_ms + SLACK_MS))
        .tick_duration(Duration::from_millis(1))
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(4))
        .build();
    let verifiers = plan.verifiers.into_iter().map(|(n, main)| (n, main, true));
    for (name, main, gated) in plan.mains.into_iter().map(|(n, main)| (n, main, false)).chain(verifiers) {
        let w = world.clone();
        let host = name.clone();
        sim.host(host.as_str(), move || {
            // A verifier's host exists from the start (so faults can name it), but runs nothing
            // until the ending's recovery bounces it.
            let fut =
                (!gated || w.recovery_started()).then(|| main(NodeCtx::sim(&w, Net::turmoil(&name, w.clone()), &name)));
            async move {
                match fut {
                    Some(fut) => fut.await,
                    None => std::future::pending().await,
                }
                Ok(())
            }
        });
    }
    let names: Vec<String> = plan.topology.names().map(String::from).collect();
    let mut driver = FaultDriver::new(world.clone());
    let mut clogged = BTreeSet::new();
    let mut pending = timeline.actions.into_iter().peekable();
    loop {
        let now = sim.elapsed();
        world.publish_time(now);
        while let Some((_, action)) = pending.next_if(|(at_ms, _)| u128::from(*at_ms) <= now.as_millis()) {
            let mut ops = TurmoilOps { sim: &mut sim, names: &names, clogged: &mut clogged };
            driver.act(&mut ops, &action, &roster);
        }
        if now.as_millis() >= u128::from(timeline.end_ms) {
            break;
        }
        if let Err(e) = sim.step() {
            world.fail(format!("turmoil stopped: {e}"));
            break;
        }
    }
    let sim_time_ms = world.now_ms();
    Outcome { world, sim_time_ms }
}

struct TurmoilOps<'s, 'a> {
    sim: &'s mut turmoil::Sim<'a>,
    names: &'s [String],
    clogged: &'s mut BTreeSet<(String, String)>,
}

impl EngineOps for TurmoilOps<'_, '_> {
    fn kill(&mut self, node: &str) {
        self.sim.crash(node);
    }
    fn start(&mut self, node: &str) {
        self.sim.bounce(node);
    }
    fn pause(&mut self, node: &str) {
        for other in self.names.iter().filter(|n| *n != node) {
            self.sim.hold(node, other.as_str());
        }
    }
    fn resume(&mut self, node: &str) {
        for other in self.names.iter().filter(|n| *n != node) {
            self.sim.release(node, other.as_str());
        }
        // Releasing a held link heals it entirely; partitions in force must stay.
        let cut: Vec<_> = self.clogged.iter().filter(|(a, b)| a == node || b == node).cloned().collect();
        for (a, b) in cut {
            self.sim.partition_oneway(a.as_str(), b.as_str());
        }
    }
    fn clog(&mut self, from: &str, to: &str) {
        self.clogged.insert((from.into(), to.into()));
        self.sim.partition_oneway(from, to);
    }
    fn unclog(&mut self, from: &str, to: &str) {
        self.clogged.remove(&(from.to_string(), to.to_string()));
        self.sim.repair_oneway(from, to);
    }
}
