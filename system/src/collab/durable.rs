//! The durable path's producer: every update a room applied goes to the log, keyed by
//! document, before anyone is told it is safe.
//!
//! One producer session per partition of [`TOPIC`] (the model's producer is per partition;
//! Kafka's default partitioner also sends one key to one partition, so a document's updates stay
//! in order). Each session is idempotent (`enable.idempotence`, a producer id drawn from the
//! node's rng, fresh after a sequence reset) and produces with `acks=all`; a batch is retried
//! with `retry.backoff.ms` until acknowledged, however long the log is unavailable
//! (`delivery.timeout.ms` unbounded). After the acknowledgement its records are reported
//! [`Report::Durable`], and only then does the room acknowledge the edits (under the unsafe
//! `ack_before_durable` the room acknowledges as soon as [`Durable::enqueue`] took the update).
//!
//! `linger_ms` is Kafka's `linger.ms`: a batch waits that long after its first record for more
//! (up to [`BATCH_SIZE_BYTES`]) before it goes out, trading latency for fewer, larger
//! requests. 0 (the default) sends as soon as the previous batch is done. It is safe on its
//! own: an edit waits longer for its acknowledgement. With `ack_before_durable` it is the
//! write-behind the `kill-az` unsafe config runs: edits acknowledged on receipt, written to the
//! log up to `linger_ms` later.
//!
//! The queue in front of each partition is bounded in bytes, as Kafka's `buffer.memory` bounds
//! a producer's: when an update does not fit the room is told at once (the enqueue fails;
//! Kafka's `max.block.ms` of 0), and closes rather than keep an edit it cannot make durable.
//! The bound is for a log that is down or far behind, not for a burst: 32 MiB (Kafka's default)
//! holds hundreds of thousands of typing updates. A bound of 1,024 updates closed rooms under nothing
//! worse than 50 clients with 32 updates each in flight (`stack bench`).
//!
//! A record value is the lower-case hex of [`DocUpdate::encode`] (the model's Kafka values are
//! strings), as the log consumers decode it.

use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sim::NodeCtx;
use tokio::sync::mpsc;

use crate::byte_queue::{byte_queue, ByteReceiver, ByteSender};
use crate::doc_update::{DocId, DocUpdate, TOPIC};
use crate::kafka::client::PartitionProducer;
use crate::kafka::{Acks, KafkaCluster, TopicPartition};

/// Kafka's `batch.size` (its default): a batch takes more records while their values come to
/// less than this (a record larger than it goes alone). With one batch in flight per
/// partition, the batch size bounds a document's durable throughput: at 32 records a batch the
/// acknowledgements of `stack bench`'s closed loop waited on the cap at some 7,000 updates/s.
pub const BATCH_SIZE_BYTES: usize = 16 << 10;

/// What the producer tells a room about one of its updates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Report {
    /// The log acknowledged it with `acks=all`.
    Durable(u64),
}

/// One update to produce; `reply` hears about it by its room-local sequence number.
pub struct Produce {
    pub doc: DocId,
    pub seq: u64,
    pub update: Vec<u8>,
    pub reply: mpsc::Sender<super::rooms::RoomMsg>,
}

/// Kafka's `buffer.memory` (its default): bytes of updates queued per partition.
pub const BUFFER_MEMORY_BYTES: usize = 32 << 20;

/// The node's producer: one queue per partition, bounded in bytes.
#[derive(Clone)]
pub struct Durable {
    queues: Vec<ByteSender<Produce>>,
}

impl Durable {
    /// Starts a producer task per partition of [`TOPIC`], each queue holding `capacity_bytes`
    /// of updates and each batch lingering `linger_ms` for more records.
    pub fn spawn(ctx: &mut NodeCtx, kafka: &KafkaCluster, capacity_bytes: usize, linger_ms: u64) -> Durable {
        let partitions = kafka.partitions_of(TOPIC);
        assert!(!partitions.is_empty(), "the Kafka cluster has no {TOPIC} topic");
        let queues = partitions
            .into_iter()
            .map(|tp| {
                let (tx, rx) = byte_queue(capacity_bytes);
                let sub = ctx.fork();
                tokio::spawn(produce_loop(sub, kafka.clone(), tp, rx, linger_ms));
                tx
            })
            .collect();
        Durable { queues }
    }

    /// Queues an update; gives it back when its partition's queue has no room for it (an
    /// update larger than the whole bound goes in only into an empty queue), or its task is
    /// gone.
    pub fn enqueue(&self, p: Produce) -> Result<(), Produce> {
        let q = &self.queues[partition_for(&p.doc, self.queues.len() as u32) as usize];
        let len = p.update.len();
        q.try_send(p, len)
    }
}

/// The partition of a document: FNV-1a of its id, modulo the partition count (any stable hash
/// keeps one document on one partition; Kafka's default uses murmur2).
pub fn partition_for(doc: &DocId, partitions: u32) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in doc.to_string().bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h % partitions.max(1)
}

/// The record value of an update.
pub fn record_value(update: &DocUpdate) -> String {
    update.to_record()
}

/// A producer id: random 48 bits, never 0 (0 means "not idempotent" in the model).
fn draw_producer_id(rng: &mut ChaCha8Rng) -> u64 {
    rng.gen_range(1..1u64 << 48)
}

/// The records of one produce request, and the updates they came from.
#[derive(Default)]
struct Batch {
    produces: Vec<Produce>,
    values: Vec<String>,
    bytes: usize,
}

impl Batch {
    fn push(&mut self, p: Produce) {
        let value = record_value(&DocUpdate::new(p.doc.clone(), p.update.clone()));
        self.bytes += value.len();
        self.values.push(value);
        self.produces.push(p);
    }
}

async fn produce_loop(
    mut ctx: NodeCtx,
    kafka: KafkaCluster,
    tp: TopicPartition,
    mut rx: ByteReceiver<Produce>,
    linger_ms: u64,
) {
    let client = kafka.client(&mut ctx);
    let mut rng = ctx.rng.clone();
    let mut pid_rng = ChaCha8Rng::from_rng(&mut ctx.rng).expect("chacha never fails");
    let first = draw_producer_id(&mut pid_rng);
    let mut producer = PartitionProducer::new(client, tp.clone(), Acks::All, first);
    while let Some(head) = rx.recv().await {
        let mut batch = Batch::default();
        batch.push(head);
        let linger_until_ms = ctx.clock.now_ms() + linger_ms;
        while batch.bytes < BATCH_SIZE_BYTES {
            match rx.try_recv() {
                Some(p) => batch.push(p),
                None if linger_ms == 0 => break,
                None => {
                    let left = Duration::from_millis(linger_until_ms.saturating_sub(ctx.clock.now_ms()));
                    match sim::timer::timeout(left, rx.recv()).await {
                        Ok(Some(p)) => batch.push(p),
                        // Linger over, or the node is going away: send what there is.
                        Ok(None) | Err(_) => break,
                    }
                }
            }
        }
        let Batch { produces: batch, values, .. } = batch;
        let delivery = producer.send(&mut rng, values, || draw_producer_id(&mut pid_rng)).await;
        if delivery.resets > 0 {
            ctx.sometimes("collab.producer_reset");
        }
        if delivery.attempts > 1 {
            ctx.sometimes("collab.produce_retried");
        }
        for p in &batch {
            report(p, Report::Durable(p.seq)).await;
        }
        tracing::debug!(partition = tp.partition, records = batch.len(), offset = delivery.base_offset, "produced");
    }
}

/// Tells the room; a room that is gone (closed, or its node's task dropped it) has no one to
/// acknowledge, and a full room inbox is waited for (rooms never wait on this queue).
async fn report(p: &Produce, r: Report) {
    let send = p.reply.send(super::rooms::RoomMsg::Produced(r));
    let _ = sim::timer::timeout(Duration::from_secs(5), send).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_document_one_partition() {
        let d = DocId::parse("acme/plan").unwrap();
        assert_eq!(partition_for(&d, 4), partition_for(&d, 4));
        assert!(partition_for(&d, 4) < 4);
        assert_eq!(partition_for(&d, 1), 0);
        let v = record_value(&DocUpdate::new(d.clone(), vec![1, 2, 255]));
        assert!(v.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        let bytes: Vec<u8> = (0..v.len()).step_by(2).map(|i| u8::from_str_radix(&v[i..i + 2], 16).unwrap()).collect();
        assert_eq!(DocUpdate::decode(&bytes).unwrap().update, vec![1, 2, 255]);
    }
}
