//! The auth service's load on PostgreSQL: writer sessions doing sign-ups (a user row and its
//! password hash in one transaction), permission grants and revocations, profile updates and
//! tenant creation; one reader session scanning document permissions on standbys (hot-standby
//! reads).
//!
//! Each transaction carries the `synchronous_commit` class the application asks for (PostgreSQL's
//! `SET LOCAL synchronous_commit`): `on` when it writes credentials or permissions, `local`
//! otherwise ([`Durability::standard`]). The checkers judge each acknowledgement by that class,
//! whatever the store was configured with (the `async-credentials` config weakens the store, not
//! the promise).

use std::time::Duration;

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use sim::NodeCtx;
use system::postgres::data::{Check, Durability, SyncCommit, Table, Txn, Write};
use system::postgres::protocol::{Request, Response};
use system::postgres::{Executed, PgClient, PgCluster};

use super::history::{OpKind, ReplicaRead, TxnEvent};
use super::{COMMIT, READ, WORKLOAD_END_MS};
use crate::availability::op_since;

const WRITERS: usize = 3;
const DOCS: u32 = 12;
const EXECUTE_BUDGET: Duration = Duration::from_secs(4);

pub async fn run(mut ctx: NodeCtx, pg: PgCluster) {
    for session in 0..WRITERS {
        tokio::spawn(writer(ctx.fork(), pg.client(&mut ctx), session));
    }
    reader(ctx.fork(), pg).await;
}

async fn writer(mut ctx: NodeCtx, mut client: PgClient, session: usize) {
    let mut users: Vec<String> = Vec::new();
    let mut grants: Vec<String> = Vec::new();
    let mut n = 0u64;
    while ctx.clock.now_ms() < WORKLOAD_END_MS {
        n += 1;
        let id = format!("{}-s{session}-{n}", ctx.name);
        let (kind, txn) = next_txn(&mut ctx.rng, id, session, n, &mut users, &mut grants);
        let class = Durability::standard().level(&txn.writes);
        ctx.observe(&TxnEvent::Invoked { txn: txn.id.clone(), kind, class });
        let invoked_ms = ctx.clock.now_ms();
        let result = client.execute(&txn, EXECUTE_BUDGET).await;
        op_since(&ctx, COMMIT, matches!(result, Executed::Committed { .. }), invoked_ms);
        ctx.observe(&settled(kind, class, &txn, result));
        sim::timer::sleep(Duration::from_millis(ctx.rng.gen_range(5..25))).await;
    }
}

/// How a transaction ended, as the workload observes it.
fn settled(kind: OpKind, class: SyncCommit, txn: &Txn, result: Executed) -> TxnEvent {
    let id = txn.id.clone();
    match result {
        Executed::Committed { node, epoch, index } => {
            let mut tables: Vec<Table> = txn.writes.iter().map(Write::table).collect();
            tables.dedup();
            TxnEvent::Committed { txn: id, kind, class, tables, node, epoch, index }
        }
        Executed::Rejected(reason) => TxnEvent::Rejected { txn: id, reason },
        Executed::Indeterminate(reason) => TxnEvent::Indeterminate { txn: id, reason },
    }
}

/// The next application action of a writer session.
fn next_txn(
    rng: &mut ChaCha8Rng,
    id: String,
    session: usize,
    n: u64,
    users: &mut Vec<String>,
    grants: &mut Vec<String>,
) -> (OpKind, Txn) {
    let roll = rng.gen_range(0..100);
    if users.is_empty() || roll < 35 {
        let user = format!("u-{session}-{n}");
        users.push(user.clone());
        let writes = vec![
            Write::Put { table: Table::Users, key: user.clone(), value: format!("{{\"tenant\":\"t-{}\"}}", n % 5) },
            Write::Put {
                table: Table::Credentials,
                key: user.clone(),
                value: format!("argon2id$h{:016x}", rng.gen::<u64>()),
            },
        ];
        let checks = vec![Check::Absent { table: Table::Users, key: user }];
        return (OpKind::SignUp, Txn { id, checks, writes });
    }
    if roll < 55 || grants.is_empty() {
        let user = users.choose(rng).expect("checked non-empty").clone();
        let key = format!("doc-{}:{user}", rng.gen_range(0..DOCS));
        grants.push(key.clone());
        let value = if rng.gen_ratio(1, 2) { "edit" } else { "view" };
        let writes = vec![Write::Put { table: Table::DocPermissions, key, value: value.into() }];
        return (OpKind::Grant, Txn { id, checks: vec![], writes });
    }
    if roll < 65 {
        let key = grants.swap_remove(rng.gen_range(0..grants.len()));
        let writes = vec![Write::Delete { table: Table::DocPermissions, key }];
        return (OpKind::Revoke, Txn { id, checks: vec![], writes });
    }
    if roll < 85 {
        let user = users.choose(rng).expect("checked non-empty").clone();
        let value = format!("{{\"tenant\":\"t-{}\",\"seen\":{n}}}", n % 5);
        let writes = vec![Write::Put { table: Table::Users, key: user.clone(), value }];
        let checks = vec![Check::Present { table: Table::Users, key: user }];
        return (OpKind::Profile, Txn { id, checks, writes });
    }
    let writes = vec![Write::Put {
        table: Table::Tenants,
        key: format!("t-{session}-{n}"),
        value: "{\"plan\":\"team\"}".into(),
    }];
    (OpKind::Tenant, Txn { id, checks: vec![], writes })
}

/// Scans one document's permissions on a random member; keeps what standbys served.
async fn reader(mut ctx: NodeCtx, pg: PgCluster) {
    while ctx.clock.now_ms() < WORKLOAD_END_MS {
        sim::timer::sleep(Duration::from_millis(ctx.rng.gen_range(50..150))).await;
        let node = &pg.members()[ctx.rng.gen_range(0..pg.members().len())];
        let prefix = format!("doc-{}:", ctx.rng.gen_range(0..DOCS));
        let req = Request::Scan { table: Table::DocPermissions, prefix, limit: 100 };
        let invoked_ms = ctx.clock.now_ms();
        let answer = PgClient::ask(&ctx.net, node, &req).await;
        op_since(&ctx, READ, matches!(answer, Ok(Response::Rows { .. })), invoked_ms);
        let Ok(Response::Rows { rows, read }) = answer else { continue };
        if read.primary {
            continue;
        }
        let rows = rows.into_iter().map(|(k, r)| (k, r.epoch, r.index)).collect();
        ctx.sometimes("pg.replica_read");
        ctx.observe(&ReplicaRead {
            node: node.clone(),
            applied: read.applied,
            rows,
            lag_ms: read.lag_ms,
            lag_records: read.lag_records,
        });
    }
}
