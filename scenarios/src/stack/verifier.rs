//! The verifier: started when the ending's recovery starts (after every server lost power and
//! restarted), it waits for the stores and services to recover, then reads every document
//! twice, through the front door (`GET /docs/<doc>/state` on a balancer) and rebuilt from
//! MongoDB alone (snapshots and operations read through a router in this node), and records
//! both ([`Verified`]). Each read is retried until it answers or the read window closes. In the
//! same window it reads the durable path straight from Kafka and MongoDB
//! ([`super::durable_read::verify`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use sim::NodeCtx;

use super::durable_read::DurableSources;
use super::observe::Verified;
use super::users;
use super::ydoc::{self, DocState};

/// Rebuilds a document from MongoDB alone: its whole state as one v1 update.
pub type MongoReader =
    Arc<dyn Fn(NodeCtx, String) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, String>> + Send>> + Send + Sync>;

#[derive(Clone)]
pub struct VerifierConfig {
    pub balancers: Vec<String>,
    pub docs: Vec<String>,
    /// After recovery starts, wait this long before the first read (elections, consumers
    /// catching up).
    pub wait_ms: u64,
    /// Reads are retried for this long after the wait.
    pub read_window_ms: u64,
    pub mongo: Option<MongoReader>,
    /// The durable path's stores, read straight for the durable-path checkers (concurrently with
    /// the document reads, in the same window).
    pub durable: Option<DurableSources>,
}

pub async fn run(mut ctx: NodeCtx, cfg: VerifierConfig) {
    sim::timer::sleep(Duration::from_millis(cfg.wait_ms)).await;
    let deadline = ctx.clock.now_ms() + cfg.read_window_ms;
    // The durable path is read concurrently; the node waits for it before it returns, since a
    // host whose main returns loses its tasks on turmoil.
    let durable = cfg
        .durable
        .clone()
        .map(|src| tokio::spawn(super::durable_read::verify(ctx.fork(), src, cfg.docs.clone(), deadline)));
    for doc in &cfg.docs {
        let front_door = read_front_door(&mut ctx, &cfg, doc, deadline).await;
        let mongo = match &cfg.mongo {
            None => Err("no MongoDB reader".to_string()),
            Some(reader) => read_mongo(&mut ctx, reader, doc, deadline).await,
        };
        if front_door.is_ok() && mongo.is_ok() {
            ctx.sometimes("stack.verified_both_ways");
        }
        ctx.observe(&Verified { doc: doc.clone(), front_door, mongo });
    }
    if let Some(durable) = durable {
        let _ = durable.await;
    }
}

async fn read_front_door(
    ctx: &mut NodeCtx,
    cfg: &VerifierConfig,
    doc: &str,
    deadline: u64,
) -> Result<DocState, String> {
    let mut last = String::from("never tried");
    let mut lb = ctx.rng.gen_range(0..cfg.balancers.len());
    while ctx.clock.now_ms() < deadline {
        match users::load_state(&ctx.net, &cfg.balancers[lb], doc).await {
            Ok(bytes) => return ydoc::read_update(&bytes).map_err(|e| e.to_string()),
            Err(e) => last = e,
        }
        lb = (lb + 1) % cfg.balancers.len();
        sim::timer::sleep(Duration::from_millis(500)).await;
    }
    Err(format!("front door: {last}"))
}

async fn read_mongo(ctx: &mut NodeCtx, reader: &MongoReader, doc: &str, deadline: u64) -> Result<DocState, String> {
    let mut last = String::from("never tried");
    while ctx.clock.now_ms() < deadline {
        match reader(ctx.fork(), doc.to_string()).await {
            Ok(bytes) => return ydoc::read_update(&bytes).map_err(|e| e.to_string()),
            Err(e) => last = e,
        }
        sim::timer::sleep(Duration::from_millis(500)).await;
    }
    Err(format!("MongoDB: {last}"))
}
