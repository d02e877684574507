//! The verifier: started when the servers restart after the run's final power loss, it reads
//! every document's CRDT operations and snapshots back through a router at
//! `readConcern: "majority"` (retrying until the recovered sets have elected primaries and
//! committed in their new terms), and records what it read. The read-back checker
//! ([`super::read_back`]) holds every acknowledged write against it: what a client can read
//! after the last crash is the truth, not what a primary said it wrote.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sim::{NodeCtx, Observation};
use system::mongo::collections as coll;
use system::mongo::{MongoCluster, ReadConcern};

use super::DOCS;

/// How long the verifier waits between attempts while the sets recover.
const RETRY_MS: u64 = 500;

/// One namespace of one document as read back after recovery: every id under `prefix`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReadBack {
    pub set: String,
    pub ns: String,
    pub prefix: String,
    pub ids: Vec<String>,
}

impl Observation for ReadBack {
    const KIND: &'static str = "mongo.read_back";
}

pub async fn run(mut ctx: NodeCtx, mongo: MongoCluster) {
    let router = mongo.router(ctx.fork());
    for doc in DOCS {
        let snapshots_prefix = format!("{doc}@");
        for (ns, prefix) in [(coll::CRDT_OPS, coll::crdt_ops_prefix(doc)), (coll::SNAPSHOTS, snapshots_prefix)] {
            loop {
                let read = match router.find(doc, ns, &prefix, ReadConcern::Majority).await {
                    Ok(found) => router.shard_for(doc).await.map(|set| (set, found)),
                    Err(e) => Err(e),
                };
                match read {
                    Ok((set, found)) => {
                        let ids = found.into_iter().map(|d| d.id).collect();
                        ctx.observe(&ReadBack { set, ns: ns.into(), prefix, ids });
                        break;
                    }
                    Err(_) => sim::timer::sleep(Duration::from_millis(RETRY_MS)).await,
                }
            }
        }
    }
}
