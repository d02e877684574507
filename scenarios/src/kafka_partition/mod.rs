//! `kafka-partition`: a three-broker Kafka-like log (`system::kafka`) with a KRaft controller
//! quorum, two idempotent producers and a two-member consumer group, while a seeded schedule
//! cuts partition leaders off from the controllers, from the clients or from both, isolates and
//! pauses them, and kills brokers, zones, the active controller and consumers; then everything
//! heals at [`HEAL_AT_MS`] (in the drawn schedule) and the rest of the run proves recovery.
//!
//! Checked (see the checker files): no record acknowledged under `acks=all` with
//! `min.insync.replicas=2` is lost, none is in the log twice, replicas converge; committed
//! offsets only move forward, no record below a committed offset was skipped, no consumer read
//! a record the log no longer has; the group is stable again and every acknowledged record is
//! consumed within bounds after the heal.
//!
//! Producers (up to five batches in flight per partition, idempotent) and consumers are the
//! plan's clients. The run ends with the world's ending (see [`ENDING`]): clients stop, every
//! fault heals, every server loses power at once and restarts, and a verifier reads every
//! partition from offset 0; the log checker judges the recovered disks and the verifier's read.
//! Faults may overlap (see the schedule for how broker crashes stay within Kafka's promise).
//!
//! The cluster comes from [`system::kafka::cluster`]; the workload and the controllers report
//! what happened as typed observations, and each checker is an object built from the cluster
//! handle and the workload's bounds, reading fault times from the observed faults.
//!
//! For the availability report every client operation is recorded as it completes
//! (`sim::observation::OpOutcome`, with its simulated latency), in three classes: [`PRODUCE`] (a
//! batch, retried by the producer until acknowledged; failed when that took longer than
//! `delivery.timeout.ms`, see the producer), [`CONSUME`] (a fetch, long polls included; failed
//! when no leader answered) and [`COMMIT`] (an offset commit; failed on any error). Data lost:
//! each acknowledged record the verifier did not read back at its offset after the final power
//! loss and recovery (`record`).
//!
//! `--config kafka-acks1-unclean` produces with `acks=1` to a topic with
//! `unclean.leader.election.enable=true`: a deposed or crashed leader's acknowledged tail is
//! then lost, and the checker must say so.
//!
//! `--config kafka-late-commits` turns off the coordinator's late-commit fence (see
//! `system::kafka::coordinator`), which is how Kafka itself behaves: an `OffsetCommit` whose
//! client timed out while the coordinator was cut off reaches it later, when the member's
//! generation is live there again, and overwrites the member's newer acknowledged commit. The
//! checker must catch the stored offset going back (in about 1.5% of seeds: 12 of seeds
//! 200..1000, none of 0..200, so `ci/unsafe-check.sh` sweeps 0..800).
//!
//! `--config kafka-inflight-no-idempotence` keeps five requests in flight without idempotence:
//! batches land twice or out of order, and the log checker must say so. `--config
//! kafka-no-dedup` plants a leader that ignores producer ids and sequences (a broken dedup),
//! for the duplicates checker.

pub mod checker;
mod consumer;
pub mod history;
pub mod log_checker;
pub mod offsets_checker;
mod producer;
mod schedule;
pub mod verifier;

use sim::{node_main, Plan, Topology};
use system::kafka::{Acks, KafkaClusterSpec};

use crate::scenario::{Built, Scenario, WindowProbe};
use checker::{FailoverMetrics, ProgressChecker};
use log_checker::LogChecker;
use offsets_checker::OffsetsChecker;
use sim::ratio::Ratio;

pub static SCENARIO: Scenario = Scenario {
    name: "kafka-partition",
    about: "Kafka-like log (3 brokers, KRaft quorum, ISR, idempotent producers, a consumer group) under leader isolation and broker kills",
    configs: &[
        ("kafka-acks1-unclean", "acks=1 and unclean leader election: acknowledged records can be lost (the checker must catch it)"),
        ("kafka-late-commits", "the coordinator accepts a late OffsetCommit older than the member's newer ones, as Kafka does: committed offsets go back (the checker must catch it)"),
        ("kafka-inflight-no-idempotence", "five produce requests in flight per partition without idempotence: retried batches land twice or out of order (the checker must catch it)"),
        ("kafka-no-dedup", "planted fault: leaders ignore producer ids and sequences, appending retried batches again (the duplicates checker must catch it)"),
    ],
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
    // About half the rates measured over seeds 0..300 (30%, 96%, 31%).
    window_probes: &[
        WindowProbe { name: "kafka.not_enough_replicas_after_append", min_rate: Ratio::new(3, 20) },
        WindowProbe { name: "kafka.duplicate_produce", min_rate: Ratio::new(1, 2) },
        WindowProbe { name: "kafka.isr_of_one_leader_lost", min_rate: Ratio::new(3, 20) },
    ],
    draw: |seed, config| schedule::draw(seed, &spec(config).cluster()),
    build,
};

pub const PRODUCERS: [&str; 2] = ["producer-1", "producer-2"];
pub const CONSUMERS: [&str; 2] = ["consumer-1", "consumer-2"];
/// Producers and consumers live here, so "cut the leader from the clients" is one zone.
pub const CLIENT_ZONE: &str = "edge";
pub const TOPIC: &str = "edits";
pub const PARTITIONS: u32 = 3;
pub const GROUP: &str = "log-consumers";
/// The availability report's class of a produced batch.
pub const PRODUCE: &str = "produce";
/// The availability report's class of a fetch.
pub const CONSUME: &str = "consume";
/// The availability report's class of an offset commit.
pub const COMMIT: &str = "commit";
/// The drawn schedule's faults stop and everything heals here (the checkers read the heal from
/// what happened, not from this).
pub const HEAL_AT_MS: u64 = 40_000;
/// Producers stop starting new batches here, so consumers can drain before the end.
pub const PRODUCE_UNTIL_MS: u64 = 50_000;
/// Clients stop here for good; then the run's ending (see [`ENDING`]).
pub const DURATION_MS: u64 = 60_000;
/// The run's ending: healed and quiet for `settle_ms` (more than the brokers' writeback
/// interval, and time for followers to catch up), then every server loses power at once and
/// restarts; the verifier reads every partition during `recover_ms`.
pub const ENDING: sim::Ending = sim::Ending { settle_ms: 3_000, recover_ms: 10_000 };
pub const VERIFIER: &str = "verifier";
/// The group must be stable again this long after the heal.
pub const REBALANCE_BOUND_MS: u64 = 15_000;
/// Producers must get an acknowledgement again this long after the heal.
pub const PRODUCE_RECOVERY_BOUND_MS: u64 = 10_000;

/// The cluster under test: three brokers and a KRaft quorum over three zones, one data topic;
/// the unsafe config produces with `acks=1` to a topic with unclean leader election.
pub fn spec(config: Option<&str>) -> KafkaClusterSpec {
    let mut spec = KafkaClusterSpec::new("kafka");
    spec.topics = vec![(TOPIC.into(), PARTITIONS)];
    match config {
        Some("kafka-acks1-unclean") => {
            spec.durability.acks = Acks::Leader;
            spec.durability.unclean_leader_election = true;
        }
        Some("kafka-late-commits") => spec.timing.broker.group.fence_late_commits = false,
        Some("kafka-inflight-no-idempotence") => spec.timing.client.enable_idempotence = false,
        Some("kafka-no-dedup") => spec.timing.broker.dedup_retries = false,
        _ => {}
    }
    spec
}

fn build(seed: u64, config: Option<&str>, schedule: Vec<sim::Scheduled>) -> Built {
    let spec = spec(config);
    let mut plan = Plan::new(Topology::new(), DURATION_MS);
    let kafka = spec.add_to(&mut plan);
    for client in PRODUCERS.iter().chain(CONSUMERS.iter()).chain([&VERIFIER]) {
        plan.topology.add(client, CLIENT_ZONE, &spec.region);
    }
    for (i, name) in PRODUCERS.iter().enumerate() {
        let kafka = kafka.clone();
        plan.client(name, node_main(move |ctx| producer::run(ctx, kafka.clone(), i as u64 + 1)));
    }
    let bounces = schedule::consumer_bounces(seed);
    for (name, bounce_at) in CONSUMERS.iter().zip(bounces) {
        let kafka = kafka.clone();
        plan.client(name, node_main(move |ctx| consumer::run(ctx, kafka.clone(), bounce_at)));
    }
    let verifier_kafka = kafka.clone();
    plan.verifier(VERIFIER, node_main(move |ctx| verifier::run(ctx, verifier_kafka.clone())));
    plan.ending = Some(ENDING);
    plan.schedule = schedule;
    let progress = ProgressChecker {
        kafka: kafka.clone(),
        group: GROUP.into(),
        topic: TOPIC.into(),
        consumers: CONSUMERS.map(String::from).to_vec(),
        rebalance_bound_ms: REBALANCE_BOUND_MS,
        produce_recovery_bound_ms: PRODUCE_RECOVERY_BOUND_MS,
        produce_until_ms: PRODUCE_UNTIL_MS,
    };
    Built::new(plan)
        .checker(LogChecker { kafka: kafka.clone() })
        .checker(OffsetsChecker { kafka: kafka.clone(), group: GROUP.into() })
        .checker(progress)
        .checker(FailoverMetrics { kafka })
}
