//! The primary's side of the shell: promotion, the synchronous standby's upkeep, and the walsender's
//! connection (handshake, then feedback and WAL in two tasks of the current generation). What
//! to answer, what to stream and when to stop is the core's ([`super::member`]).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use super::member::{Action, Input, Member};
use super::node::{Ended, Node};
use super::protocol::{ControlReply, Replication, REPLICATION_PORT};
use super::replication::SyncState;
use crate::rpc::{self, Encoding, FrameReader, FrameWriter, Frames, Listen};

const HANDSHAKE: Duration = Duration::from_secs(2);
const KEEPALIVE: Duration = Duration::from_millis(500);

impl Node {
    /// Becomes the primary of `epoch`: flushes what was received, writes the timeline's first
    /// record, and opens for writes.
    pub(super) async fn promote(self: &Arc<Self>, epoch: u64) -> io::Result<()> {
        let gen = self.stop(None, "promote");
        self.finish(self.step(Input::FlushReceived { gen })).await.result().map_err(Ended::into_io)?;
        let wall_ms = self.ctx.clock.wall_ms();
        self.finish(self.step(Input::Promote { gen, epoch, wall_ms })).await.result().map_err(Ended::into_io)?;
        let member = self.lock();
        if member.generation() != gen || member.primary_epoch() != Some(epoch) {
            return Err(io::Error::other("role changed while promoting"));
        }
        Ok(())
    }

    /// Patroni's synchronous-standby upkeep, the server's half: the core picks; the agent
    /// writes the DCS and reports back ([`Control::SyncWritten`]).
    pub(super) fn maintain_sync(self: &Arc<Self>) -> ControlReply {
        let (actions, switching) =
            self.step_then(Input::MaintainSync, |m| matches!(m.sync_rep().state(), SyncState::Switching { .. }));
        let write = actions.into_iter().find_map(|a| match a {
            Action::WriteSync { epoch, standby } => Some((epoch, standby)),
            _ => None,
        });
        ControlReply::Sync { write, switching }
    }

    /// Accepts standbys' replication connections, each served by a walsender.
    pub(super) async fn serve_replication(self: Arc<Self>) {
        let net = self.ctx.net.clone();
        let listen = Listen::new(REPLICATION_PORT, Encoding::Json);
        rpc::accept_each(net, listen, move |frames, _peer| self.clone().walsender(frames)).await;
    }

    fn sender_timeout(&self) -> Duration {
        Duration::from_millis(self.config.timing.wal_sender_timeout_ms)
    }

    /// One standby's replication connection: handshake, then feedback and WAL in two tasks of
    /// the generation that welcomed it.
    async fn walsender(self: Arc<Self>, mut frames: Frames) {
        let Ok(Replication::Hello { name, zone, position }) = frames.recv_within(HANDSHAKE).await else { return };
        let (actions, gen) = self.step_then(Input::Hello { name: name.clone(), position }, Member::generation);
        if !self.send_all(&mut frames, actions).await {
            return;
        }
        let Ok(Replication::Start { from }) = frames.recv_within(HANDSHAKE).await else { return };
        let started = self.step(Input::StartStreaming { gen, name: name.clone(), zone, from });
        if self.finish(started).await.result().is_err() {
            return;
        }
        let (rx, tx) = frames.split();
        self.spawn_role_task(gen, self.clone().read_feedback(rx, name, gen));
        self.spawn_role_task(gen, self.clone().send_wal(tx, from, gen));
    }

    /// Performs `actions` and sends what they say on `frames`; false once the connection ends.
    async fn send_all(self: &Arc<Self>, frames: &mut Frames, actions: Vec<Action>) -> bool {
        let finished = self.finish(actions).await;
        for msg in &finished.sends {
            if frames.send_within(self.sender_timeout(), msg).await.is_err() {
                return false;
            }
        }
        finished.ended.is_none()
    }

    async fn read_feedback(self: Arc<Self>, mut rx: FrameReader, name: String, gen: u64) {
        let timeout = self.sender_timeout();
        while let Ok(Replication::Feedback { flushed, applied }) = rx.recv_within(timeout).await {
            let fed = self.step(Input::Feedback { gen, name: name.clone(), flushed, applied });
            if self.finish(fed).await.result().is_err() {
                return;
            }
        }
    }

    /// Streams flushed records from `from` on; keepalives carry the flush position when idle.
    async fn send_wal(self: Arc<Self>, mut tx: FrameWriter, from: u64, gen: u64) {
        let mut next = from;
        let timeout = self.sender_timeout();
        loop {
            // Registered before reading the position, so a flush in between is not missed.
            let moved = self.flushed_moved.notified();
            let Some((records, primary_flushed)) = self.lock().to_send(gen, next) else { return };
            let msg = if records.is_empty() {
                tokio::select! {
                    biased;
                    _ = moved => continue,
                    _ = sim::timer::sleep(KEEPALIVE) => Replication::Keepalive { primary_flushed },
                }
            } else {
                next += records.len() as u64;
                Replication::Records { records, primary_flushed }
            };
            if tx.send_within(timeout, &msg).await.is_err() {
                return;
            }
        }
    }
}
