//! `kafka-partition` on the turmoil engine, in plain `cargo test`: seeded runs of the default
//! configuration pass, a seed replays to the same trace hash, the unsafe configuration
//! (`acks=1` with unclean leader election) loses acknowledged records on some seed of a range,
//! and two clusters built from the same spec under different prefixes share one world.
#![cfg(not(madsim))]

use std::time::Duration;

mod common;

use scenarios::RunReport;
use sim::{node_main, NodeCtx, Plan, RunOptions, Topology};
use system::kafka::client::PartitionProducer;
use system::kafka::observations::ProduceAcked;
use system::kafka::{KafkaCluster, KafkaClusterSpec, TopicPartition};

fn run(seed: u64, config: Option<&str>) -> RunReport {
    common::run("kafka-partition", seed, config)
}

#[test]
fn kafka_seeds_pass_on_turmoil() {
    for seed in 0..2 {
        let r = run(seed, None);
        assert!(r.passed, "seed {seed}: {:?}\nreplay: {}", r.violations, r.replay_command());
        assert!(r.metrics.get("produced_per_sim_s").is_some_and(|v| *v > 10.0), "seed {seed}: {:?}", r.metrics);
    }
}

/// The child-process entry point of `common::hash_in_child` (run by it with `--ignored`).
#[test]
#[ignore = "a child-process entry point: the cross-process hash tests run it"]
fn hash_child() {
    common::hash_child();
}

/// The same seed gives the same trace in two processes (see `common` for why not in one).
#[test]
fn kafka_same_seed_same_hash_across_processes_on_turmoil() {
    let hash = || common::hash_in_child("kafka-partition", 7, None);
    assert_eq!(hash(), hash());
}

/// Seeds searched for a lost record under the unsafe config; the search stops at the first.
const UNSAFE_SEEDS: std::ops::Range<u64> = 0..20;

#[test]
fn kafka_acks1_unclean_loses_acknowledged_records_on_turmoil() {
    let lost = UNSAFE_SEEDS
        .map(|seed| run(seed, Some("kafka-acks1-unclean")))
        .find(|r| r.violations.iter().any(|v| v.kind == "lost record"));
    assert!(lost.is_some(), "acks=1 with unclean election lost nothing in seeds {UNSAFE_SEEDS:?}");
}

/// Produces `count` batches of values named after the cluster, each acknowledged, to `edits-0`.
async fn produce(mut ctx: NodeCtx, kafka: KafkaCluster, count: u64) {
    let mut rng = ctx.rng.clone();
    let tp = TopicPartition::new("edits", 0);
    let client = kafka.client(&mut ctx);
    let mut producer = PartitionProducer::new(client, tp.clone(), kafka.acks(), 1);
    let mut resets = 1;
    for i in 0..count {
        let values = vec![format!("{}-v{i}", kafka.prefix())];
        let d = producer
            .send(&mut rng, values.clone(), || {
                resets += 1;
                resets
            })
            .await;
        ctx.observe(&ProduceAcked::delivered(kafka.prefix(), &tp, kafka.acks(), values, &d));
        sim::timer::sleep(Duration::from_millis(100)).await;
    }
}

/// What one cluster of the shared world served, and whether its roles stayed its own.
fn judge(outcome: &sim::Outcome, kafka: &KafkaCluster) -> Result<usize, String> {
    let p = kafka.prefix();
    let acked: Vec<String> = outcome.observations(|o| {
        o.of::<ProduceAcked>().filter(|a| a.value.cluster == p).flat_map(|a| a.value.values).collect()
    });
    let tp = TopicPartition::new("edits", 0);
    let logs = kafka.final_logs(&outcome.world);
    let log = logs[&tp].leader_log().ok_or(format!("{p}: no single leader of {tp}"))?;
    let values: Vec<&str> = log.iter().map(|r| r.value.as_str()).collect();
    if acked.is_empty() || acked.iter().any(|a| !values.contains(&a.as_str())) {
        return Err(format!("{p}: acknowledged {acked:?}, log holds {values:?}"));
    }
    if let Some(foreign) = values.iter().find(|v| !v.starts_with(&format!("{p}-"))) {
        return Err(format!("{p}: its log holds another cluster's record {foreign}"));
    }
    let world = &outcome.world;
    let leaders = world.holders_of(&kafka.role_leader(&tp));
    let active = world.holders_of(&kafka.role_active_controller());
    let own_leader = leaders.len() == 1 && kafka.brokers().contains(&leaders[0]);
    let own_controller = active.len() == 1 && kafka.controllers().contains(&active[0]);
    if !(own_leader && own_controller) {
        return Err(format!("{p}: roles resolve to {leaders:?} (leader) and {active:?} (controller)"));
    }
    Ok(acked.len())
}

#[test]
fn two_kafka_clusters_share_a_world_on_turmoil() {
    let verdicts = std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(|| {
            let mut plan = Plan::new(Topology::new(), 20_000);
            let clusters: Vec<KafkaCluster> = ["kafka", "audit"]
                .iter()
                .map(|prefix| {
                    let mut spec = KafkaClusterSpec::new(prefix);
                    spec.topics = vec![("edits".into(), 1)];
                    spec.add_to(&mut plan)
                })
                .collect();
            for kafka in &clusters {
                let name = format!("{}-producer", kafka.prefix());
                plan.topology.add(&name, "edge", "region-1");
                let kafka = kafka.clone();
                plan.node(&name, node_main(move |ctx| produce(ctx, kafka.clone(), 20)));
            }
            let outcome = sim::engine::run(plan, RunOptions { seed: 3, ..RunOptions::default() });
            clusters.iter().map(|k| judge(&outcome, k)).collect::<Vec<_>>()
        })
        .expect("thread starts")
        .join()
        .expect("run completes");
    for verdict in verdicts {
        assert_eq!(verdict, Ok(20));
    }
}
