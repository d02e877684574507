//! `kafka-partition`: a three-broker Kafka-like log (`system::kafka`) with a KRaft controller
//! quorum, two idempotent producers and a two-member consumer group, while a seeded schedule
//! cuts partition leaders off from the controllers, from the clients or from both, isolates and
//! pauses them, and kills brokers, zones, the active controller and consumers; then everything
//! heals at [`HEAL_AT_MS`] and the rest of the run proves recovery.
//!
//! Checked (see the checker files): no record acknowledged under `acks=all` with
//! `min.insync.replicas=2` is lost, none is in the log twice, replicas converge; committed
//! offsets only move forward, no record below a committed offset was skipped, no consumer read
//! a record the log no longer has; the group is stable again and every acknowledged record is
//! consumed within bounds after the heal.
//!
//! `--config kafka-acks1-unclean` produces with `acks=1` to a topic with
//! `unclean.leader.election.enable=true`: a deposed or crashed leader's acknowledged tail is
//! then lost, and the checker must say so.

mod checker;
mod consumer;
mod history;
mod log_checker;
mod offsets_checker;
mod producer;
mod schedule;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use sim::{node_main, Plan, Topology};
use system::kafka::{Acks, BrokerSettings, ControllerConfig, ControllerSettings, TopicSpec};

use crate::scenario::{Built, Scenario};
use history::History;

pub static SCENARIO: Scenario = Scenario {
    name: "kafka-partition",
    about: "Kafka-like log (3 brokers, KRaft quorum, ISR, idempotent producers, a consumer group) under leader isolation and broker kills",
    configs: &[("kafka-acks1-unclean", "acks=1 and unclean leader election: acknowledged records can be lost (the checker must catch it)")],
    sweep_must_reach: &[
        "fault.kill",
        "fault.partition",
        "fault.isolate",
        "fault.pause",
        "disk.unsynced_lost",
        "kafka.leader_failover",
        "kafka.broker_fenced",
        "kafka.isr_shrink",
        "kafka.isr_expand",
        "kafka.follower_truncated",
        "kafka.not_enough_replicas",
        "kafka.coordinator_loaded",
        "kafka.controller_elected",
        "workload.rebalance",
        "workload.resumed_from_commit",
    ],
    draw: |seed, _config| schedule::draw(seed),
    build,
};

pub const CONTROLLERS: [&str; 3] = ["kraft-1", "kraft-2", "kraft-3"];
pub const BROKERS: [&str; 3] = ["kafka-1", "kafka-2", "kafka-3"];
pub const PRODUCERS: [&str; 2] = ["producer-1", "producer-2"];
pub const CONSUMERS: [&str; 2] = ["consumer-1", "consumer-2"];
pub const ZONES: [&str; 3] = ["az-1", "az-2", "az-3"];
/// Producers and consumers live here, so "cut the leader from the clients" is one zone.
pub const CLIENT_ZONE: &str = "edge";
pub const TOPIC: &str = "edits";
pub const PARTITIONS: u32 = 3;
pub const GROUP: &str = "log-consumers";
/// Faults stop and everything heals here.
pub const HEAL_AT_MS: u64 = 40_000;
/// Producers stop starting new batches here, so consumers can drain before the end.
pub const PRODUCE_UNTIL_MS: u64 = 50_000;
pub const DURATION_MS: u64 = 60_000;
/// The group must be stable again this long after the heal.
pub const REBALANCE_BOUND_MS: u64 = 15_000;
/// Producers must get an acknowledgement again this long after the heal.
pub const PRODUCE_RECOVERY_BOUND_MS: u64 = 10_000;

/// The durability settings a run uses.
#[derive(Clone, Copy, Debug)]
pub struct Durability {
    pub acks: Acks,
    pub unclean: bool,
}

fn build(seed: u64, config: Option<&str>, schedule: Vec<sim::Scheduled>) -> Built {
    let durability = match config {
        Some("kafka-acks1-unclean") => Durability {
            acks: Acks::Leader,
            unclean: true,
        },
        _ => Durability {
            acks: Acks::All,
            unclean: false,
        },
    };
    let history = Arc::new(Mutex::new(History::default()));
    let mut plan = Plan::new(topology(), DURATION_MS);
    add_controllers(&mut plan, durability, &history);
    for (i, name) in BROKERS.iter().enumerate() {
        let settings = BrokerSettings::new(i as u32 + 1);
        let controllers: Vec<String> = CONTROLLERS.iter().map(|c| c.to_string()).collect();
        plan.node(
            name,
            node_main(move |ctx| system::kafka::broker_node::run(ctx, settings.clone(), controllers.clone())),
        );
    }
    for (i, name) in PRODUCERS.iter().enumerate() {
        let h = history.clone();
        plan.node(
            name,
            node_main(move |ctx| producer::run(ctx, h.clone(), durability.acks, i as u64 + 1)),
        );
    }
    let bounces = schedule::consumer_bounces(seed);
    for (name, bounce_at) in CONSUMERS.iter().zip(bounces) {
        let h = history.clone();
        plan.node(name, node_main(move |ctx| consumer::run(ctx, h.clone(), bounce_at)));
    }
    let faults = schedule.clone();
    plan.schedule = schedule;
    Built::new(plan).checker(move |outcome: &sim::Outcome, verdict: &mut crate::Verdict| {
        let h = history.lock().expect("history");
        let v = checker::check(outcome, &h, &faults, durability);
        verdict.violations.extend(v.violations);
        verdict.metrics.extend(v.metrics);
    })
}

fn topology() -> Topology {
    let mut t = Topology::new();
    for ((controller, broker), zone) in CONTROLLERS.iter().zip(BROKERS).zip(ZONES) {
        t.add(controller, zone, "region-1");
        t.add(broker, zone, "region-1");
    }
    for client in PRODUCERS.iter().chain(CONSUMERS.iter()) {
        t.add(client, CLIENT_ZONE, "region-1");
    }
    t
}

fn add_controllers(plan: &mut Plan, durability: Durability, history: &Arc<Mutex<History>>) {
    let mut edits = TopicSpec::new(TOPIC, PARTITIONS);
    edits.unclean_leader_election = durability.unclean;
    let settings = ControllerSettings {
        topics: vec![edits, TopicSpec::offsets()],
        ..ControllerSettings::default()
    };
    let voters: BTreeMap<u64, String> = CONTROLLERS
        .iter()
        .enumerate()
        .map(|(i, c)| (i as u64 + 1, c.to_string()))
        .collect();
    let h = history.clone();
    let observer: system::kafka::Observer =
        Arc::new(move |t_ms, applied| h.lock().expect("history").note_metadata(t_ms, applied));
    for (i, name) in CONTROLLERS.iter().enumerate() {
        let config = ControllerConfig {
            id: i as u64 + 1,
            voters: voters.clone(),
            settings: settings.clone(),
            observer: Some(observer.clone()),
        };
        plan.node(
            name,
            node_main(move |ctx| system::kafka::controller_node::run(ctx, config.clone())),
        );
    }
}

/// The broker id of a broker node (`kafka-2` → 2).
pub fn broker_id(node: &str) -> Option<u32> {
    BROKERS.iter().position(|b| *b == node).map(|i| i as u32 + 1)
}
