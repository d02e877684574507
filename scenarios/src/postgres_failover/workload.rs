//! The auth service's load on PostgreSQL: writer sessions doing sign-ups (a user row and its
//! password hash in one transaction), permission grants and revocations, and tenant creation;
//! one reader session scanning document permissions on standbys (hot-standby reads).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use sim::NodeCtx;
use system::postgres::data::{Check, Table, Txn, Write};
use system::postgres::protocol::{Request, Response};
use system::postgres::{Executed, PgClient, PgCluster};

use super::history::{Ack, History, OpKind, ReplicaRead};
use super::WORKLOAD_END_MS;

const WRITERS: usize = 3;
const DOCS: u32 = 12;
const EXECUTE_BUDGET: Duration = Duration::from_secs(4);

pub async fn run(mut ctx: NodeCtx, pg: PgCluster, history: Arc<Mutex<History>>) {
    for session in 0..WRITERS {
        tokio::spawn(writer(ctx.fork(), pg.client(ctx.net.clone()), session, history.clone()));
    }
    reader(ctx.fork(), pg, history).await;
}

fn lock(h: &Mutex<History>) -> std::sync::MutexGuard<'_, History> {
    h.lock().unwrap_or_else(|e| e.into_inner())
}

async fn writer(mut ctx: NodeCtx, mut client: PgClient, session: usize, history: Arc<Mutex<History>>) {
    let mut users: Vec<String> = Vec::new();
    let mut grants: Vec<String> = Vec::new();
    let mut n = 0u64;
    while ctx.clock.now_ms() < WORKLOAD_END_MS {
        n += 1;
        let id = format!("{}-s{session}-{n}", ctx.name);
        let (kind, txn) = next_txn(&mut ctx.rng, id, session, n, &mut users, &mut grants);
        lock(&history).attempts += 1;
        let result = client.execute(&txn, EXECUTE_BUDGET).await;
        record(&ctx, &history, kind, &txn, result);
        tokio::time::sleep(Duration::from_millis(ctx.rng.gen_range(5..25))).await;
    }
}

fn record(ctx: &NodeCtx, history: &Mutex<History>, kind: OpKind, txn: &Txn, result: Executed) {
    let mut h = lock(history);
    match result {
        Executed::Committed { node, epoch, index } => {
            let mut tables: Vec<Table> = txn.writes.iter().map(Write::table).collect();
            tables.dedup();
            let at_ms = ctx.clock.now_ms();
            ctx.trace("pg.client.committed", serde_json::json!({ "txn": txn.id, "node": node, "epoch": epoch, "index": index }));
            h.acks.push(Ack { txn: txn.id.clone(), kind, tables, node, epoch, index, at_ms });
        }
        Executed::Rejected(_) => h.rejected += 1,
        Executed::Indeterminate(reason) => {
            ctx.trace("pg.client.indeterminate", serde_json::json!({ "txn": txn.id, "reason": reason }));
            h.indeterminate += 1;
        }
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
    if users.is_empty() || roll < 40 {
        let user = format!("u-{session}-{n}");
        users.push(user.clone());
        let writes = vec![
            Write::Put { table: Table::Users, key: user.clone(), value: format!("{{\"tenant\":\"t-{}\"}}", n % 5) },
            Write::Put { table: Table::Credentials, key: user.clone(), value: format!("argon2id$h{:016x}", rng.gen::<u64>()) },
        ];
        let checks = vec![Check::Absent { table: Table::Users, key: user }];
        return (OpKind::SignUp, Txn { id, checks, writes });
    }
    if roll < 70 || grants.is_empty() {
        let user = users.choose(rng).expect("checked non-empty").clone();
        let key = format!("doc-{}:{user}", rng.gen_range(0..DOCS));
        grants.push(key.clone());
        let value = if rng.gen_bool(0.5) { "edit" } else { "view" };
        let writes = vec![Write::Put { table: Table::DocPermissions, key, value: value.into() }];
        return (OpKind::Grant, Txn { id, checks: vec![], writes });
    }
    if roll < 85 {
        let key = grants.swap_remove(rng.gen_range(0..grants.len()));
        let writes = vec![Write::Delete { table: Table::DocPermissions, key }];
        return (OpKind::Revoke, Txn { id, checks: vec![], writes });
    }
    let writes = vec![Write::Put { table: Table::Tenants, key: format!("t-{session}-{n}"), value: "{\"plan\":\"team\"}".into() }];
    (OpKind::Tenant, Txn { id, checks: vec![], writes })
}

/// Scans one document's permissions on a random member; keeps what standbys served.
async fn reader(mut ctx: NodeCtx, pg: PgCluster, history: Arc<Mutex<History>>) {
    while ctx.clock.now_ms() < WORKLOAD_END_MS {
        tokio::time::sleep(Duration::from_millis(ctx.rng.gen_range(50..150))).await;
        let node = &pg.members()[ctx.rng.gen_range(0..pg.members().len())];
        let prefix = format!("doc-{}:", ctx.rng.gen_range(0..DOCS));
        let req = Request::Scan { table: Table::DocPermissions, prefix, limit: 100 };
        let Ok(Response::Rows { rows, read }) = PgClient::ask(&ctx.net, node, &req).await else { continue };
        if read.primary {
            continue;
        }
        let rows = rows.into_iter().map(|(k, r)| (k, r.epoch, r.index)).collect();
        let at_ms = ctx.clock.now_ms();
        ctx.sometimes("pg.replica_read");
        let r = ReplicaRead { node: node.clone(), at_ms, applied: read.applied, rows, lag_ms: read.lag_ms, lag_records: read.lag_records };
        lock(&history).reads.push(r);
    }
}
