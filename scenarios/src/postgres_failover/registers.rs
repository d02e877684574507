//! A register workload on PostgreSQL: sessions write unique values to a few keys of a table on
//! `synchronous_commit = on` (document permissions) and read them back from the primary, and
//! [`crate::registers::LinearizabilityChecker`] judges the history.
//!
//! What `on` promises, together with Patroni's leader lease, is that the cluster behaves as one
//! register per key: an acknowledged write is seen by every read that starts after it, and no
//! read sees a value that a later read takes back. Writes go through the application's client
//! (the primary the DCS names, retried only where nothing was sent); reads ask that primary and
//! count only if it answers as primary. A write with an unclear fate is of unknown outcome.
//!
//! What it finds in this model: the primary serves reads from its flushed state, so a commit
//! still waiting for the synchronous standby is visible to other sessions; when a failover then
//! loses it (its client was told nothing), a read has seen a value that later reads take back,
//! and the history is not linearizable (the issue's "not visible before the synchronous standby
//! confirms it"). Left out: a primary that has lost its lease but not yet noticed (a pause) still
//! answers reads as primary; the client does not confirm leadership after a read.
//!
//! The unsafe `pg-replica-reads` config reads from any member, as an application that spreads
//! its reads over hot standbys does: a standby serves what it has applied, which may be stale,
//! and the checker must say the history is not linearizable.

use std::time::Duration;

use rand::Rng;
use sim::{node_main, NodeCtx, Plan};
use system::postgres::data::{Row, Table, Txn, Write};
use system::postgres::protocol::{Request, Response};
use system::postgres::{Executed, PgClient, PgCluster};

use super::{COMMIT, READ, WORKLOAD_END_MS};
use crate::availability::op_since;
use crate::registers::{Call, Completion, LinearizabilityChecker, Recorder};

/// The register client's node.
pub const NODE: &str = "app-registers";
/// The unsafe config: reads from any member.
pub const REPLICA_READS: &str = "pg-replica-reads";
const SESSIONS: usize = 3;
const KEYS: u32 = 3;
/// Registers live in a table on synchronous commit.
const TABLE: Table = Table::DocPermissions;
const EXECUTE_BUDGET: Duration = Duration::from_secs(4);
/// Enough for the histories a run makes (a few hundred operations a key, mostly sequential).
const MAX_STATES: u64 = 200_000;

/// The verifier reading every register back after the ending's power loss.
pub const VERIFIER: &str = "verify-registers";

/// Adds the register client to `plan`; `replica_reads` for the unsafe config. When the plan
/// already has an ending, a verifier reads every register once recovery starts: those reads
/// join the history, so an acknowledged write the final power loss took is a stale read.
pub fn add(plan: &mut Plan, pg: &PgCluster, replica_reads: bool) {
    plan.topology.add(NODE, "az-2", "region-1");
    let cluster = pg.clone();
    plan.client(NODE, node_main(move |ctx| run(ctx, cluster.clone(), replica_reads)));
    if plan.ending.is_some() {
        plan.topology.add(VERIFIER, "az-2", "region-1");
        let pg = pg.clone();
        plan.verifier(VERIFIER, node_main(move |ctx| verify(ctx, pg.clone())));
    }
}

/// Reads each register on the recovered primary, retrying until one answers.
async fn verify(mut ctx: NodeCtx, pg: PgCluster) {
    let mut rec = Recorder::new(&ctx, &store(&pg), 0);
    for k in 0..KEYS {
        let key = format!("reg-{k}");
        loop {
            let mut client = pg.client(&mut ctx);
            let op = rec.invoke(&ctx, &key, Call::Read);
            let completion = read(&mut ctx, &mut client, &pg, &key, false).await;
            let done = matches!(completion, Completion::Ok { .. });
            rec.complete(&ctx, op, completion);
            if done {
                break;
            }
            sim::timer::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The checker of the register histories on `pg`.
pub fn checker(pg: &PgCluster) -> LinearizabilityChecker {
    LinearizabilityChecker { store: store(pg), max_states: MAX_STATES }
}

fn store(pg: &PgCluster) -> String {
    pg.roles().primary.clone()
}

async fn run(mut ctx: NodeCtx, pg: PgCluster, replica_reads: bool) {
    for session in 1..SESSIONS {
        tokio::spawn(session_loop(ctx.fork(), pg.clone(), session, replica_reads));
    }
    // A node's spawned tasks live only while its main does.
    session_loop(ctx, pg, 0, replica_reads).await;
}

async fn session_loop(mut ctx: NodeCtx, pg: PgCluster, session: usize, replica_reads: bool) {
    let mut client = pg.client(&mut ctx);
    let mut rec = Recorder::new(&ctx, &store(&pg), session);
    while ctx.clock.now_ms() < WORKLOAD_END_MS {
        let key = format!("reg-{}", ctx.rng.gen_range(0..KEYS));
        if ctx.rng.gen_ratio(1, 2) {
            let value = rec.unique_value();
            let op = rec.invoke(&ctx, &key, Call::Write(value.clone()));
            let txn = Txn { id: op.clone(), checks: vec![], writes: vec![Write::Put { table: TABLE, key, value }] };
            let invoked_ms = ctx.clock.now_ms();
            let completion = match client.execute(&txn, EXECUTE_BUDGET).await {
                Executed::Committed { node, .. } => Completion::Ok { read: None, by: node },
                Executed::Rejected(reason) => Completion::Fail { reason },
                Executed::Indeterminate(reason) => Completion::Unknown { reason },
            };
            op_since(&ctx, COMMIT, matches!(completion, Completion::Ok { .. }), invoked_ms);
            rec.complete(&ctx, op, completion);
        } else {
            let op = rec.invoke(&ctx, &key, Call::Read);
            let invoked_ms = ctx.clock.now_ms();
            let completion = read(&mut ctx, &mut client, &pg, &key, replica_reads).await;
            op_since(&ctx, READ, matches!(completion, Completion::Ok { .. }), invoked_ms);
            if matches!(completion, Completion::Fail { .. }) {
                // A fresh connection through the proxy after a failed read.
                client = pg.client(&mut ctx);
            }
            rec.complete(&ctx, op, completion);
        }
        sim::timer::sleep(Duration::from_millis(ctx.rng.gen_range(30..120))).await;
    }
}

/// Reads `key` on the primary (any member with `replica_reads`). A read not served as asked
/// fails: it says nothing.
async fn read(ctx: &mut NodeCtx, client: &mut PgClient, pg: &PgCluster, key: &str, replica_reads: bool) -> Completion {
    let req = Request::Get { table: TABLE, key: key.into() };
    match rows(ctx, client, pg, &req, replica_reads).await {
        Ok((node, rows)) => Completion::Ok { read: rows.into_iter().next().map(|(_, row)| row.value), by: node },
        Err(reason) => Completion::Fail { reason },
    }
}

/// Sends a read through the proxy, to the member whose agent passes the primary check now (to a
/// random member with `replica_reads`), and returns the member and its rows; a read not served
/// as asked is an error.
pub(super) async fn rows(
    ctx: &mut NodeCtx,
    client: &mut PgClient,
    pg: &PgCluster,
    req: &Request,
    replica_reads: bool,
) -> Result<(String, Vec<(String, Row)>), String> {
    let answer = if replica_reads {
        let node = pg.members()[ctx.rng.gen_range(0..pg.members().len())].clone();
        PgClient::ask(&ctx.net, &node, req).await.map(|r| (Some(node), r)).map_err(|e| e.to_string())
    } else {
        client.request(req).await.map_err(|e| e.to_string())
    };
    match answer? {
        (Some(node), Response::Rows { rows, read }) if read.primary || replica_reads => Ok((node, rows)),
        (node, other) => Err(format!("{node:?} answered {other:?}")),
    }
}
