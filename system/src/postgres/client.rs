//! The application's client: connects to the cluster's proxy ([`super::proxy`]), which forwards
//! its connection to the member whose agent passes the `/primary` health check, as an
//! application behind HAProxy does; it never reads the DCS. It retries on "not primary" (from
//! the proxy, with no healthy primary, or from a member demoted under it), or when the request
//! never left (no connection, or it broke while writing), all of which promise nothing was
//! written. Anything else that goes wrong after a request was sent leaves its fate unknown
//! (indeterminate), and the client does not retry it. Connections are a [`Channel`]'s: cached
//! per proxy, reconnected after a backoff.

use std::io;
use std::time::Duration;

use sim::net::Net;
use sim::NodeCtx;
use tokio::time::Instant;

use super::data::Txn;
use super::protocol::{Request, Response, Routed, CLIENT_PORT, PROXY_PORT};
use crate::rpc::{self, Channel, ChannelOptions, Encoding, RpcError};

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
    proxies: Vec<String>,
    next: usize,
}

fn options() -> ChannelOptions {
    ChannelOptions {
        connect_timeout_ms: CONNECT.as_millis() as u64,
        ..ChannelOptions::new(CLIENT_PORT, Encoding::Json)
    }
}

impl PgClient {
    /// A client of this node going through `proxies` (its reconnect jitter is forked from the
    /// node's rng).
    pub fn new(ctx: &mut NodeCtx, proxies: Vec<String>) -> Self {
        let options = ChannelOptions { port: PROXY_PORT, ..options() };
        PgClient { channel: Channel::new(ctx, options), proxies, next: 0 }
    }

    /// The proxy to use now; the next one after a connection failure.
    fn proxy(&self) -> &str {
        &self.proxies[self.next % self.proxies.len()]
    }

    /// Commits `txn` on whichever member the proxy routes to, for at most `budget`.
    pub async fn execute(&mut self, txn: &Txn, budget: Duration) -> Executed {
        let deadline = Instant::now() + budget;
        while Instant::now() < deadline {
            let proxy = self.proxy().to_string();
            let req = Request::Execute { epoch: None, txn: txn.clone() };
            let answer: Result<Routed, RpcError> = self.channel.call(&proxy, &req, CONNECT + REPLY).await;
            let (node, response) = match answer {
                Ok(Routed { node, response }) => (node, response),
                Err(RpcError::Connect(_) | RpcError::BackingOff) => {
                    self.next += 1;
                    sim::timer::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                // A cached connection the proxy had already closed: nothing reached it.
                Err(RpcError::Unsent(_)) => continue,
                Err(RpcError::TimedOut) => return Executed::Indeterminate("no answer in time".into()),
                Err(e) => return Executed::Indeterminate(e.to_string()),
            };
            match (response, node) {
                (Response::Committed { epoch, index }, Some(node)) => {
                    return Executed::Committed { node, epoch, index }
                }
                (Response::Rejected { reason }, _) => return Executed::Rejected(reason),
                (Response::NotPrimary { .. }, _) => sim::timer::sleep(Duration::from_millis(50)).await,
                (Response::Indeterminate { reason }, _) => return Executed::Indeterminate(reason),
                (other, node) => return Executed::Indeterminate(format!("unexpected answer {other:?} from {node:?}")),
            }
        }
        Executed::Rejected("no primary found in time".into())
    }

    /// One request (a read) through the proxy, to the member it routes to now: that member's name
    /// (None when the proxy had no healthy primary) and its answer.
    pub async fn request(&mut self, req: &Request) -> Result<(Option<String>, Response), RpcError> {
        let proxy = self.proxy().to_string();
        let answer: Result<Routed, RpcError> = self.channel.call(&proxy, req, CONNECT + REPLY).await;
        if matches!(answer, Err(RpcError::Connect(_) | RpcError::BackingOff)) {
            self.next += 1;
        }
        answer.map(|Routed { node, response }| (node, response))
    }

    /// One request to one member (reads from a replica), on a fresh connection.
    pub async fn ask(net: &Net, node: &str, req: &Request) -> io::Result<Response> {
        Ok(rpc::call_once(net, node, &options(), req, REPLY).await?)
    }
}
