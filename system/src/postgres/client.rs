//! The application's client: finds the primary through the DCS (where the manager publishes the
//! leader), sends each transaction with the epoch it expects, and retries elsewhere on "not
//! primary", which promises nothing was written. Anything else that goes wrong after a request
//! was sent leaves its fate unknown (indeterminate), and the client does not retry it.

use std::io;
use std::time::Duration;

use sim::net::{Conn, Net};
use tokio::time::Instant;

use super::data::Txn;
use super::dcs_client::DcsClient;
use super::protocol::{Request, Response, CLIENT_PORT};
use crate::wire;

const DCS_BUDGET: Duration = Duration::from_secs(1);
const CONNECT: Duration = Duration::from_secs(1);
const REPLY: Duration = Duration::from_secs(2);

/// What happened to a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Executed {
    Committed { node: String, epoch: u64, index: u64 },
    /// Definitely not committed (a check failed, or no primary could be found in time).
    Rejected(String),
    /// Sent, but no answer that settles it.
    Indeterminate(String),
}

pub struct PgClient {
    net: Net,
    dcs: DcsClient,
    leader: Option<(String, u64)>,
    conn: Option<Conn>,
}

impl PgClient {
    pub fn new(net: Net, dcs_members: Vec<String>) -> Self {
        let dcs = DcsClient::new(net.clone(), dcs_members);
        PgClient { net, dcs, leader: None, conn: None }
    }

    /// The primary the DCS names, and its epoch.
    pub async fn primary(&mut self) -> Option<(String, u64)> {
        if self.leader.is_none() {
            let view = self.dcs.read(DCS_BUDGET).await.ok()?;
            self.leader = view.leader.map(|k| (k.holder, k.epoch));
            self.conn = None;
        }
        self.leader.clone()
    }

    fn forget(&mut self) {
        self.leader = None;
        self.conn = None;
    }

    /// Commits `txn` on the primary, looking for it for at most `budget`.
    pub async fn execute(&mut self, txn: &Txn, budget: Duration) -> Executed {
        let deadline = Instant::now() + budget;
        while Instant::now() < deadline {
            let Some((leader, epoch)) = self.primary().await else {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            if self.conn.is_none() {
                match tokio::time::timeout(CONNECT, self.net.connect(&leader, CLIENT_PORT)).await {
                    Ok(Ok(c)) => self.conn = Some(c),
                    _ => {
                        self.forget();
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                }
            }
            let conn = self.conn.as_mut().expect("connected above");
            let req = Request::Execute { epoch: Some(epoch), txn: txn.clone() };
            if wire::send(conn, &req).await.is_err() {
                // A pooled connection the server had already closed: nothing reached it.
                self.forget();
                continue;
            }
            match tokio::time::timeout(REPLY, wire::recv::<_, Response>(conn)).await {
                Ok(Ok(Response::Committed { epoch, index })) => return Executed::Committed { node: leader, epoch, index },
                Ok(Ok(Response::Rejected { reason })) => return Executed::Rejected(reason),
                Ok(Ok(Response::NotPrimary { .. })) => {
                    self.forget();
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Ok(Ok(Response::Indeterminate { reason })) => return Executed::Indeterminate(reason),
                Ok(Ok(other)) => return Executed::Indeterminate(format!("unexpected answer {other:?}")),
                Ok(Err(e)) => {
                    self.forget();
                    return Executed::Indeterminate(e.to_string());
                }
                Err(_) => {
                    self.forget();
                    return Executed::Indeterminate("no answer in time".into());
                }
            }
        }
        Executed::Rejected("no primary found in time".into())
    }

    /// One request to one member (reads from a replica), on a fresh connection.
    pub async fn ask(net: &Net, node: &str, req: &Request) -> io::Result<Response> {
        let exchange = async {
            let mut conn = net.connect(node, CLIENT_PORT).await?;
            wire::send(&mut conn, req).await?;
            wire::recv(&mut conn).await
        };
        tokio::time::timeout(REPLY, exchange).await.map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?
    }
}
