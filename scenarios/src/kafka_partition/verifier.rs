//! The verifier: started when the servers restart after the run's final power loss, it reads
//! every data partition from offset 0 through the consumer protocol (up to the high watermark,
//! as any consumer would) until it has the whole log a recovered leader serves, and records
//! what it read. The log checker holds every acknowledged record against this read: what a
//! consumer can read after the last crash is the truth, not what a producer was told.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sim::{NodeCtx, Observation};
use system::kafka::protocol::{FetchRequest, Request, Response};
use system::kafka::{KafkaCluster, TopicPartition};

use super::{PARTITIONS, TOPIC};

/// One partition as the verifier read it after recovery: `(offset, value)` from offset 0 up to
/// the high watermark, once the high watermark had reached the leader's log end.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VerifierRead {
    pub cluster: String,
    pub tp: TopicPartition,
    pub records: Vec<(u64, String)>,
}

impl Observation for VerifierRead {
    const KIND: &'static str = "kafka.verifier_read";
}

pub async fn run(mut ctx: NodeCtx, kafka: KafkaCluster) {
    let mut rng = ctx.rng.clone();
    let mut client = kafka.client(&mut ctx);
    for partition in 0..PARTITIONS {
        let tp = TopicPartition::new(TOPIC, partition);
        let mut records: Vec<(u64, String)> = Vec::new();
        loop {
            let Some((_, node, _)) = client.leader(&tp) else {
                client.refresh_metadata(&mut rng).await;
                sim::timer::sleep(Duration::from_millis(200)).await;
                continue;
            };
            let offset = records.len() as u64;
            let req = Request::Fetch(FetchRequest {
                tp: tp.clone(),
                offset,
                max_records: 500,
                max_wait_ms: 0,
                current_leader_epoch: None,
                replica: None,
            });
            match client.call(&node, &req, Duration::from_millis(client.settings.request_timeout_ms)).await {
                Some(Response::Fetched(resp)) => {
                    let done = resp.records.is_empty()
                        && resp.high_watermark == resp.log_end_offset
                        && offset == resp.high_watermark;
                    records.extend(resp.records.into_iter().map(|r| (r.offset, r.value)));
                    if done {
                        break;
                    }
                    if offset == records.len() as u64 {
                        // The high watermark waits for followers still catching up.
                        sim::timer::sleep(Duration::from_millis(200)).await;
                    }
                }
                _ => {
                    client.forget_leader(&tp);
                    client.refresh_metadata(&mut rng).await;
                    sim::timer::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        ctx.observe(&VerifierRead { cluster: kafka.prefix().to_string(), tp, records });
    }
}
