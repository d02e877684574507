//! The standby's side of the shell: the walreceiver's connection. It connects to the leader
//! the manager follows and relays what arrives to the core ([`super::member`]), which compares
//! timelines, rewinds, appends and reports positions; the shell sends what the core answers.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sim::net::Conn;

use super::member::Input;
use super::node::{Ended, Node};
use super::protocol::{Replication, REPLICATION_PORT};
use crate::wire;

const CONNECT: Duration = Duration::from_secs(1);
const HANDSHAKE: Duration = Duration::from_secs(2);
/// No record or keepalive for this long: the stream is presumed dead (`wal_receiver_timeout`,
/// 60 s in PostgreSQL, scaled down with the rest).
const RECEIVER_TIMEOUT: Duration = Duration::from_secs(3);
const RETRY: Duration = Duration::from_millis(500);

impl Node {
    /// Streams from `leader` until this generation ends.
    pub(super) async fn receive_wal(self: Arc<Self>, leader: String, gen: u64) {
        loop {
            if self.lock().generation() != gen {
                return;
            }
            if let Err(e) = self.stream_from(&leader, gen).await {
                if e.kind() == io::ErrorKind::InvalidData {
                    self.ctx.trace("pg.stream_refused", json!({ "leader": leader, "error": e.to_string() }));
                }
            }
            tokio::time::sleep(RETRY).await;
        }
    }

    async fn stream_from(self: &Arc<Self>, leader: &str, gen: u64) -> io::Result<()> {
        let mut conn = tokio::time::timeout(CONNECT, self.ctx.net.connect(leader, REPLICATION_PORT)).await??;
        let position = self.lock().position();
        let hello = Replication::Hello { name: self.name().into(), zone: self.ctx.zone.clone(), position };
        wire::send(&mut conn, &hello).await?;
        let (epoch, history, last_index) = match tokio::time::timeout(HANDSHAKE, wire::recv(&mut conn)).await? {
            Ok(Replication::Welcome { epoch, history, last_index }) => (epoch, history, last_index),
            Ok(_) => return Err(io::Error::new(io::ErrorKind::InvalidData, "not a primary")),
            Err(e) => return Err(e),
        };
        self.exchange(&mut conn, Input::Welcome { gen, epoch, history, last_index }).await?;
        loop {
            let msg = tokio::time::timeout(RECEIVER_TIMEOUT, wire::recv::<_, Replication>(&mut conn)).await??;
            let primary_flushed = match msg {
                Replication::Records { records, primary_flushed } => {
                    self.exchange(&mut conn, Input::Records { gen, records }).await?;
                    primary_flushed
                }
                Replication::Keepalive { primary_flushed } => primary_flushed,
                _ => return Err(io::Error::new(io::ErrorKind::InvalidData, "unexpected replication message")),
            };
            self.exchange(&mut conn, Input::Progress { gen, primary_flushed }).await?;
        }
    }

    /// Feeds `input` to the core, performs what it says, and sends its answers on `conn`.
    async fn exchange(self: &Arc<Self>, conn: &mut Conn, input: Input) -> io::Result<()> {
        let sends = self.finish(self.step(input)).await.result().map_err(Ended::into_io)?;
        for msg in &sends {
            wire::send(conn, msg).await?;
        }
        Ok(())
    }
}
