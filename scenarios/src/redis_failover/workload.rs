//! The document service's use of the cache: rendered document versions cached under
//! version-stamped keys (immutable, so a lost write can only cost a miss, never a stale answer),
//! cache-aside reads that fall back to the source of truth on a miss, and short-lived session
//! keys whose expiry is checked. A final read-back records which acknowledged writes the cache
//! no longer holds.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use sim::NodeCtx;
use system::redis::protocol::{Command, Reply};
use system::redis::{ClientConfig, RedisClient};

use super::history::{History, WriteAck};
use super::READBACK_AT_MS;

const SESSIONS: usize = 2;
const DOCS: u64 = 20;
/// Rendered documents live long (they must outlive the run: a missing one was lost).
const DOC_TTL_MS: u64 = 120_000;
/// Session keys expire quickly, so reads after their TTL test expiry.
const SESSION_TTL_MS: u64 = 1_500;
/// Slack for a read to count as "after the TTL" (the master stamped the expiry a little
/// before the client saw the acknowledgement, never after).
const EXPIRY_SLACK_MS: u64 = 50;

/// The source of truth (the database) the cache is filled from: each document's version.
type Source = Arc<Mutex<BTreeMap<u64, u64>>>;

pub fn doc_key(doc: u64, version: u64) -> String {
    format!("doc:{doc}:v{version}")
}

/// What a rendering of `doc` at `version` looks like; the cache must hand back exactly this.
fn content(doc: u64, version: u64) -> String {
    format!("<doc {doc} rendered at version {version}>")
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub async fn run(mut ctx: NodeCtx, client: ClientConfig, history: Arc<Mutex<History>>) {
    let source: Source = Arc::default();
    for s in 0..SESSIONS {
        tokio::spawn(session(ctx.fork(), client.clone(), s, source.clone(), history.clone()));
    }
    let now = ctx.clock.now_ms();
    tokio::time::sleep(Duration::from_millis(READBACK_AT_MS.saturating_sub(now))).await;
    readback(&ctx, client, &history).await;
}

async fn session(mut ctx: NodeCtx, client: ClientConfig, s: usize, source: Source, history: Arc<Mutex<History>>) {
    let mut client = RedisClient::new(ctx.net.clone(), client);
    let mut sessions: Vec<(String, u64)> = Vec::new();
    let mut n = 0u64;
    while ctx.clock.now_ms() + 1_000 < READBACK_AT_MS {
        n += 1;
        let roll = ctx.rng.gen_range(0..100);
        let doc = ctx.rng.gen_range(0..DOCS);
        if roll < 30 {
            let version = {
                let mut src = lock(&source);
                let v = src.entry(doc).or_default();
                *v += 1;
                *v
            };
            set(&ctx, &mut client, &history, doc_key(doc, version), content(doc, version), DOC_TTL_MS).await;
        } else if roll < 40 {
            let key = format!("session:{s}:{n}");
            if let Some(at) = set(&ctx, &mut client, &history, key.clone(), "token".into(), SESSION_TTL_MS).await {
                sessions.push((key, at));
            }
        } else if roll < 50 {
            check_expired(&ctx, &mut client, &history, &mut sessions).await;
        } else {
            let version = lock(&source).get(&doc).copied().unwrap_or(0);
            if version > 0 {
                read_through(&ctx, &mut client, &history, doc, version).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(ctx.rng.gen_range(10..40))).await;
    }
}

/// `SET key value PX ttl`; records the acknowledgement and returns its time.
async fn set(
    ctx: &NodeCtx,
    client: &mut RedisClient,
    history: &Mutex<History>,
    key: String,
    value: String,
    ttl: u64,
) -> Option<u64> {
    let cmd = Command::Set { key: key.clone(), value, px: Some(ttl) };
    let result = client.call(&cmd).await;
    let at_ms = ctx.clock.now_ms();
    let mut h = lock(history);
    match result {
        Ok((node, Reply::Ok)) => {
            ctx.trace("redis.client.set", serde_json::json!({ "key": key, "node": node }));
            if key.starts_with("doc:") {
                h.writes.push(WriteAck { key, node, at_ms });
            }
            Some(at_ms)
        }
        _ => {
            h.write_errors += 1;
            None
        }
    }
}

/// Cache-aside: a hit must be exactly the rendering; a miss renders from the source and fills.
async fn read_through(ctx: &NodeCtx, client: &mut RedisClient, history: &Mutex<History>, doc: u64, version: u64) {
    let key = doc_key(doc, version);
    let Ok((node, Reply::Value { value })) = client.call(&Command::Get { key: key.clone() }).await else { return };
    let expected = content(doc, version);
    match value {
        Some(v) => {
            let mut h = lock(history);
            h.hits += 1;
            if v != expected {
                let at = ctx.clock.now_ms();
                h.bad_reads.push(format!(
                    "cache served wrong data: {key} from {node} at {at} ms was {v:?}, the source says {expected:?}"
                ));
            }
        }
        None => {
            lock(history).misses += 1;
            ctx.sometimes("redis.cache_miss_refilled");
            set(ctx, client, history, key, expected, DOC_TTL_MS).await;
        }
    }
}

/// Reads one session key whose TTL has passed: the cache must not return it.
async fn check_expired(
    ctx: &NodeCtx,
    client: &mut RedisClient,
    history: &Mutex<History>,
    sessions: &mut Vec<(String, u64)>,
) {
    let now = ctx.clock.now_ms();
    let Some(i) = sessions.iter().position(|(_, at)| now >= at + SESSION_TTL_MS + EXPIRY_SLACK_MS) else { return };
    let (key, acked_at) = sessions.swap_remove(i);
    let Ok((node, Reply::Value { value })) = client.call(&Command::Get { key: key.clone() }).await else { return };
    let mut h = lock(history);
    h.expiry_checks += 1;
    if value.is_some() {
        let at = ctx.clock.now_ms();
        h.bad_reads.push(format!(
            "expired key served: {key} (PX {SESSION_TTL_MS}, acknowledged at {acked_at} ms) returned by {node} at {at} ms"
        ));
    }
}

/// Lists the document keys the master holds, retrying while no master can be found.
async fn readback(ctx: &NodeCtx, client: ClientConfig, history: &Mutex<History>) {
    let mut client = RedisClient::new(ctx.net.clone(), client);
    for _ in 0..10 {
        let cmd = Command::Keys { prefix: "doc:".into(), limit: 1_000_000 };
        if let Ok((node, Reply::Keys { keys })) = client.call(&cmd).await {
            let at = ctx.clock.now_ms();
            let keys: BTreeSet<String> = keys.into_iter().collect();
            lock(history).readback = Some((node, at, keys));
            return;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
