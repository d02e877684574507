//! The stack builder: one [`StackSpec`] (sizes and times as parameters) composes the four
//! store clusters with their builders (prefixes `pg`, `mongo`, `cache`, `kafka`, spread over the
//! three zones of the region), the service nodes (`lb-<z>` one per zone; `auth-<i>`,
//! `collab-<i>`, `docs-<i>`, `consumer-<i>` placed round-robin over the zones, so every
//! service has instances in different zones), and the users in zone `clients` (outside the
//! three, so a zone's death never kills them): `editor-<i>`, `admin-1`, `attacker-1`, plus the
//! verifier `verify-1`, started when the ending's recovery starts. It returns the [`Stack`]
//! handle (names, documents, what each document's text must be) the checkers use.
//!
//! Documents (tenant `acme`): `doc-1` replays the concurrent trace (its first two editors are
//! its agents, any other watches), `doc-2` the paper trace split among its editors in turn, the
//! others seeded synthetic edits by trusting editors (see [`super::editor`]); `revoke-me` is
//! written only by the user whose permission the admin revokes.
//!
//! Every run ends with [`sim::Ending`]: clients stop at `duration_ms`, `settle_ms` later every
//! server loses power and restarts, and the verifier reads the recovered state.

use std::collections::BTreeMap;
use std::sync::Arc;

use rand::Rng;
use sim::{node_main, Ending, Plan};
use system::auth::AuthConfig;
use system::kafka::{KafkaCluster, KafkaClusterSpec};
use system::mongo::{MongoCluster, MongoClusterSpec};
use system::postgres::{PgCluster, PgClusterSpec};
use system::redis::{RedisCluster, RedisClusterSpec};

use super::admin::AdminConfig;
use super::attacker::AttackerConfig;
use super::check::convergence::Expected;
use super::editor::EditorConfig;
use super::trace;
use super::typist::{Pace, Script};
use super::verifier::VerifierConfig;

pub const REGION: &str = "region-1";
pub const USER_ZONE: &str = "clients";
pub const TENANT: &str = "acme";
pub const REVOKE_DOC: &str = "acme/revoke-me";

/// The stack's sizes and times.
#[derive(Clone, Debug)]
pub struct StackSpec {
    pub zones: Vec<String>,
    /// Instances of each service (auth, collab, docs, consumer), round-robin over the zones.
    pub instances: usize,
    pub editors: usize,
    pub documents: usize,
    /// The workload's part of the run; then the ending.
    pub duration_ms: u64,
    pub ending: Ending,
    /// Editors stop typing this long before `duration_ms`...
    pub quiet_ms: u64,
    /// ...and read the room this long before it.
    pub final_before_end_ms: u64,
    /// Transactions of the paper trace typed (split among `doc-2`'s editors).
    pub paper_txns: usize,
    /// Transactions of the concurrent trace replayed on `doc-1`.
    pub friends_txns: usize,
    pub revoke_at_ms: u64,
    /// UNSAFE: the collaboration service acknowledges an edit once its producer accepted it,
    /// before the log has it.
    pub ack_before_durable: bool,
    /// UNSAFE modes of the log consumers (planted durable-path faults).
    pub unsafe_consumer: system::log_consumer::UnsafeConsumer,
    /// The collaboration service's producer `linger.ms` (see `system::collab::durable`).
    pub produce_linger_ms: u64,
    pub kafka_partitions: u32,
    /// The auth instances' settings from the PostgreSQL proxies: the simulation's cheap ones, or
    /// [`AuthConfig::production`] on the real runtime.
    pub auth: fn(Vec<String>) -> AuthConfig,
}

impl StackSpec {
    /// The full stack: three zones, two instances of each service, 24 editors on 8
    /// documents, 10 simulated minutes.
    pub fn standard() -> Self {
        StackSpec {
            zones: ["az-1", "az-2", "az-3"].map(String::from).to_vec(),
            instances: 2,
            editors: 24,
            documents: 8,
            duration_ms: 600_000,
            ending: Ending { settle_ms: 20_000, recover_ms: 60_000 },
            quiet_ms: 60_000,
            final_before_end_ms: 15_000,
            paper_txns: 1_800,
            friends_txns: 3_000,
            revoke_at_ms: 400_000,
            ack_before_durable: false,
            unsafe_consumer: system::log_consumer::UnsafeConsumer::Safe,
            produce_linger_ms: 0,
            kafka_partitions: 6,
            auth: AuthConfig::simulation,
        }
    }

    /// The standard stack cut to three minutes: 6 editors on 3 documents (the two-agent trace,
    /// the paper trace, synthetic edits), a revocation after a minute and a half. For the
    /// turmoil suite in `cargo test` and quick checks; the standard size is what sweeps judge.
    pub fn short() -> Self {
        StackSpec {
            editors: 6,
            documents: 3,
            duration_ms: 180_000,
            quiet_ms: 40_000,
            paper_txns: 300,
            friends_txns: 400,
            revoke_at_ms: 90_000,
            ..Self::standard()
        }
    }

    pub fn type_until_ms(&self) -> u64 {
        self.duration_ms - self.quiet_ms
    }

    pub fn final_at_ms(&self) -> u64 {
        self.duration_ms - self.final_before_end_ms
    }

    fn zone(&self, i: usize) -> &str {
        &self.zones[i % self.zones.len()]
    }

    /// The zones hosting an instance of each service ([`place`] puts instance `i` in zone `i`
    /// modulo the zones), in zone order.
    pub fn instance_zones(&self) -> Vec<String> {
        self.zones.iter().take(self.instances).cloned().collect()
    }

    pub fn doc(i: usize) -> String {
        format!("{TENANT}/doc-{}", i + 1)
    }
}

/// What the builder made: names, documents, and the expectations of trace documents.
#[derive(Clone)]
pub struct Stack {
    pub pg: PgCluster,
    pub mongo: MongoCluster,
    pub redis: RedisCluster,
    pub kafka: KafkaCluster,
    pub balancers: Vec<String>,
    pub auth: Vec<String>,
    pub collab: Vec<String>,
    pub docs_nodes: Vec<String>,
    pub consumers: Vec<String>,
    pub editors: Vec<String>,
    /// Documents with editors.
    pub docs: Vec<String>,
    pub expected: BTreeMap<String, Expected>,
}

/// The stores, spread over the spec's zones.
pub fn add_stores(spec: &StackSpec, plan: &mut Plan) -> (PgCluster, MongoCluster, RedisCluster, KafkaCluster) {
    let mut pg = PgClusterSpec::new("pg");
    pg.backup = None;
    let pg = pg.add_to(plan);
    let zones: Vec<&str> = spec.zones.iter().map(String::as_str).collect();
    let mongo = MongoClusterSpec::new("mongo", &zones, REGION).add_to(plan);
    let redis = RedisClusterSpec::new("cache", REGION, spec.zones.clone()).add_to(plan);
    let mut kafka = KafkaClusterSpec::new("kafka");
    kafka.zones = spec.zones.clone();
    kafka.topics = vec![(system::doc_update::TOPIC.to_string(), spec.kafka_partitions)];
    let kafka = kafka.add_to(plan);
    (pg, mongo, redis, kafka)
}

/// Places `n` service instances `<prefix>-<i>` round-robin over the zones.
pub fn place(spec: &StackSpec, plan: &mut Plan, prefix: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let name = format!("{prefix}-{}", i + 1);
            plan.topology.add(&name, spec.zone(i), REGION);
            name
        })
        .collect()
}

fn password(user: &str) -> String {
    format!("pw-{user}-correct-horse")
}

/// Adds the users and the verifier; `balancers` are the front doors.
pub fn add_users(
    spec: &StackSpec,
    seed: u64,
    plan: &mut Plan,
    balancers: &[String],
    verifier: VerifierConfig,
) -> (Vec<String>, Vec<String>, BTreeMap<String, Expected>) {
    let docs: Vec<String> = (0..spec.documents).map(StackSpec::doc).collect();
    let mut by_doc: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for e in 0..spec.editors {
        by_doc.entry(e % spec.documents).or_default().push(e);
    }
    let mut rng = sim::rng::derive(seed, "~stack-trace-agents", 0);
    let friends = Arc::new(trace::replay_concurrent(
        trace::friends(),
        spec.friends_txns.min(trace::friends().txns.len()),
        &trace::agent_ids(2, &mut rng),
    ));
    let paper_editors = by_doc.get(&1).map_or(0, Vec::len).max(1);
    let chunks = trace::split(spec.paper_txns, paper_editors);
    let mut expected = BTreeMap::new();
    expected.insert(
        docs[0].clone(),
        Expected::Friends { replay: friends.clone(), whole: spec.friends_txns >= trace::friends().txns.len() },
    );
    if spec.documents > 1 {
        expected.insert(docs[1].clone(), Expected::Paper { chunks: chunks.clone() });
    }
    let mut editors = Vec::new();
    let mut grants = Vec::new();
    let mut users = Vec::new();
    for (d, members) in &by_doc {
        for (k, e) in members.iter().enumerate() {
            let name = format!("editor-{}", e + 1);
            let (script, client_id, trusting) = match (d, k) {
                (0, 0 | 1) => {
                    (Script::Friends { replay: friends.clone(), agent: k }, Some(friends.client_ids[k]), false)
                }
                (0, _) => (Script::Watch, None, false),
                (1, _) => {
                    let chunk = chunks[k].clone();
                    let starts_from = Arc::new(trace::content_after(trace::paper(), chunk.from));
                    (Script::Paper { chunk, starts_from }, None, false)
                }
                _ => (Script::Synthetic, None, true),
            };
            users.push((name.clone(), password(&name)));
            grants.push((name.clone(), docs[*d].clone(), "write".to_string()));
            let cfg = EditorConfig {
                tenant: TENANT.into(),
                user: name.clone(),
                password: password(&name),
                doc: docs[*d].clone(),
                balancers: balancers.to_vec(),
                script,
                client_id,
                trusting,
                pace: Pace::human(),
                start_ms: 10_000 + rng.gen_range(0..5_000),
                type_until_ms: spec.type_until_ms(),
                final_at_ms: spec.final_at_ms(),
                backoff_ms: (250, 8_000),
                sync_timeout_ms: 15_000,
                stall_timeout_ms: 15_000,
                live_sample_ms: 5_000,
                refresh_margin_ms: (20_000, 40_000),
            };
            plan.topology.add(&name, USER_ZONE, REGION);
            plan.client(&name, node_main(move |ctx| super::editor::run(ctx, cfg.clone())));
            editors.push(name);
        }
    }
    let (mallory, trudy) = ("mallory".to_string(), "trudy".to_string());
    for u in [&mallory, &trudy] {
        users.push((u.clone(), password(u)));
    }
    grants.push((mallory.clone(), REVOKE_DOC.into(), "write".into()));
    let target = docs[docs.len().min(3) - 1].clone();
    grants.push((trudy.clone(), target.clone(), "write".into()));
    let admin = AdminConfig {
        tenant: TENANT.into(),
        admin: ("admin".into(), password("admin")),
        balancers: balancers.to_vec(),
        users,
        grants,
        revoke: Some((mallory.clone(), REVOKE_DOC.into(), spec.revoke_at_ms)),
        start_ms: 3_000,
        live_sample_ms: 5_000,
        probe_doc: docs[0].clone(),
        probe_ms: 5_000,
        probe_until_ms: spec.type_until_ms(),
    };
    plan.topology.add("admin-1", USER_ZONE, REGION);
    plan.client("admin-1", node_main(move |ctx| super::admin::run(ctx, admin.clone())));
    let attacker = AttackerConfig {
        tenant: TENANT.into(),
        balancers: balancers.to_vec(),
        revoked_user: (mallory.clone(), password(&mallory)),
        revoke_doc: REVOKE_DOC.into(),
        insider: (trudy.clone(), password(&trudy)),
        target_doc: target,
        other: ("evil".into(), "eve".into(), password("eve")),
        start_ms: 30_000,
        until_ms: spec.type_until_ms(),
        gap_ms: (5_000, 15_000),
    };
    plan.topology.add("attacker-1", USER_ZONE, REGION);
    plan.client("attacker-1", node_main(move |ctx| super::attacker::run(ctx, attacker.clone())));
    let mut verifier = verifier;
    verifier.balancers = balancers.to_vec();
    verifier.docs = docs.iter().cloned().chain([REVOKE_DOC.to_string()]).collect();
    plan.topology.add("verify-1", USER_ZONE, REGION);
    plan.verifier("verify-1", node_main(move |ctx| super::verifier::run(ctx, verifier.clone())));
    (editors, docs, expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_and_users_are_placed_over_the_zones_and_outside_them() {
        let spec = StackSpec::standard();
        let mut plan = Plan::new(sim::Topology::new(), spec.duration_ms);
        let (pg, mongo, redis, kafka) = add_stores(&spec, &mut plan);
        let collab = place(&spec, &mut plan, "collab", spec.instances);
        let lbs: Vec<String> = (1..=3).map(|z| format!("lb-{z}")).collect();
        for (i, lb) in lbs.iter().enumerate() {
            plan.topology.add(lb, spec.zone(i), REGION);
        }
        let verifier = VerifierConfig {
            balancers: vec![],
            docs: vec![],
            wait_ms: 1,
            read_window_ms: 1,
            mongo: None,
            durable: None,
        };
        let (editors, docs, expected) = add_users(&spec, 7, &mut plan, &lbs, verifier);
        assert_eq!((editors.len(), docs.len(), expected.len()), (24, 8, 2));
        let zone = |n: &str| plan.topology.get(n).unwrap().zone.clone();
        assert_ne!(zone(&collab[0]), zone(&collab[1]));
        for e in &editors {
            assert_eq!(zone(e), USER_ZONE);
        }
        for set in mongo.sets() {
            let zones: std::collections::BTreeSet<String> = mongo.members(set).iter().map(|m| zone(m)).collect();
            assert_eq!(zones.len(), 3, "{set}");
        }
        let kz: std::collections::BTreeSet<String> = kafka.brokers().iter().map(|b| zone(b)).collect();
        assert_eq!(kz.len(), 3);
        assert_eq!(redis.nodes().len(), 3);
        assert_eq!(pg.members().len(), 3);
        assert!(plan.clients.contains("editor-1") && plan.clients.contains("attacker-1"));
    }
}
