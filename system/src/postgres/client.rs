//! The application's client: finds the primary through the DCS (where the manager publishes the
//! leader), sends each transaction with the epoch it expects, and retries elsewhere on "not
//! primary", or when the request never left (no connection, or it broke while writing), both of
//! which promise nothing was written. Anything else that goes wrong after a request was sent
//! leaves its fate unknown (indeterminate), and the client does not retry it. Connections are a
//! [`Channel`]'s: cached per member, reconnected after a backoff.

use std::io;
use std::time::Duration;

use sim::net::Net;
use sim::NodeCtx;
use tokio::time::Instant;

use super::data::Txn;
use super::dcs_client::DcsClient;
use super::protocol::{Request, Response, CLIENT_PORT};
use crate::rpc::{self, Channel, ChannelOptions, Encoding, RpcError};

const DCS_BUDGET: Duration = Duration::from_secs(1);
const CONNECT: Duration = Duration::from_secs(1);
const REPLY: Duration = Duration::from_secs(2);

/// What happened to a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Executed {
    Committed {
        node: String,
        epoch: u64,
        index: u64,
    },
    /// Definitely not committed (a check failed, or no primary could be found in time).
    Rejected(String),
    /// Sent, but no answer that settles it.
    Indeterminate(String),
}

pub struct PgClient {
    channel: Channel,
    dcs: DcsClient,
    leader: Option<(String, u64)>,
}

fn options() -> ChannelOptions {
    ChannelOptions {
        connect_timeout_ms: CONNECT.as_millis() as u64,
        ..ChannelOptions::new(CLIENT_PORT, Encoding::Json)
    }
}

impl PgClient {
    /// A client of this node (its reconnect jitter is forked from the node's rng).
    pub fn new(ctx: &mut NodeCtx, dcs_members: Vec<String>) -> Self {
        let dcs = DcsClient::new(ctx, dcs_members);
        PgClient { channel: Channel::new(ctx, options()), dcs, leader: None }
    }

    /// The primary the DCS names, and its epoch.
    pub async fn primary(&mut self) -> Option<(String, u64)> {
        if self.leader.is_none() {
            let view = self.dcs.read(DCS_BUDGET).await.ok()?;
            self.leader = view.leader.map(|k| (k.holder, k.epoch));
        }
        self.leader.clone()
    }

    /// Commits `txn` on the primary, looking for it for at most `budget`.
    pub async fn execute(&mut self, txn: &Txn, budget: Duration) -> Executed {
        let deadline = Instant::now() + budget;
        while Instant::now() < deadline {
            let Some((leader, epoch)) = self.primary().await else {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            let req = Request::Execute { epoch: Some(epoch), txn: txn.clone() };
            let answer = self.channel.call(&leader, &req, CONNECT + REPLY).await;
            if !matches!(
                answer,
                Ok(Response::Committed { .. } | Response::Rejected { .. } | Response::Indeterminate { .. })
            ) {
                self.leader = None;
            }
            match answer {
                Ok(Response::Committed { epoch, index }) => return Executed::Committed { node: leader, epoch, index },
                Ok(Response::Rejected { reason }) => return Executed::Rejected(reason),
                Ok(Response::NotPrimary { .. }) => tokio::time::sleep(Duration::from_millis(50)).await,
                Ok(Response::Indeterminate { reason }) => return Executed::Indeterminate(reason),
                Ok(other) => return Executed::Indeterminate(format!("unexpected answer {other:?}")),
                Err(RpcError::Connect(_) | RpcError::BackingOff) => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                // A cached connection the server had already closed: nothing reached it.
                Err(RpcError::Unsent(_)) => {}
                Err(RpcError::TimedOut) => return Executed::Indeterminate("no answer in time".into()),
                Err(e) => return Executed::Indeterminate(e.to_string()),
            }
        }
        Executed::Rejected("no primary found in time".into())
    }

    /// One request to one member (reads from a replica), on a fresh connection.
    pub async fn ask(net: &Net, node: &str, req: &Request) -> io::Result<Response> {
        Ok(rpc::call_once(net, node, &options(), req, REPLY).await?)
    }
}
