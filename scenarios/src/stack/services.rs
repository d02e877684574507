//! The service nodes of the stack, each with its slice's `run(ctx, Config)` filled from the
//! cluster handles: `lb-<z>` (one balancer per zone), `auth-<i>`, `collab-<i>`, `docs-<i>`,
//! `consumer-<i>`, every kind with instances in different zones.

use std::sync::Arc;

use sim::{node_main, Plan};
use system::balancer::BalancerConfig;
use system::collab::gate::AuthGateConfig;
use system::collab::CollabConfig;
use system::docs::DocsConfig;
use system::kafka::KafkaCluster;
use system::log_consumer::ConsumerConfig;
use system::mongo::MongoCluster;
use system::postgres::PgCluster;
use system::redis::RedisCluster;

use super::spec::{place, StackSpec, REGION};

/// The service node names.
#[derive(Clone, Debug, Default)]
pub struct ServiceNames {
    pub balancers: Vec<String>,
    pub auth: Vec<String>,
    pub collab: Vec<String>,
    pub docs: Vec<String>,
    pub consumers: Vec<String>,
}

/// Places every service node; the balancers (one per zone) route to the others.
pub fn names(spec: &StackSpec, plan: &mut Plan) -> ServiceNames {
    let balancers: Vec<String> = spec
        .zones
        .iter()
        .enumerate()
        .map(|(i, z)| {
            let name = format!("lb-{}", i + 1);
            plan.topology.add(&name, z, REGION);
            name
        })
        .collect();
    ServiceNames {
        balancers,
        auth: place(spec, plan, "auth", spec.instances),
        collab: place(spec, plan, "collab", spec.instances),
        docs: place(spec, plan, "docs", spec.instances),
        consumers: place(spec, plan, "consumer", spec.instances),
    }
}

/// Adds the balancers' mains.
pub fn add_balancers(plan: &mut Plan, names: &ServiceNames) {
    let config = BalancerConfig::new(names.auth.clone(), names.docs.clone(), names.collab.clone());
    for lb in &names.balancers {
        let config = config.clone();
        plan.node(lb, node_main(move |ctx| system::balancer::run(ctx, config.clone())));
    }
}

/// Adds the auth instances: credentials, keys and permissions in the PostgreSQL cluster,
/// reached through its proxy.
pub fn add_auth(plan: &mut Plan, names: &ServiceNames, spec: &StackSpec, pg: &PgCluster) {
    let config = (spec.auth)(vec![pg.proxy().to_string()]);
    for node in &names.auth {
        let config = config.clone();
        plan.node(node, node_main(move |ctx| system::auth::run(ctx, config.clone())));
    }
}

/// Adds the collaboration instances: edits produced to `doc-updates`, documents loaded through
/// the document service, tokens and permissions checked against the PostgreSQL cluster.
pub fn add_collab(plan: &mut Plan, names: &ServiceNames, spec: &StackSpec, pg: &PgCluster, kafka: &KafkaCluster) {
    let gate = Arc::new(AuthGateConfig { pg_proxies: vec![pg.proxy().to_string()] });
    let mut config = CollabConfig::new(kafka.clone(), names.docs.clone(), gate);
    config.ack_before_durable = spec.ack_before_durable;
    config.produce_linger_ms = spec.produce_linger_ms;
    for node in &names.collab {
        let config = config.clone();
        plan.node(node, node_main(move |ctx| system::collab::run(ctx, config.clone())));
    }
}

/// Adds the document service instances (MongoDB through a router in the node, the Redis cache
/// through Sentinel).
pub fn add_docs(plan: &mut Plan, names: &ServiceNames, mongo: &MongoCluster, redis: &RedisCluster) {
    let config = DocsConfig::new(mongo.router_config(), redis.client_config());
    for node in &names.docs {
        let config = config.clone();
        plan.node(node, node_main(move |ctx| system::docs::run(ctx, config.clone())));
    }
}

/// Adds the log consumers: one group over `doc-updates`, persisting into MongoDB.
pub fn add_consumers(
    plan: &mut Plan,
    names: &ServiceNames,
    spec: &StackSpec,
    kafka: &KafkaCluster,
    mongo: &MongoCluster,
) {
    let mut config =
        ConsumerConfig::new(kafka.brokers().to_vec(), kafka.client_settings().clone(), mongo.router_config());
    config.unsafe_mode = spec.unsafe_consumer;
    for node in &names.consumers {
        let config = config.clone();
        plan.node(node, node_main(move |ctx| system::log_consumer::run(ctx, config.clone())));
    }
}

/// The verifier's reader of a document rebuilt from MongoDB alone (a router in its node).
pub fn mongo_reader(mongo: &MongoCluster) -> super::verifier::MongoReader {
    let config = mongo.router_config();
    Arc::new(move |ctx, doc| {
        let config = config.clone();
        Box::pin(async move {
            let router = system::mongo::Router::new(ctx, config);
            let rebuilt = system::docs::store::rebuild_from_mongo(&router, &doc).await.map_err(|e| e.to_string())?;
            Ok(rebuilt.encode_state())
        })
    })
}

/// Where the durable path's checkers read from: the consumers' group over `doc-updates` in
/// Kafka, and MongoDB through a router in the reading node.
pub fn durable_sources(kafka: &KafkaCluster, mongo: &MongoCluster) -> super::durable_read::DurableSources {
    super::durable_read::DurableSources {
        mongo: mongo.router_config(),
        kafka_bootstrap: kafka.brokers().to_vec(),
        kafka_client: kafka.client_settings().clone(),
        partitions: kafka.partitions_of(system::doc_update::TOPIC),
        group: system::log_consumer::GROUP.into(),
    }
}
