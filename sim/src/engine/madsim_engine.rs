//! The madsim engine: event-driven (idle simulated time is free), with madsim's own determinism
//! (it seeds HashMap, intercepts SystemTime and getrandom). Nodes are madsim nodes; partitions are
//! madsim clogs, under which TCP segments are held and retried, as on a real network.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use madsim::runtime::Handle;
use madsim::task::NodeId;

use crate::ctx::NodeCtx;
use crate::ending::Action;
use crate::net::{Directory, Net};
use crate::plan::{Outcome, Plan, RunOptions};
use crate::world::{EngineOps, FaultDriver, Roster, TimeSource, WorldState};

pub fn run(plan: Plan, options: RunOptions) -> Outcome {
    let mut config = madsim::Config::default();
    config.net.send_latency = Duration::from_millis(1)..Duration::from_millis(4);
    let rt = madsim::runtime::Runtime::with_seed_and_config(options.seed, config);
    rt.block_on(drive(plan, options))
}

async fn drive(plan: Plan, mut options: RunOptions) -> Outcome {
    let base = tokio::time::Instant::now();
    let trace = options.trace();
    let timeline = plan.timeline();
    let roster = Roster::of(&plan);
    let world = Arc::new(WorldState::new(options.seed, plan.topology.clone(), TimeSource::Tokio(base), trace));
    let mut directory = Directory::default();
    for name in plan.topology.names() {
        directory.insert(name, super::sim_ip(&plan.topology, name), 0);
    }
    crate::log::enter(&world);
    let directory = Arc::new(directory);
    let handle = Handle::current();
    let mut ids = BTreeMap::new();
    let verifiers = plan.verifiers.into_iter().map(|(n, main)| (n, main, true));
    for (name, main, gated) in plan.mains.into_iter().map(|(n, main)| (n, main, false)).chain(verifiers) {
        let (w, d, n) = (world.clone(), directory.clone(), name.clone());
        let node = handle
            .create_node()
            .name(&name)
            .ip(super::sim_ip(&plan.topology, &name))
            .init(move || {
                // A verifier's node exists from the start (so faults can name it), but runs
                // nothing until the ending's recovery restarts it.
                if gated && !w.recovery_started() {
                    let idle: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(std::future::pending());
                    return idle;
                }
                let net = Net::tokio(&n, d.clone(), Some(w.clone()));
                main(NodeCtx::sim(&w, net, &n))
            })
            .build();
        ids.insert(name, node.id());
    }
    let mut ops = MadsimOps { handle, ids };
    let mut driver = FaultDriver::new(world.clone());
    for (at_ms, action) in &timeline.actions {
        let at = base + Duration::from_millis(*at_ms);
        // madsim's sleep_until moves time on by a millisecond even when `at` has come. Faults
        // keep that (their runs' trace hashes stay as they were); the ending's steps that share
        // a moment happen at that moment.
        if matches!(action, Action::Fault(_)) || tokio::time::Instant::now() < at {
            crate::timer::sleep_until(at).await;
        }
        driver.act(&mut ops, action, &roster);
    }
    crate::timer::sleep_until(base + Duration::from_millis(timeline.end_ms)).await;
    let sim_time_ms = world.now_ms();
    // madsim drops a task's future only when the task is next scheduled; tasks parked on
    // something that holds their own waker would never be, and would keep the node, its context
    // and the whole world alive after the run. Killing every node lets them all go.
    for id in ops.ids.values() {
        ops.handle.kill(*id);
    }
    crate::timer::sleep(Duration::from_millis(1)).await;
    if std::env::var_os("CHAOS_NET_STATS").is_some() {
        eprintln!("madsim messages: {}", madsim::net::NetSim::current().stat().msg_count);
    }
    Outcome { world, sim_time_ms }
}

struct MadsimOps {
    handle: Handle,
    ids: BTreeMap<String, NodeId>,
}

impl MadsimOps {
    fn id(&self, node: &str) -> NodeId {
        *self.ids.get(node).unwrap_or_else(|| panic!("no madsim node {node}"))
    }
}

impl EngineOps for MadsimOps {
    fn kill(&mut self, node: &str) {
        self.handle.kill(self.id(node));
    }
    fn start(&mut self, node: &str) {
        self.handle.restart(self.id(node));
    }
    fn pause(&mut self, node: &str) {
        self.handle.pause(self.id(node));
    }
    fn resume(&mut self, node: &str) {
        self.handle.resume(self.id(node));
    }
    fn clog(&mut self, from: &str, to: &str) {
        madsim::net::NetSim::current().clog_link(self.id(from), self.id(to));
    }
    fn unclog(&mut self, from: &str, to: &str) {
        madsim::net::NetSim::current().unclog_link(self.id(from), self.id(to));
    }
}
