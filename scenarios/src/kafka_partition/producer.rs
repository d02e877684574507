//! The producer workload: one producer session per partition, each sending windows of small
//! batches of unique values (up to `max.in.flight.requests.per.connection` batches in flight
//! at once) and retrying every batch until it is acknowledged. A value names its producer
//! node, life, partition and a counter that grows in production order, so the log checker can
//! see a batch appended twice or after one produced later.
//!
//! Each batch is one `produce` operation for the availability report, from its window's send to
//! the window's last acknowledgement (the client returns a window's deliveries together),
//! failed when that took longer than [`DELIVERY_TIMEOUT_MS`].

use std::time::Duration;

use rand::Rng;
use sim::NodeCtx;
use system::kafka::client::{Delivery, PartitionProducer};
use system::kafka::observations::ProduceAcked;
use system::kafka::{KafkaCluster, TopicPartition};

use super::{PARTITIONS, PRODUCE, PRODUCE_UNTIL_MS, TOPIC};
use crate::availability::op_since;

/// `delivery.timeout.ms` (120000 in Kafka), scaled as `request.timeout.ms` is: a batch the
/// producer retried for longer than this failed, as far as its caller is concerned (Kafka's
/// producer would have given up on it).
pub const DELIVERY_TIMEOUT_MS: u64 = 12_000;

pub async fn run(mut ctx: NodeCtx, kafka: KafkaCluster, index: u64) {
    for partition in 0..PARTITIONS {
        let sub = ctx.fork();
        tokio::spawn(pipeline(sub, kafka.clone(), index, partition));
    }
    std::future::pending::<()>().await;
}

async fn pipeline(mut ctx: NodeCtx, kafka: KafkaCluster, index: u64, partition: u32) {
    let mut rng = ctx.rng.clone();
    let tp = TopicPartition::new(TOPIC, partition);
    let acks = kafka.acks();
    let client = kafka.client(&mut ctx);
    // Unique per producer node, life and partition; a reset takes the next id.
    let base_pid = (index << 40) | (ctx.incarnation << 20) | (u64::from(partition) << 12);
    let mut resets = 0u64;
    let mut producer = PartitionProducer::new(client, tp.clone(), acks, base_pid);
    let mut n = 0u64;
    let in_flight = kafka.client_settings().max_in_flight_requests.max(1);
    while ctx.clock.now_ms() < PRODUCE_UNTIL_MS {
        let mut window = Vec::new();
        for _ in 0..rng.gen_range(1..=in_flight) {
            let count = rng.gen_range(2..=6u64);
            window.push((n..n + count).map(|i| format!("{}.{}-p{partition}-{i}", ctx.name, ctx.incarnation)).collect());
            n += count;
        }
        let invoked_ms = ctx.clock.now_ms();
        let deliveries = producer
            .send_window(&mut rng, window.clone(), || {
                resets += 1;
                base_pid + resets
            })
            .await;
        let in_time = ctx.clock.now_ms().saturating_sub(invoked_ms) <= DELIVERY_TIMEOUT_MS;
        for (values, delivery) in window.into_iter().zip(&deliveries) {
            op_since(&ctx, PRODUCE, in_time, invoked_ms);
            record(&ctx, &kafka, &tp, values, delivery);
        }
        // Paced per batch, so a window of several batches costs the run no more records than
        // as many single batches did.
        let pause_ms = rng.gen_range(40..120) * deliveries.len() as u64;
        sim::timer::sleep(Duration::from_millis(pause_ms)).await;
    }
}

fn record(ctx: &NodeCtx, kafka: &KafkaCluster, tp: &TopicPartition, values: Vec<String>, d: &Delivery) {
    if d.resets > 0 {
        ctx.sometimes("workload.producer_reset");
    }
    ctx.observe(&ProduceAcked::delivered(kafka.prefix(), tp, kafka.acks(), values, d));
}
