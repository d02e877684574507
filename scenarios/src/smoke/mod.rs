//! `smoke`: the simulator's own test. A small replicated log (Raft, one replica per zone) takes
//! appends from a seeded client while a seeded schedule kills nodes and a zone, crashes processes, partitions,
//! pauses, shapes links, skews clocks and tears unsynced writes; then everything heals. The run
//! ends (`sim::ending`) with the client stopped, a power loss of all three replicas at once, a
//! restart, and a verifier reading each replica's recovered log.
//!
//! Checked: every acknowledged append survives in every replica's recovered log, the recovered
//! logs are identical, and the log makes progress again after the last fault (liveness). A sweep must see each fault kind fire and a
//! torn write happen. `--config planted-leak` plants nondeterminism (a process-global counter in
//! the workload) so tests can prove `check-determinism` catches it.

mod checker;
mod client;
mod history;
mod replica;
mod schedule;
mod verifier;

use std::collections::BTreeMap;

use sim::ratio::Ratio;
use sim::{node_main, Ending, Plan, Scheduled, Topology};

use crate::scenario::{Built, Scenario, WindowProbe};

pub static SCENARIO: Scenario = Scenario {
    name: "smoke",
    about:
        "Raft-replicated log across 3 zones under kills, process crashes, a zone kill, partitions, pauses, clock skew and torn writes, ending in a power loss of all replicas",
    configs: &[("planted-leak", "plants a nondeterminism leak (for testing check-determinism)")],
    sweep_must_reach: &[
        "fault.kill",
        "fault.kill.zone",
        "fault.isolate",
        "fault.partition",
        "fault.pause",
        "fault.link",
        "fault.clock_skew",
        "fault.crash",
        "disk.torn_write",
        "consensus.leader_elected",
    ],
    window_probes: &[
        // A torn write needs a crash inside an unsynced append: about one seed in a hundred.
        WindowProbe { name: "disk.torn_write", min_rate: Ratio::new(1, 200) },
        WindowProbe { name: "raft.term_mismatch", min_rate: Ratio::new(1, 10) },
    ],
    draw: |seed, _config| schedule::draw(seed),
    build,
};

pub const REPLICAS: [&str; 3] = ["log-1", "log-2", "log-3"];
pub const ZONES: [&str; 3] = ["az-1", "az-2", "az-3"];
pub const CLIENT: &str = "client";
/// Reads the recovered log after the run's final power loss.
pub const VERIFIER: &str = "verifier";
/// Faults stop and everything heals here; the rest of the workload proves recovery.
pub const HEAL_AT_MS: u64 = 40_000;
/// The workload stops here and the run's ending begins.
pub const DURATION_MS: u64 = 55_000;
/// Healed and quiet before the final power loss: replication catches up (a heartbeat is 100 ms).
const SETTLE_MS: u64 = 3_000;
/// After the restart: an election (1 to 2 s) and the verifier's reads.
const RECOVER_MS: u64 = 10_000;

fn build(_seed: u64, config: Option<&str>, schedule: Vec<Scheduled>) -> Built {
    let mut topology = Topology::new();
    for (replica, zone) in REPLICAS.iter().zip(ZONES) {
        topology.add(replica, zone, "region-1");
    }
    topology.add(CLIENT, "edge", "region-1");
    topology.add(VERIFIER, "edge", "region-1");
    let mut plan = Plan::new(topology, DURATION_MS);
    let members: BTreeMap<u64, String> =
        REPLICAS.iter().enumerate().map(|(i, r)| (i as u64 + 1, r.to_string())).collect();
    for (i, name) in REPLICAS.iter().enumerate() {
        let members = members.clone();
        plan.node(name, node_main(move |ctx| replica::run(ctx, i as u64 + 1, members.clone())));
    }
    let leak = config == Some("planted-leak");
    plan.client(CLIENT, node_main(move |ctx| client::run(ctx, leak)));
    plan.verifier(VERIFIER, node_main(verifier::run));
    plan.ending = Some(Ending { settle_ms: SETTLE_MS, recover_ms: RECOVER_MS });
    plan.schedule = schedule;
    let checker = checker::LogChecker {
        replicas: REPLICAS.iter().map(|r| r.to_string()).collect(),
        workload_stop_ms: DURATION_MS,
    };
    Built::new(plan).checker(checker)
}
