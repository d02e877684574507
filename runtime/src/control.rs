//! The supervisor's control channel: one JSON line in, one JSON line out, over TCP on
//! 127.0.0.1 at the port `supervisor.json` names. `stack status|kill|restart` are its clients.

use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::data_dir::DataDir;

/// Longest a command may take (a restart waits for the node's health).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    Status,
    /// SIGKILL the node; the supervisor leaves it dead until `restart`.
    Kill {
        node: String,
    },
    /// Start the node again (SIGKILLing it first if it runs) and wait until it is healthy.
    Restart {
        node: String,
    },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    Status {
        nodes: Vec<NodeStatus>,
    },
    Done {
        message: String,
    },
    /// `usage`: the request named something that does not exist (a CLI usage error).
    Error {
        message: String,
        usage: bool,
    },
}

/// One node as `status` shows it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeStatus {
    pub name: String,
    pub pid: Option<u32>,
    /// `running`, `killed`, `exited (...)` or `stopped`.
    pub state: String,
    pub alive: bool,
    pub healthy: bool,
    /// The first real port of its block.
    pub base_port: u16,
}

/// Why a command could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("no running stack in {dir}: {why} (start one with `cargo stack up --data-dir {dir}`)")]
    NoStack { dir: String, why: String },
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Sends `request` to the supervisor running on `data`.
pub async fn send(data: &DataDir, request: &Request) -> Result<Reply, ControlError> {
    let dir = data.root().display().to_string();
    let sup = data
        .read_supervisor()
        .map_err(|e| ControlError::NoStack { dir: dir.clone(), why: format!("cannot read supervisor.json: {e}") })?;
    let mut conn = TcpStream::connect(("127.0.0.1", sup.control_port)).await.map_err(|e| ControlError::NoStack {
        dir: dir.clone(),
        why: format!("supervisor {} unreachable: {e}", sup.pid),
    })?;
    let exchange = async {
        let mut line = serde_json::to_vec(request).context("encoding the request")?;
        line.push(b'\n');
        conn.write_all(&line).await.context("sending the request")?;
        let mut reader = BufReader::new(conn);
        let mut answer = String::new();
        reader.read_line(&mut answer).await.context("reading the reply")?;
        serde_json::from_str::<Reply>(&answer).context("decoding the reply")
    };
    let reply = sim::timer::timeout(COMMAND_TIMEOUT, exchange)
        .await
        .map_err(|_| anyhow::anyhow!("the supervisor did not answer within {COMMAND_TIMEOUT:?}"))??;
    match reply {
        Reply::Error { message, usage: true } => Err(ControlError::Usage(message)),
        Reply::Error { message, usage: false } => Err(ControlError::Refused(message)),
        reply => Ok(reply),
    }
}
