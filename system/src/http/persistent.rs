//! A client connection kept open between requests to one node's port (HTTP/1.1 keep-alive),
//! for a caller that asks the same thing over and over: a balancer's health checks, as Envoy's
//! (`reuse_connection`, on by default) are.
//!
//! A failure of any kind (no connection, an error, no answer within the timeout, a server that
//! answered `connection: close`) drops the connection, so the next request starts on a fresh one
//! and sees the node as it is now: a dead node refuses it, a partitioned one lets it time out,
//! just as with a connection per request. Requests are never pipelined: the next is written only
//! once the previous one's response has been read whole.

use std::time::Duration;

use sim::net::{Conn, Net};
use tokio::io::AsyncWriteExt;

use super::{read_response, HttpError, Request, Response};

/// One node's port, and the connection to it while it is usable.
pub struct Persistent {
    node: String,
    port: u16,
    conn: Option<Conn>,
}

impl Persistent {
    pub fn new(node: &str, port: u16) -> Self {
        Persistent { node: node.into(), port, conn: None }
    }

    /// Sends `request` (asking to keep the connection) on the open connection, or on a new one,
    /// and reads the response, all within `timeout`.
    pub async fn call(&mut self, net: &Net, request: &Request, timeout: Duration) -> Result<Response, HttpError> {
        let request = request.clone().keep_alive();
        let mut conn = self.conn.take();
        let exchange = async {
            let stream = match &mut conn {
                Some(open) => open,
                None => conn.insert(net.connect(&self.node, self.port).await?),
            };
            stream.write_all(&request.encode()).await?;
            stream.flush().await?;
            read_response(stream).await
        };
        let response = sim::timer::timeout(timeout, exchange).await.map_err(|_| HttpError::Timeout)??;
        if response.keeps_alive() {
            self.conn = conn;
        }
        Ok(response)
    }

    /// Whether a connection is open (for tests).
    pub fn is_open(&self) -> bool {
        self.conn.is_some()
    }
}
