//! The document service's use of the cache: rendered document versions cached under
//! version-stamped keys (immutable, so a lost write can only cost a miss, never a stale answer),
//! cache-aside reads that fall back to the source of truth on a miss, and short-lived session
//! keys whose expiry is checked. Beside them, a few mutable registers (`reg:N`, no TTL) are
//! overwritten, deleted and read, so that a stale read or a deleted key coming back can be
//! seen. A final read-back lists what the cache still holds and reads every register.
//! Everything the clients see is recorded as [`CacheObserved`] and [`RegisterObserved`], and
//! every command of the sessions as an operation for the availability report (`write`: `SET`
//! and `DEL`; `read`: `GET`; successful when a node answered it as asked). The read-backs are
//! not counted.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use sim::NodeCtx;
use system::redis::protocol::{Command, Reply};
use system::redis::{ClientConfig, RedisClient};

use super::history::{CacheObserved, RegisterObserved};
use super::{READ, WRITE};
use crate::availability::op_since;

const SESSIONS: usize = 2;
const DOCS: u64 = 20;
/// Mutable registers: few, so that reads often follow overwrites and deletes of the same key.
const REGISTERS: u64 = 6;
/// Rendered documents live long (they must outlive the run: a missing one was lost).
const DOC_TTL_MS: u64 = 120_000;
/// Session keys expire quickly, so reads after their TTL test expiry.
const SESSION_TTL_MS: u64 = 1_500;
/// Slack for a read to count as "after the TTL" (the master stamped the expiry a little
/// before the client saw the acknowledgement, never after).
pub const EXPIRY_SLACK_MS: u64 = 50;

/// The workload's timing.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// Sessions stop issuing commands here.
    pub writers_stop_ms: u64,
    /// The final read-back starts here.
    pub readback_at_ms: u64,
}

/// The source of truth (the database) the cache is filled from: each document's version.
type Source = Arc<Mutex<BTreeMap<u64, u64>>>;
/// The next register value: unique in the run, so a read names the write it returned.
type Seqs = Arc<Mutex<u64>>;

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

/// Runs the sessions (each with its own client config), then the read-back through `readback`.
pub async fn run(mut ctx: NodeCtx, sessions: Vec<ClientConfig>, readback: ClientConfig, timing: Timing) {
    let source: Source = Arc::default();
    let seqs: Seqs = Arc::default();
    for (s, client) in sessions.into_iter().enumerate() {
        tokio::spawn(session(ctx.fork(), client, s, (source.clone(), seqs.clone()), timing));
    }
    let now = ctx.clock.now_ms();
    sim::timer::sleep(Duration::from_millis(timing.readback_at_ms.saturating_sub(now))).await;
    read_back(&mut ctx, readback).await;
}

/// The default number of sessions, each with the same client config.
pub fn sessions(client: &ClientConfig) -> Vec<ClientConfig> {
    vec![client.clone(); SESSIONS]
}

async fn session(mut ctx: NodeCtx, client: ClientConfig, s: usize, (source, seqs): (Source, Seqs), timing: Timing) {
    let mut client = RedisClient::new(&mut ctx, client);
    let mut sessions: Vec<(String, u64)> = Vec::new();
    let mut n = 0u64;
    while ctx.clock.now_ms() < timing.writers_stop_ms {
        n += 1;
        let roll = ctx.rng.gen_range(0..100);
        let doc = ctx.rng.gen_range(0..DOCS);
        if roll < 25 {
            let version = {
                let mut src = lock(&source);
                let v = src.entry(doc).or_default();
                *v += 1;
                *v
            };
            set(&ctx, &mut client, doc_key(doc, version), content(doc, version), DOC_TTL_MS).await;
        } else if roll < 33 {
            let key = format!("session:{s}:{n}");
            if let Some(at) = set(&ctx, &mut client, key.clone(), "token".into(), SESSION_TTL_MS).await {
                sessions.push((key, at));
            }
        } else if roll < 40 {
            check_expired(&ctx, &mut client, &mut sessions).await;
        } else if roll < 60 {
            let key = format!("reg:{}", ctx.rng.gen_range(0..REGISTERS));
            let seq = {
                let mut next = lock(&seqs);
                *next += 1;
                *next
            };
            write_register(&ctx, &mut client, key, seq, roll >= 55).await;
        } else if roll < 75 {
            let key = format!("reg:{}", ctx.rng.gen_range(0..REGISTERS));
            let invoked_ms = ctx.clock.now_ms();
            let ok = read_register(&ctx, &mut client, key).await;
            op_since(&ctx, READ, ok, invoked_ms);
        } else {
            let version = lock(&source).get(&doc).copied().unwrap_or(0);
            if version > 0 {
                read_through(&ctx, &mut client, doc, version).await;
            }
        }
        sim::timer::sleep(Duration::from_millis(ctx.rng.gen_range(10..40))).await;
    }
}

/// `SET key value PX ttl`; records the outcome and returns when it was acknowledged.
async fn set(ctx: &NodeCtx, client: &mut RedisClient, key: String, value: String, ttl_ms: u64) -> Option<u64> {
    let cmd = Command::Set { key: key.clone(), value, px: Some(ttl_ms) };
    let invoked_ms = ctx.clock.now_ms();
    let reply = client.call(&cmd).await;
    op_since(ctx, WRITE, matches!(reply, Ok((_, Reply::Ok))), invoked_ms);
    match reply {
        Ok((node, Reply::Ok)) => {
            ctx.observe(&CacheObserved::WriteAcked { key, node, ttl_ms });
            Some(ctx.clock.now_ms())
        }
        Ok((node, other)) => {
            ctx.observe(&CacheObserved::WriteFailed { key, error: format!("{node} answered {other:?}") });
            None
        }
        Err(e) => {
            ctx.observe(&CacheObserved::WriteFailed { key, error: e.to_string() });
            None
        }
    }
}

/// Cache-aside: a hit must be exactly the rendering; a miss renders from the source and fills.
async fn read_through(ctx: &NodeCtx, client: &mut RedisClient, doc: u64, version: u64) {
    let key = doc_key(doc, version);
    let invoked_ms = ctx.clock.now_ms();
    let reply = client.call(&Command::Get { key: key.clone() }).await;
    op_since(ctx, READ, matches!(reply, Ok((_, Reply::Value { .. }))), invoked_ms);
    let Ok((node, Reply::Value { value })) = reply else { return };
    let source = content(doc, version);
    let miss = value.is_none();
    ctx.observe(&CacheObserved::Read { key: key.clone(), node, returned: value, source: source.clone() });
    if miss {
        ctx.sometimes("redis.cache_miss_refilled");
        set(ctx, client, key, source, DOC_TTL_MS).await;
    }
}

/// Reads one session key whose TTL has passed: the cache must not return it.
async fn check_expired(ctx: &NodeCtx, client: &mut RedisClient, sessions: &mut Vec<(String, u64)>) {
    let now = ctx.clock.now_ms();
    let Some(i) = sessions.iter().position(|(_, at)| now >= at + SESSION_TTL_MS + EXPIRY_SLACK_MS) else { return };
    let (key, acked_at_ms) = sessions.swap_remove(i);
    let invoked_ms = ctx.clock.now_ms();
    let reply = client.call(&Command::Get { key: key.clone() }).await;
    op_since(ctx, READ, matches!(reply, Ok((_, Reply::Value { .. }))), invoked_ms);
    let Ok((node, Reply::Value { value })) = reply else { return };
    ctx.observe(&CacheObserved::SessionRead { key, node, acked_at_ms, ttl_ms: SESSION_TTL_MS, returned: value });
}

/// `SET key seq` or `DEL key`, recorded with when it was invoked.
async fn write_register(ctx: &NodeCtx, client: &mut RedisClient, key: String, seq: u64, delete: bool) {
    let invoked_ms = ctx.clock.now_ms();
    let cmd = match delete {
        true => Command::Del { key: key.clone() },
        false => Command::Set { key: key.clone(), value: seq.to_string(), px: None },
    };
    match client.call(&cmd).await {
        Ok((node, Reply::Ok | Reply::Int { .. })) => {
            op_since(ctx, WRITE, true, invoked_ms);
            ctx.observe(&RegisterObserved::Acked { key, seq, delete, node, invoked_ms })
        }
        _ => {
            op_since(ctx, WRITE, false, invoked_ms);
            ctx.observe(&RegisterObserved::Failed { key, seq, delete, invoked_ms })
        }
    }
}

/// `GET key`, recorded with when it was invoked and which write's value it returned; whether it
/// was served.
async fn read_register(ctx: &NodeCtx, client: &mut RedisClient, key: String) -> bool {
    let invoked_ms = ctx.clock.now_ms();
    let Ok((node, Reply::Value { value })) = client.call(&Command::Get { key: key.clone() }).await else {
        return false;
    };
    // Every value this workload writes to a register is a sequence number; anything else
    // (another key's value) is recorded as one no write produced, for the checker to report.
    let seq = value.map(|v| v.parse().unwrap_or(u64::MAX));
    ctx.observe(&RegisterObserved::Read { key, node, invoked_ms, seq });
    true
}

/// The verifier, started when the servers recover from the ending's power loss: finds the
/// master through the Sentinels (retrying while there is none), lists every key it holds and
/// reads every register.
pub async fn verify(mut ctx: NodeCtx, client: ClientConfig) {
    let mut client = RedisClient::new(&mut ctx, client);
    for _ in 0..15 {
        let cmd = Command::Keys { prefix: String::new(), limit: 1_000_000 };
        if let Ok((node, Reply::Keys { keys })) = client.call(&cmd).await {
            ctx.observe(&CacheObserved::Recovered { node, keys });
            for r in 0..REGISTERS {
                read_register(&ctx, &mut client, format!("reg:{r}")).await;
            }
            return;
        }
        sim::timer::sleep(Duration::from_millis(300)).await;
    }
}

/// Lists every key the master holds, retrying while no master can be found.
async fn read_back(ctx: &mut NodeCtx, client: ClientConfig) {
    let mut client = RedisClient::new(ctx, client);
    for _ in 0..10 {
        let cmd = Command::Keys { prefix: String::new(), limit: 1_000_000 };
        if let Ok((node, Reply::Keys { keys })) = client.call(&cmd).await {
            ctx.observe(&CacheObserved::ReadBack { node, keys });
            for r in 0..REGISTERS {
                read_register(ctx, &mut client, format!("reg:{r}")).await;
            }
            return;
        }
        sim::timer::sleep(Duration::from_millis(300)).await;
    }
}
