//! `postgres-failover` and `postgres-pitr` on the turmoil engine, in plain `cargo test`: seeded
//! runs pass, the same seed gives the same trace hash, the unsafe variants fail with the
//! violation their checker is there to find, and two clusters share one world without mixing.
#![cfg(not(madsim))]

use std::time::Duration;

mod common;

use scenarios::RunReport;
use sim::{node_main, Fault, NodeCtx, Plan, RunOptions, Target, Topology};
use system::postgres::data::{Table, Txn, Write};
use system::postgres::observe::Promoted;
use system::postgres::wal::Body;
use system::postgres::{PgCluster, PgClusterSpec};

use common::run;

/// The first failing run of `config` among `seeds`.
fn first_failure(scenario: &str, config: &str, seeds: std::ops::Range<u64>) -> RunReport {
    seeds
        .clone()
        .map(|seed| run(scenario, seed, Some(config)))
        .find(|r| !r.passed)
        .unwrap_or_else(|| panic!("no seed of {scenario} --config {config} in {seeds:?} failed"))
}

#[test]
fn postgres_failover_seeds_pass_on_turmoil() {
    // Some seeds lose both standbys instead of the primary: not every seed fails over.
    let mut failovers = 0;
    for seed in 0..3 {
        let r = run("postgres-failover", seed, None);
        assert!(r.passed, "seed {seed}: {:?}\nreplay: {}", r.violations, r.replay_command());
        failovers += usize::from(r.metrics.contains_key("failover_ms"));
    }
    assert!(failovers > 0, "no seed of 0..3 failed over");
}

/// The child-process entry point of `common::hash_in_child` (run by it with `--ignored`).
#[test]
#[ignore = "a child-process entry point: the cross-process hash tests run it"]
fn hash_child() {
    common::hash_child();
}

/// The same seed gives the same trace in two processes (see `common` for why not in one).
#[test]
fn postgres_failover_same_seed_same_hash_across_processes_on_turmoil() {
    let hash = || common::hash_in_child("postgres-failover", 7, None);
    assert_eq!(hash(), hash());
}

#[test]
fn async_credentials_lose_commits_on_turmoil() {
    // About two seeds in five lose a sign-up; stop at the first that does.
    let failed = first_failure("postgres-failover", "async-credentials", 0..20);
    assert!(failed.violations.iter().all(|v| v.kind == "lost commit"), "{:?}", failed.violations);
}

#[test]
fn postgres_pitr_seeds_pass_on_turmoil() {
    for seed in 0..2 {
        let r = run("postgres-pitr", seed, None);
        assert!(r.passed, "seed {seed}: {:?}\nreplay: {}", r.violations, r.replay_command());
    }
}

#[test]
fn pitr_stop_late_restores_past_the_target_on_turmoil() {
    let failed = first_failure("postgres-pitr", "pitr-stop-late", 0..10);
    assert!(failed.violations.iter().all(|v| v.kind == "pitr past target"), "{:?}", failed.violations);
}

/// One client writing to one cluster until `until_ms`; transaction ids carry the client's name.
async fn writes(mut ctx: NodeCtx, pg: PgCluster, until_ms: u64) {
    let mut client = pg.client(&mut ctx);
    let mut n = 0;
    while ctx.clock.now_ms() < until_ms {
        n += 1;
        let write = Write::Put { table: Table::Users, key: format!("u{n}"), value: "x".into() };
        let txn = Txn { id: format!("{}-{n}", ctx.name), checks: vec![], writes: vec![write] };
        let _ = client.execute(&txn, Duration::from_secs(2)).await;
        sim::timer::sleep(Duration::from_millis(100)).await;
    }
}

/// The transaction ids in `pg`'s durable logs, with the epoch that wrote them.
fn committed(outcome: &sim::Outcome, pg: &PgCluster) -> Vec<(String, u64)> {
    let logs = pg.durable_logs(outcome);
    let (_, longest) = logs.iter().max_by_key(|(_, w)| w.position()).expect("members");
    longest
        .records()
        .iter()
        .filter_map(|r| match &r.body {
            Body::Commit { txn, .. } => Some((txn.clone(), r.epoch)),
            Body::Promote => None,
        })
        .collect()
}

#[test]
fn two_clusters_share_a_world_and_keep_apart() {
    const DURATION_MS: u64 = 24_000;
    let (outcome, a, b) = std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(|| {
            let mut plan = Plan::new(Topology::new(), DURATION_MS);
            let mut clusters = Vec::new();
            for prefix in ["pga", "pgb"] {
                let mut spec = PgClusterSpec::new(prefix);
                spec.backup = None;
                let pg = spec.add_to(&mut plan);
                let client = format!("{prefix}-app");
                plan.topology.add(&client, "az-1", "region-1");
                let cluster = pg.clone();
                plan.node(&client, node_main(move |ctx| writes(ctx, cluster.clone(), DURATION_MS - 2_000)));
                clusters.push(pg);
            }
            let b = clusters.pop().expect("two clusters");
            let a = clusters.pop().expect("two clusters");
            plan.at(9_000, Fault::Kill(Target::role(b.role_primary())));
            (sim::engine::run(plan, RunOptions { seed: 1, ..RunOptions::default() }), a, b)
        })
        .expect("thread starts")
        .join()
        .expect("run completes");

    let (killed, promoted) = outcome.observations(|o| {
        let killed: Vec<String> = o.faults().flat_map(|f| f.value.nodes).collect();
        let promoted: Vec<(String, u64)> = o.of::<Promoted>().map(|p| (p.node.to_string(), p.value.epoch)).collect();
        (killed, promoted)
    });
    // The role names one machine: a member's server and its agent.
    let servers: Vec<&String> = killed.iter().filter(|n| b.is_member(n)).collect();
    assert_eq!(servers.len(), 1, "the role names one member: {killed:?}");
    assert!(killed.iter().all(|n| b.is_member(n) || b.agents().contains(n)), "pgb-primary resolved to {killed:?}");
    let epochs =
        |pg: &PgCluster| -> Vec<u64> { promoted.iter().filter(|(n, _)| pg.is_member(n)).map(|p| p.1).collect() };
    assert_eq!(epochs(&a), [1], "pga was not touched: {promoted:?}");
    assert_eq!(epochs(&b), [1, 2], "pgb failed over once: {promoted:?}");
    for (pg, client, last_epoch) in [(&a, "pga-app", 1), (&b, "pgb-app", 2)] {
        let txns = committed(&outcome, pg);
        assert!(txns.iter().all(|(t, _)| t.starts_with(client)), "{client}'s cluster holds another's writes");
        assert!(txns.iter().any(|(_, e)| *e == last_epoch), "{client}'s cluster served no write in epoch {last_epoch}");
    }
}
