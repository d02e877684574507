//! A multi-key transaction workload on PostgreSQL, judged Elle-style
//! ([`crate::transactions::ElleChecker`], with real-time edges: one primary commits in WAL order
//! and, under `synchronous_commit = on` and the leader lease, promises strict serializability).
//!
//! What the PostgreSQL model offers, and so what is checked: a transaction here is a list of
//! checks (present/absent, which return no values) and blind writes, applied atomically on the
//! primary; there is no read inside a transaction that returns values. A `Scan` of a key prefix is
//! served under one lock from one member's state, so it is an atomic multi-key read: a read-only
//! transaction. The workload therefore runs write-only transactions (2 or 3 keys of a group, each
//! a unique value) and read-only scans of a whole group. With those, the anomalies that can occur
//! are aborted and intermediate reads (G1a, G1b), fractured or stale reads (G-single, G2, and
//! their `-realtime` forms); G0 and G1c need transactions that read and write, which the model
//! does not have.
//!
//! Under the unsafe `pg-replica-reads` config the scans go to any member, as the register reads
//! do, and stale scans must show up as `G-single-realtime` cycles.

use std::time::Duration;

use rand::seq::SliceRandom;
use rand::Rng;
use sim::{node_main, NodeCtx, Plan};
use system::postgres::data::{Table, Txn, Write};
use system::postgres::protocol::Request;
use system::postgres::{Executed, PgClient, PgCluster};

use super::{COMMIT, READ, WORKLOAD_END_MS};
use crate::availability::op_since;
use crate::transactions::{ElleChecker, Step, TxnCompletion, TxnRecorder};

/// The transaction client's node.
pub const NODE: &str = "app-transactions";
const SESSIONS: usize = 2;
const GROUPS: u32 = 2;
const KEYS_PER_GROUP: u32 = 3;
/// A table on synchronous commit.
const TABLE: Table = Table::DocPermissions;
const EXECUTE_BUDGET: Duration = Duration::from_secs(4);

/// Adds the transaction client to `plan`; `replica_reads` for the unsafe config.
pub fn add(plan: &mut Plan, pg: &PgCluster, replica_reads: bool) {
    plan.topology.add(NODE, "az-3", "region-1");
    let pg = pg.clone();
    plan.client(NODE, node_main(move |ctx| run(ctx, pg.clone(), replica_reads)));
}

pub fn checker(pg: &PgCluster) -> ElleChecker {
    ElleChecker { store: pg.roles().primary.clone(), realtime: true }
}

async fn run(mut ctx: NodeCtx, pg: PgCluster, replica_reads: bool) {
    for session in 1..SESSIONS {
        tokio::spawn(session_loop(ctx.fork(), pg.clone(), session, replica_reads));
    }
    // A node's spawned tasks live only while its main does.
    session_loop(ctx, pg, 0, replica_reads).await;
}

fn group_prefix(group: u32) -> String {
    format!("elle-{group}-")
}

async fn session_loop(mut ctx: NodeCtx, pg: PgCluster, session: usize, replica_reads: bool) {
    let mut client = pg.client(&mut ctx);
    let mut rec = TxnRecorder::new(&ctx, &pg.roles().primary, session);
    while ctx.clock.now_ms() < WORKLOAD_END_MS {
        let prefix = group_prefix(ctx.rng.gen_range(0..GROUPS));
        let keys: Vec<String> = (0..KEYS_PER_GROUP).map(|k| format!("{prefix}{k}")).collect();
        if ctx.rng.gen_ratio(1, 2) {
            let n = ctx.rng.gen_range(2..=keys.len());
            let chosen: Vec<&String> = keys.choose_multiple(&mut ctx.rng, n).collect();
            let steps: Vec<Step> = chosen
                .iter()
                .enumerate()
                .map(|(i, key)| Step::Write { key: (*key).clone(), value: rec.unique_value(i) })
                .collect();
            let writes = steps
                .iter()
                .filter_map(|s| match s {
                    Step::Write { key, value } => {
                        Some(Write::Put { table: TABLE, key: key.clone(), value: value.clone() })
                    }
                    Step::Read { .. } => None,
                })
                .collect();
            let op = rec.invoke(&ctx, steps);
            let txn = Txn { id: op.clone(), checks: vec![], writes };
            let invoked_ms = ctx.clock.now_ms();
            let completion = match client.execute(&txn, EXECUTE_BUDGET).await {
                Executed::Committed { .. } => TxnCompletion::Ok { reads: vec![] },
                Executed::Rejected(reason) => TxnCompletion::Fail { reason },
                Executed::Indeterminate(reason) => TxnCompletion::Unknown { reason },
            };
            op_since(&ctx, COMMIT, matches!(completion, TxnCompletion::Ok { .. }), invoked_ms);
            rec.complete(&ctx, op, completion);
        } else {
            let steps = keys.iter().map(|key| Step::Read { key: key.clone() }).collect();
            let op = rec.invoke(&ctx, steps);
            let invoked_ms = ctx.clock.now_ms();
            let completion = scan(&mut ctx, &mut client, &pg, &prefix, &keys, replica_reads).await;
            op_since(&ctx, READ, matches!(completion, TxnCompletion::Ok { .. }), invoked_ms);
            if matches!(completion, TxnCompletion::Fail { .. }) {
                client = pg.client(&mut ctx);
            }
            rec.complete(&ctx, op, completion);
        }
        sim::timer::sleep(Duration::from_millis(ctx.rng.gen_range(30..120))).await;
    }
}

/// Reads every key of a group in one scan, on the primary (any member with `replica_reads`).
async fn scan(
    ctx: &mut NodeCtx,
    client: &mut PgClient,
    pg: &PgCluster,
    prefix: &str,
    keys: &[String],
    replica_reads: bool,
) -> TxnCompletion {
    let req = Request::Scan { table: TABLE, prefix: prefix.into(), limit: 100 };
    match super::registers::rows(ctx, client, pg, &req, replica_reads).await {
        Ok((_, rows)) => {
            let reads =
                keys.iter().map(|key| rows.iter().find(|(k, _)| k == key).map(|(_, row)| row.value.clone())).collect();
            TxnCompletion::Ok { reads }
        }
        Err(reason) => TxnCompletion::Fail { reason },
    }
}
