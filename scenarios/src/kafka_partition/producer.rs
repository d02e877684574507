//! The producer workload: one idempotent producer session per partition, each sending small
//! batches of unique values and retrying every batch until it is acknowledged.

use std::time::Duration;

use rand::Rng;
use sim::NodeCtx;
use system::kafka::client::{Delivery, PartitionProducer};
use system::kafka::observations::ProduceAcked;
use system::kafka::{KafkaCluster, TopicPartition};

use super::{PARTITIONS, PRODUCE_UNTIL_MS, TOPIC};

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
    while ctx.clock.now_ms() < PRODUCE_UNTIL_MS {
        let count = rng.gen_range(2..=6u64);
        let values: Vec<String> =
            (n..n + count).map(|i| format!("{}.{}-p{partition}-{i}", ctx.name, ctx.incarnation)).collect();
        let delivery = producer
            .send(&mut rng, values.clone(), || {
                resets += 1;
                base_pid + resets
            })
            .await;
        record(&ctx, &kafka, &tp, values, &delivery);
        n += count;
        tokio::time::sleep(Duration::from_millis(rng.gen_range(40..120))).await;
    }
}

fn record(ctx: &NodeCtx, kafka: &KafkaCluster, tp: &TopicPartition, values: Vec<String>, d: &Delivery) {
    if d.resets > 0 {
        ctx.sometimes("workload.producer_reset");
    }
    ctx.observe(&ProduceAcked::delivered(kafka.prefix(), tp, kafka.acks(), values, d));
}
