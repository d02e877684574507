//! The producer workload: one idempotent producer session per partition, each sending small
//! batches of unique values and retrying every batch until it is acknowledged.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use serde_json::json;
use sim::NodeCtx;
use system::kafka::client::{Delivery, PartitionProducer};
use system::kafka::{Acks, KafkaCluster, TopicPartition};

use super::history::{Acked, History};
use super::{PARTITIONS, PRODUCE_UNTIL_MS, TOPIC};

pub async fn run(mut ctx: NodeCtx, kafka: KafkaCluster, history: Arc<Mutex<History>>, index: u64) {
    for partition in 0..PARTITIONS {
        let sub = ctx.fork();
        tokio::spawn(pipeline(sub, kafka.clone(), history.clone(), index, partition));
    }
    std::future::pending::<()>().await;
}

async fn pipeline(ctx: NodeCtx, kafka: KafkaCluster, history: Arc<Mutex<History>>, index: u64, partition: u32) {
    let mut rng = ctx.rng.clone();
    let tp = TopicPartition::new(TOPIC, partition);
    let acks = kafka.acks();
    let client = kafka.client(ctx.net.clone());
    // Unique per producer node, life and partition; a reset takes the next id.
    let base_pid = (index << 40) | (ctx.incarnation << 20) | (u64::from(partition) << 12);
    let mut resets = 0u64;
    let mut producer = PartitionProducer::new(client, tp.clone(), acks, base_pid);
    let mut n = 0u64;
    while ctx.clock.now_ms() < PRODUCE_UNTIL_MS {
        let count = rng.gen_range(2..=6u64);
        let values: Vec<String> = (n..n + count)
            .map(|i| format!("{}.{}-p{partition}-{i}", ctx.name, ctx.incarnation))
            .collect();
        let delivery = producer
            .send(&mut rng, values.clone(), || {
                resets += 1;
                base_pid + resets
            })
            .await;
        record(&ctx, &history, &tp, acks, &values, &delivery);
        n += count;
        tokio::time::sleep(Duration::from_millis(rng.gen_range(40..120))).await;
    }
}

fn record(
    ctx: &NodeCtx,
    history: &Arc<Mutex<History>>,
    tp: &TopicPartition,
    acks: Acks,
    values: &[String],
    d: &Delivery,
) {
    let t_ms = ctx.clock.now_ms();
    ctx.trace("workload.acked", json!({ "tp": tp.to_string(), "offset": d.base_offset, "count": values.len(), "attempts": d.attempts, "duplicate": d.duplicate }));
    if d.resets > 0 {
        ctx.sometimes("workload.producer_reset");
    }
    let mut h = history.lock().expect("history");
    h.produce_attempts += u64::from(d.attempts);
    h.producer_resets += u64::from(d.resets);
    h.duplicate_acks += u64::from(d.duplicate);
    for (i, v) in values.iter().enumerate() {
        h.acked.push(Acked {
            value: v.clone(),
            tp: tp.clone(),
            offset: d.base_offset + i as u64,
            t_ms,
            acks,
            producer_id: d.producer_id,
            seq: d.base_seq + i as u64,
        });
    }
}
