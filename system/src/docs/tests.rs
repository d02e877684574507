//! The durable path end to end in a small simulated world (turmoil): Kafka, MongoDB and Redis
//! clusters from their builders, one log consumer, one document service, and an editor that
//! produces document updates (one twice, plus a junk record) and then loads the document from
//! the service. The state served equals the editor's own document, each operation is stored
//! once, the junk is skipped, and the second load is a cache hit.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use sim::{node_main, NodeCtx, Plan, RunOptions, Topology};
use yrs::updates::decoder::Decode;
use yrs::{Doc, GetString, ReadTxn, Text, Transact, Update};

use super::observe::{CacheEvent, CacheObserved};
use super::{DocsConfig, VersionVector};
use crate::doc_update::{DocId, DocUpdate, TOPIC};
use crate::http::{self, Request};
use crate::kafka::client::PartitionProducer;
use crate::kafka::{Acks, KafkaCluster, KafkaClusterSpec, TopicPartition};
use crate::log_consumer::observe::{OffsetCommitted, OpPersisted, RecordSkipped, SnapshotWritten, Stored};
use crate::log_consumer::{persist::encode_value, ConsumerConfig};
use crate::mongo::MongoClusterSpec;
use crate::redis::cluster::RedisClusterSpec;

/// What the editor saw.
#[derive(Default, Debug)]
struct Seen {
    local_text: String,
    local_vector: String,
    /// (status, x-state-vector, x-source, text of the body)
    loads: Vec<(u16, String, String, String)>,
}

async fn editor(mut ctx: NodeCtx, kafka: KafkaCluster, seen: Arc<Mutex<Seen>>) {
    let doc_id = DocId::parse("acme/plan").unwrap();
    let doc = Doc::with_client_id(ctx.rng.gen_range(1..1 << 32));
    let text = doc.get_or_insert_text("content");
    let mut values = Vec::new();
    for word in ["durable ", "path ", "through ", "kafka ", "to mongo"] {
        let mut txn = doc.transact_mut();
        let len = text.len(&txn);
        text.insert(&mut txn, len, word);
        values.push(encode_value(&DocUpdate::new(doc_id.clone(), txn.encode_update_v1())));
    }
    values.insert(2, values[1].clone()); // the same update produced twice
    values.insert(4, "not hex".to_string());
    let client = kafka.client(&mut ctx);
    let mut producer = PartitionProducer::new(client, TopicPartition::new(TOPIC, 0), Acks::All, 77);
    let mut next_pid = 78;
    for v in values {
        let mut rng = ctx.rng.clone();
        producer
            .send(&mut rng, vec![v], || {
                next_pid += 1;
                next_pid
            })
            .await;
        ctx.rng = rng;
    }
    {
        let mut s = seen.lock().unwrap();
        s.local_text = text.get_string(&doc.transact());
        s.local_vector = VersionVector::from_yrs(&doc.transact().state_vector()).to_hex();
    }
    let want = seen.lock().unwrap().local_vector.clone();
    let mut matched = 0;
    while matched < 2 {
        sim::timer::sleep(Duration::from_millis(500)).await;
        let req = Request::get("/docs/acme/plan/state");
        let Ok(resp) = http::call(&ctx.net, "docs-1", super::HTTP_PORT, &req, Duration::from_secs(5)).await else {
            continue;
        };
        let header = |k: &str| resp.headers.get(k).cloned().unwrap_or_default();
        let served = Doc::with_client_id(5);
        if let Ok(u) = Update::decode_v1(&resp.body) {
            served.transact_mut().apply_update(u).unwrap();
        }
        let served_text = served.get_or_insert_text("content").get_string(&served.transact());
        let vector = header("x-state-vector");
        if resp.status == 200 && vector == want {
            matched += 1;
        }
        seen.lock().unwrap().loads.push((resp.status, vector, header("x-source"), served_text));
    }
}

#[test]
fn updates_produced_to_kafka_are_persisted_and_served_from_mongo_then_the_cache() {
    let zones = ["az-1", "az-2", "az-3"];
    let mut plan = Plan::new(Topology::new(), 60_000);
    let mut kspec = KafkaClusterSpec::new("kafka");
    kspec.topics = vec![(TOPIC.to_string(), 2)];
    let kafka = kspec.add_to(&mut plan);
    let mongo = MongoClusterSpec::new("mongo", &zones, "region-1").add_to(&mut plan);
    let redis = RedisClusterSpec::new("cache", "region-1", zones.map(String::from).to_vec()).add_to(&mut plan);

    let mut consumer =
        ConsumerConfig::new(kafka.brokers().to_vec(), kafka.client_settings().clone(), mongo.router_config());
    consumer.compaction.threshold_ops = 2;
    plan.topology.add("consumer-1", "az-1", "region-1");
    plan.node("consumer-1", node_main(move |ctx| crate::log_consumer::run(ctx, consumer.clone())));
    let docs = DocsConfig::new(mongo.router_config(), redis.client_config());
    plan.topology.add("docs-1", "az-2", "region-1");
    plan.node("docs-1", node_main(move |ctx| super::run(ctx, docs.clone())));

    let seen = Arc::new(Mutex::new(Seen::default()));
    let s = seen.clone();
    plan.topology.add("editor-1", "az-3", "region-1");
    plan.client("editor-1", node_main(move |ctx| editor(ctx, kafka.clone(), s.clone())));

    let outcome = sim::engine::run(plan, RunOptions { seed: 3, ..RunOptions::default() });
    let seen = seen.lock().unwrap();
    assert_eq!(seen.local_text, "durable path through kafka to mongo");
    let ok: Vec<_> = seen.loads.iter().filter(|l| l.0 == 200 && l.1 == seen.local_vector).collect();
    assert_eq!(ok.len(), 2, "two loads served the editor's state: {:?}", seen.loads);
    assert!(ok.iter().all(|l| l.3 == seen.local_text));
    assert_eq!(ok[1].2, "cache", "the second load is a cache hit: {:?}", seen.loads);
    outcome.observations(|o| {
        let persisted: Vec<OpPersisted> = o.of::<OpPersisted>().map(|p| p.value).collect();
        let new = persisted.iter().filter(|p| p.stored == Stored::New).count();
        assert_eq!(new, 5, "each distinct update stored once: {persisted:?}");
        assert_eq!(o.of::<RecordSkipped>().count(), 1);
        let last = o.of::<OffsetCommitted>().map(|c| c.value.offset).max();
        assert_eq!(last, Some(7), "every record committed after it was persisted or skipped");
        assert!(o.of::<CacheObserved>().any(|c| c.value.event == CacheEvent::Fill));
        assert!(o.of::<SnapshotWritten>().count() >= 1, "compaction ran (threshold 2)");
    });
    // The store's own record, from the members' disks: each operation put once, no snapshot
    // changed, and the document rebuilt from MongoDB alone is the editor's.
    let audit = super::audit::DurableAudit::from_cluster(&mongo, &outcome.world.disks);
    assert_eq!(audit.op_puts.len(), 5);
    assert!(audit.stored_twice().is_empty() && audit.changed_snapshots().is_empty());
    assert!(!audit.snapshots.is_empty());
    // Snapshots record the oplog position they contain everything up to: later loads read
    // only the operations stored after it (`snapshot::tests` builds one from another).
    for s in audit.snapshots["acme/plan"].values() {
        assert!(s.ops_through > 0 && s.ops_seen <= 5, "{s:?}");
    }
    let rebuilt = audit.rebuild("acme/plan").unwrap();
    assert_eq!(rebuilt.state.to_hex(), seen.local_vector);
}
