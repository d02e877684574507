//! The primary's side of the shell: promotion, the DCS `/sync` write, and the walsender's
//! connection (handshake, then feedback and WAL in two tasks of the current generation). What
//! to answer, what to stream and when to stop is the core's ([`super::member`]).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use sim::net::Conn;
use tokio::io::{ReadHalf, WriteHalf};

use super::dcs::{Command, Outcome};
use super::dcs_client::DcsClient;
use super::member::{Action, Input, Member};
use super::node::{Ended, Node};
use super::protocol::{Replication, REPLICATION_PORT};
use crate::wire;

const HANDSHAKE: Duration = Duration::from_secs(2);
const KEEPALIVE: Duration = Duration::from_millis(500);

impl Node {
    /// Becomes the primary of `epoch`: flushes what was received, writes the timeline's first
    /// record, and opens for writes until `fence_ms`.
    pub(super) async fn promote(self: &Arc<Self>, epoch: u64, fence_ms: u64) -> io::Result<()> {
        let gen = self.stop(None, "promote");
        self.finish(self.step(Input::FlushReceived { gen })).await.result().map_err(Ended::into_io)?;
        let wall_ms = self.ctx.clock.wall_ms();
        self.finish(self.step(Input::Promote { gen, epoch, fence_ms, wall_ms })).await.result().map_err(Ended::into_io)?;
        let member = self.lock();
        if member.generation() != gen || member.primary_epoch() != Some(epoch) {
            return Err(io::Error::other("role changed while promoting"));
        }
        Ok(())
    }

    /// Patroni's synchronous-standby upkeep: the core picks, the DCS records, the core resumes.
    pub(super) async fn maintain_sync(self: &Arc<Self>, dcs: &mut DcsClient) {
        for action in self.step(Input::MaintainSync) {
            let Action::WriteSync { epoch, standby } = action else { continue };
            let cmd = Command::SetSync { who: self.name().into(), epoch, standby: standby.clone() };
            if let Ok((Outcome::Done, _)) = dcs.write(cmd, self.dcs_budget()).await {
                self.step(Input::SyncWritten { epoch, standby });
            }
        }
    }

    pub(super) async fn serve_replication(self: Arc<Self>) {
        let Ok(listener) = self.ctx.net.bind(REPLICATION_PORT).await else { return };
        while let Ok((conn, _)) = listener.accept().await {
            tokio::spawn(self.clone().walsender(conn));
        }
    }

    /// One standby's replication connection: handshake, then feedback and WAL in two tasks of
    /// the generation that welcomed it.
    async fn walsender(self: Arc<Self>, mut conn: Conn) {
        let Ok(Ok(Replication::Hello { name, zone, position })) = tokio::time::timeout(HANDSHAKE, wire::recv(&mut conn)).await
        else {
            return;
        };
        let (actions, gen) = self.step_then(Input::Hello { name: name.clone(), position }, Member::generation);
        if !self.send_all(&mut conn, actions).await {
            return;
        }
        let Ok(Ok(Replication::Start { from })) = tokio::time::timeout(HANDSHAKE, wire::recv(&mut conn)).await else { return };
        let started = self.step(Input::StartStreaming { gen, name: name.clone(), zone, from });
        if self.finish(started).await.result().is_err() {
            return;
        }
        let (rd, wr) = tokio::io::split(conn);
        self.spawn_role_task(gen, self.clone().read_feedback(rd, name, gen));
        self.spawn_role_task(gen, self.clone().send_wal(wr, from, gen));
    }

    /// Performs `actions` and sends what they say on `conn`; false once the connection ends.
    async fn send_all(self: &Arc<Self>, conn: &mut Conn, actions: Vec<Action>) -> bool {
        let finished = self.finish(actions).await;
        for msg in &finished.sends {
            if wire::send(conn, msg).await.is_err() {
                return false;
            }
        }
        finished.ended.is_none()
    }

    async fn read_feedback(self: Arc<Self>, mut rd: ReadHalf<Conn>, name: String, gen: u64) {
        let timeout = Duration::from_millis(self.config.timing.wal_sender_timeout_ms);
        while let Ok(Ok(Replication::Feedback { flushed, applied })) = tokio::time::timeout(timeout, wire::recv(&mut rd)).await {
            let fed = self.step(Input::Feedback { gen, name: name.clone(), flushed, applied });
            if self.finish(fed).await.result().is_err() {
                return;
            }
        }
    }

    /// Streams flushed records from `from` on; keepalives carry the flush position when idle.
    async fn send_wal(self: Arc<Self>, mut wr: WriteHalf<Conn>, from: u64, gen: u64) {
        let mut next = from;
        let timeout = Duration::from_millis(self.config.timing.wal_sender_timeout_ms);
        loop {
            // Registered before reading the position, so a flush in between is not missed.
            let moved = self.flushed_moved.notified();
            let Some((records, primary_flushed)) = self.lock().to_send(gen, next) else { return };
            let msg = if records.is_empty() {
                tokio::select! {
                    biased;
                    _ = moved => continue,
                    _ = tokio::time::sleep(KEEPALIVE) => Replication::Keepalive { primary_flushed },
                }
            } else {
                next += records.len() as u64;
                Replication::Records { records, primary_flushed }
            };
            if !matches!(tokio::time::timeout(timeout, wire::send(&mut wr, &msg)).await, Ok(Ok(()))) {
                return;
            }
        }
    }
}
