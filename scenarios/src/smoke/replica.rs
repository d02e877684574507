//! A replica of the smoke log: a Raft member that applies appends in order and serves clients:
//! appends from the workload, and reads of its applied log from the verifier.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use sim::NodeCtx;
use system::consensus::{Consensus, ConsensusConfig, ProposeError};
use system::raft;
use system::rpc::{self, Answer, Encoding, Listen};

pub const RAFT_PORT: u16 = 7000;
pub const CLIENT_PORT: u16 = 7001;
const TICK_MS: u64 = 100;

#[derive(Debug, Serialize, Deserialize)]
pub struct AppendRequest {
    pub value: String,
    /// The client's wall clock when it sent the request (shows clock skew in the trace).
    pub client_wall_ms: u64,
}

/// What a replica is asked.
#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    Append(AppendRequest),
    /// The entries this replica applied up to index `upto` (the verifier's read).
    ReadApplied {
        upto: u64,
    },
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Response {
    Committed {
        index: u64,
    },
    NotLeader {
        leader: Option<String>,
    },
    Failed {
        reason: String,
    },
    /// The non-empty entries applied up to the index asked for, as (index, value).
    Applied {
        entries: Vec<(u64, String)>,
    },
    /// This replica has applied only up to `applied` so far.
    Behind {
        applied: u64,
    },
}

/// What a replica applied in this life (entries are re-applied from index 1 after a restart).
#[derive(Default)]
struct Applied {
    index: u64,
    entries: Vec<(u64, String)>,
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
    let applied = Arc::new(Mutex::new(Applied::default()));
    let log = applied.clone();
    tokio::spawn(async move {
        while let Some(entry) = committed.recv().await {
            let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
            log.index = entry.index;
            if !entry.is_noop() {
                log.entries.push((entry.index, String::from_utf8_lossy(&entry.data).into_owned()));
            }
        }
    });
    serve_clients(ctx, consensus, applied).await;
}

/// Answers appends (proposed to the log, answered once committed) and reads of the applied log.
async fn serve_clients(ctx: NodeCtx, consensus: Consensus, applied: Arc<Mutex<Applied>>) {
    let listen = Listen::new(CLIENT_PORT, Encoding::Json);
    let err = rpc::serve(ctx.net.clone(), listen, move |req: Request| {
        let consensus = consensus.clone();
        let applied = applied.clone();
        async move {
            Answer::Reply(match req {
                Request::Append(req) => match consensus.propose(req.value.into_bytes()).await {
                    Ok(index) => Response::Committed { index },
                    Err(ProposeError::NotLeader(leader)) => Response::NotLeader { leader },
                    Err(e) => Response::Failed { reason: e.to_string() },
                },
                Request::ReadApplied { upto } => {
                    let log = applied.lock().unwrap_or_else(|e| e.into_inner());
                    if log.index < upto {
                        Response::Behind { applied: log.index }
                    } else {
                        let entries = log.entries.iter().take_while(|(i, _)| *i <= upto).cloned().collect();
                        Response::Applied { entries }
                    }
                }
            })
        }
    })
    .await;
    ctx.trace("replica.listen_failed", serde_json::json!({ "port": CLIENT_PORT, "error": err.to_string() }));
}
