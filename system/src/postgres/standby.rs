//! The standby's side of the shell: the walreceiver's connection. It keeps a stream from the
//! leader the manager follows ([`crate::rpc::Dialer::redial`] reconnects after the backoff) and
//! relays what arrives to the core ([`super::member`]), which compares timelines, rewinds,
//! appends and reports positions; the shell sends what the core answers.

use std::io;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::member::Input;
use super::node::{Ended, Node};
use super::protocol::Replication;
use crate::rpc::Frames;

const HANDSHAKE: Duration = Duration::from_secs(2);

impl Node {
    /// Streams from `leader` until this generation ends (its role tasks are then aborted).
    pub(super) async fn receive_wal(self: Arc<Self>, leader: String, gen: u64) {
        let dialer = self.wal_dialer.clone();
        dialer.redial(&leader, |frames| self.stream_session(frames, &leader, gen)).await;
    }

    /// One connection's stream; `Break` once the generation it belongs to has ended.
    async fn stream_session(self: &Arc<Self>, frames: Frames, leader: &str, gen: u64) -> ControlFlow<()> {
        if let Err(e) = self.stream_from(frames, gen).await {
            if e.kind() == io::ErrorKind::InvalidData {
                self.ctx.trace("pg.stream_refused", json!({ "leader": leader, "error": e.to_string() }));
            }
        }
        if self.lock().generation() == gen {
            ControlFlow::Continue(())
        } else {
            ControlFlow::Break(())
        }
    }

    /// No record or keepalive for this long: the stream is presumed dead
    /// (`wal_receiver_timeout`, scaled with the rest). Also bounds each send.
    fn receiver_timeout(&self) -> Duration {
        Duration::from_millis(self.config.timing.wal_receiver_timeout_ms)
    }

    async fn stream_from(self: &Arc<Self>, mut frames: Frames, gen: u64) -> io::Result<()> {
        let position = self.lock().position();
        let hello = Replication::Hello { name: self.name().into(), zone: self.ctx.zone.clone(), position };
        frames.send_within(self.receiver_timeout(), &hello).await?;
        let (epoch, history, last_index) = match frames.recv_within(HANDSHAKE).await? {
            Replication::Welcome { epoch, history, last_index } => (epoch, history, last_index),
            _ => return Err(io::Error::new(io::ErrorKind::InvalidData, "not a primary")),
        };
        self.exchange(&mut frames, Input::Welcome { gen, epoch, history, last_index }).await?;
        loop {
            let primary_flushed = match frames.recv_within(self.receiver_timeout()).await? {
                Replication::Records { records, primary_flushed } => {
                    self.exchange(&mut frames, Input::Records { gen, records }).await?;
                    primary_flushed
                }
                Replication::Keepalive { primary_flushed } => primary_flushed,
                _ => return Err(io::Error::new(io::ErrorKind::InvalidData, "unexpected replication message")),
            };
            self.exchange(&mut frames, Input::Progress { gen, primary_flushed }).await?;
        }
    }

    /// Feeds `input` to the core, performs what it says, and sends its answers on `frames`.
    async fn exchange(self: &Arc<Self>, frames: &mut Frames, input: Input) -> io::Result<()> {
        let sends = self.finish(self.step(input)).await.result().map_err(Ended::into_io)?;
        for msg in &sends {
            frames.send_within(self.receiver_timeout(), msg).await?;
        }
        Ok(())
    }
}
