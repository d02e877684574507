//! A replica of the smoke log: a Raft member that applies appends in order and serves clients.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sim::NodeCtx;
use system::consensus::{Consensus, ConsensusConfig, ProposeError};
use system::raft;
use system::rpc::{self, Answer, Encoding, Listen};

use super::history::ReplicaApplied;

pub const RAFT_PORT: u16 = 7000;
pub const CLIENT_PORT: u16 = 7001;
const TICK_MS: u64 = 100;

#[derive(Debug, Serialize, Deserialize)]
pub struct AppendRequest {
    pub value: String,
    /// The client's wall clock when it sent the request (shows clock skew in the trace).
    pub client_wall_ms: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum AppendResponse {
    Committed { index: u64 },
    NotLeader { leader: Option<String> },
    Failed { reason: String },
}

pub async fn run(mut ctx: NodeCtx, id: u64, members: BTreeMap<u64, String>) {
    let mut config = raft::Config::new(id, members.keys().copied().collect());
    config.election_timeout_ticks = 10;
    config.heartbeat_ticks = 1;
    let config = ConsensusConfig {
        me: id,
        members,
        port: RAFT_PORT,
        tick_ms: TICK_MS,
        file_prefix: "raft".into(),
        leader_role: "log-leader".into(),
        raft: config,
    };
    let (consensus, mut committed) = Consensus::start(&mut ctx, config);
    ctx.observe(&ReplicaApplied::Started);
    let applier = ctx.fork();
    tokio::spawn(async move {
        while let Some(entry) = committed.recv().await {
            if entry.is_noop() {
                continue;
            }
            applier.observe(&ReplicaApplied::Entry { value: String::from_utf8_lossy(&entry.data).into_owned() });
        }
    });
    serve_clients(ctx, consensus).await;
}

/// Answers appends: each request is proposed to the log and answered once committed.
async fn serve_clients(ctx: NodeCtx, consensus: Consensus) {
    let listen = Listen::new(CLIENT_PORT, Encoding::Json);
    let err = rpc::serve(ctx.net.clone(), listen, move |req: AppendRequest| {
        let consensus = consensus.clone();
        async move {
            Answer::Reply(match consensus.propose(req.value.into_bytes()).await {
                Ok(index) => AppendResponse::Committed { index },
                Err(ProposeError::NotLeader(leader)) => AppendResponse::NotLeader { leader },
                Err(e) => AppendResponse::Failed { reason: e.to_string() },
            })
        }
    })
    .await;
    ctx.trace("replica.listen_failed", serde_json::json!({ "port": CLIENT_PORT, "error": err.to_string() }));
}
