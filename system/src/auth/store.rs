//! The auth service's reads and commits through the PostgreSQL-like cluster's proxy.
//!
//! Reads go to the primary (the proxy routes there), so they see every acknowledged commit:
//! a commit on synchronous tables becomes visible on the primary only once the synchronous
//! standby has it, and it survives a failover. A read or commit that finds no primary is retried
//! briefly, so a login during a failover waits for the new primary rather than failing at once.

use std::time::Duration;

use rand::RngCore;
use sim::NodeCtx;
use tokio::time::Instant;

use super::AuthError;
use crate::postgres::client::{Executed, PgClient};
use crate::postgres::data::{Table, Txn};
use crate::postgres::protocol::{Request, Response};

/// Default time one read may take, retries included.
pub const READ_BUDGET: Duration = Duration::from_secs(3);
/// Default time one commit may take, retries included.
pub const COMMIT_BUDGET: Duration = Duration::from_secs(5);
/// Pause between attempts of a read that found no primary.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// Rows of `table` under `prefix` (at most `limit`), read on the primary.
pub async fn scan(
    pg: &mut PgClient,
    table: Table,
    prefix: &str,
    limit: usize,
) -> Result<Vec<(String, String)>, AuthError> {
    let req = Request::Scan { table, prefix: prefix.into(), limit };
    let rows = read(pg, &req, READ_BUDGET).await?;
    Ok(rows)
}

/// The value of `key` in `table`, read on the primary.
pub async fn get(pg: &mut PgClient, table: Table, key: &str) -> Result<Option<String>, AuthError> {
    let req = Request::Get { table, key: key.into() };
    let rows = read(pg, &req, READ_BUDGET).await?;
    Ok(rows.into_iter().find(|(k, _)| k == key).map(|(_, v)| v))
}

async fn read(pg: &mut PgClient, req: &Request, budget: Duration) -> Result<Vec<(String, String)>, AuthError> {
    let deadline = Instant::now() + budget;
    let mut last = String::from("no attempt");
    while Instant::now() < deadline {
        match pg.request(req).await {
            Ok((_, Response::Rows { rows, read })) if read.primary => {
                return Ok(rows.into_iter().map(|(k, r)| (k, r.value)).collect());
            }
            Ok((node, other)) => last = format!("{node:?} answered {other:?}"),
            Err(e) => last = e.to_string(),
        }
        sim::timer::sleep(RETRY_PAUSE).await;
    }
    Err(AuthError::Unavailable(format!("read: {last}")))
}

/// How a commit ended, for the caller to map: a failed check is the caller's business (a name
/// taken, a race lost); anything else unsettled is unavailability.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Commit {
    Done,
    CheckFailed(String),
}

/// Commits `txn` (synchronously, if its tables require it: the cluster decides by table).
pub async fn commit(pg: &mut PgClient, txn: &Txn) -> Result<Commit, AuthError> {
    match pg.execute(txn, COMMIT_BUDGET).await {
        Executed::Committed { .. } => Ok(Commit::Done),
        Executed::Rejected(reason) if reason.starts_with("check failed") => Ok(Commit::CheckFailed(reason)),
        Executed::Rejected(reason) => Err(AuthError::Unavailable(format!("commit rejected: {reason}"))),
        Executed::Indeterminate(reason) => Err(AuthError::Unavailable(format!("commit outcome unknown: {reason}"))),
    }
}

/// A transaction id unique per attempt (the store's checkers find transactions by it).
pub fn txn_id(ctx_name: &str, incarnation: u64, rng: &mut impl RngCore) -> String {
    format!("{ctx_name}.{incarnation}.{:016x}", rng.next_u64())
}

/// A PostgreSQL client of `ctx`'s node through `proxies`.
pub fn client(ctx: &mut NodeCtx, proxies: &[String]) -> PgClient {
    PgClient::new(ctx, proxies.to_vec())
}
