//! The standby's side of the shell: the walreceiver. It connects to the leader the manager
//! follows, compares timelines, rewinds what never reached the new primary (`pg_rewind`), then
//! appends, fsyncs and applies streamed records and reports its positions back.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sim::net::Conn;

use super::node::Node;
use super::observe::Rewound;
use super::protocol::{Replication, REPLICATION_PORT};
use super::wal::{epoch_at, History, WalRecord};
use crate::wire;

const CONNECT: Duration = Duration::from_secs(1);
const HANDSHAKE: Duration = Duration::from_secs(2);
/// No record or keepalive for this long: the stream is presumed dead (`wal_receiver_timeout`,
/// 60 s in PostgreSQL, scaled down with the rest).
const RECEIVER_TIMEOUT: Duration = Duration::from_secs(3);
const RETRY: Duration = Duration::from_millis(500);

impl Node {
    /// Streams from `leader` (primary of `epoch`) until this generation ends.
    pub(super) async fn receive_wal(self: Arc<Self>, leader: String, epoch: u64, gen: u64) {
        loop {
            if self.lock().generation != gen {
                return;
            }
            if let Err(e) = self.stream_from(&leader, epoch, gen).await {
                if e.kind() == io::ErrorKind::InvalidData {
                    self.ctx.trace("pg.stream_refused", json!({ "leader": leader, "error": e.to_string() }));
                }
            }
            tokio::time::sleep(RETRY).await;
        }
    }

    async fn stream_from(&self, leader: &str, epoch: u64, gen: u64) -> io::Result<()> {
        let mut conn = tokio::time::timeout(CONNECT, self.ctx.net.connect(leader, REPLICATION_PORT)).await??;
        let position = {
            let inner = self.lock();
            inner.position_at(inner.flushed)
        };
        let hello = Replication::Hello { name: self.name().into(), zone: self.ctx.zone.clone(), position };
        wire::send(&mut conn, &hello).await?;
        let (primary_epoch, history, last_index) = match tokio::time::timeout(HANDSHAKE, wire::recv(&mut conn)).await? {
            Ok(Replication::Welcome { epoch, history, last_index }) => (epoch, history, last_index),
            Ok(_) => return Err(io::Error::new(io::ErrorKind::InvalidData, "not a primary")),
            Err(e) => return Err(e),
        };
        if primary_epoch < epoch || history.last().map(|h| h.0) != Some(primary_epoch) {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "stale or malformed timeline"));
        }
        let keep = self.lock().wal.matching_prefix(&history, last_index);
        self.rewind(keep, gen).await?;
        {
            let mut inner = self.lock();
            if inner.generation != gen {
                return Err(io::Error::other("generation ended"));
            }
            inner.repair_target = Some(last_index);
            inner.primary_flushed = last_index;
            inner.streamed = true;
        }
        wire::send(&mut conn, &Replication::Start { from: keep + 1 }).await?;
        self.ctx.trace("pg.streaming", json!({ "leader": leader, "epoch": primary_epoch, "from": keep + 1 }));
        self.receive(&mut conn, &history, primary_epoch, gen).await
    }

    /// Cuts the log after `keep` (durably) and rebuilds the state from what remains.
    async fn rewind(&self, keep: u64, gen: u64) -> io::Result<()> {
        let truncated = {
            let mut inner = self.lock();
            let last = inner.wal.last_index();
            if keep >= last || inner.generation != gen {
                return Ok(());
            }
            let cut = inner.wal.cut_at(keep);
            self.apply_cut(&cut)?;
            inner.wal.truncate(keep);
            inner.head = inner.wal.replay(keep);
            inner.visible = inner.head.clone();
            inner.flushed = inner.flushed.min(keep);
            self.ctx.observe(&Rewound { kept: keep, discarded: last - keep });
            self.ctx.sometimes("pg.rewind");
            cut.truncate.map(|(file, _)| file)
        };
        match truncated {
            Some(file) => self.ctx.disk.sync(&file).await,
            None => Ok(()),
        }
    }

    async fn receive(&self, conn: &mut Conn, history: &History, primary_epoch: u64, gen: u64) -> io::Result<()> {
        loop {
            let msg = tokio::time::timeout(RECEIVER_TIMEOUT, wire::recv::<_, Replication>(conn)).await??;
            let primary_flushed = match msg {
                Replication::Records { records, primary_flushed } => {
                    self.append_received(records, history, primary_epoch, gen).await?;
                    primary_flushed
                }
                Replication::Keepalive { primary_flushed } => primary_flushed,
                _ => return Err(io::Error::new(io::ErrorKind::InvalidData, "unexpected replication message")),
            };
            let (flushed, applied) = self.note_progress(primary_flushed, gen)?;
            wire::send(conn, &Replication::Feedback { flushed, applied }).await?;
        }
    }

    /// Appends records that must continue our log on the primary's timeline, then fsyncs.
    async fn append_received(&self, records: Vec<WalRecord>, history: &History, primary_epoch: u64, gen: u64) -> io::Result<()> {
        let (from, upto) = {
            let mut inner = self.lock();
            if inner.generation != gen {
                return Err(io::Error::other("generation ended"));
            }
            // Validate the whole batch before touching the log, so a bad record changes nothing.
            let mut expect = inner.wal.position();
            for r in &records {
                let fits = r.index == expect.index + 1
                    && r.epoch >= expect.epoch
                    && r.epoch <= primary_epoch
                    && r.epoch == epoch_at(history, r.index);
                if !fits {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, format!("record {} does not follow", r.index)));
                }
                expect = super::wal::Position { epoch: r.epoch, index: r.index };
            }
            let from = inner.wal.last_index() + 1;
            let mut frames: Vec<(String, Vec<u8>)> = Vec::new();
            for r in records {
                super::wal::apply(&mut inner.head, &r);
                let (file, frame) = inner.wal.push(r);
                match frames.last_mut() {
                    Some((f, bytes)) if *f == file => bytes.extend(frame),
                    _ => frames.push((file, frame)),
                }
            }
            for (file, bytes) in &frames {
                if let Err(e) = self.ctx.disk.append(file, bytes) {
                    inner.broken = true;
                    self.wake.notify_one();
                    return Err(e);
                }
            }
            (from, inner.wal.last_index())
        };
        if let Err(e) = self.sync_wal(from, upto).await {
            self.lock().broken = true;
            self.wake.notify_one();
            return Err(e);
        }
        let mut inner = self.lock();
        if inner.generation != gen {
            return Err(io::Error::other("generation ended"));
        }
        self.advance_flushed(&mut inner, upto);
        Ok(())
    }

    /// Updates lag and repair state; returns the positions to report.
    fn note_progress(&self, primary_flushed: u64, gen: u64) -> io::Result<(u64, u64)> {
        let mut inner = self.lock();
        if inner.generation != gen {
            return Err(io::Error::other("generation ended"));
        }
        let now = self.now_ms();
        inner.primary_flushed = primary_flushed;
        if inner.flushed >= inner.primary_flushed {
            inner.caught_up_ms = Some(now);
        }
        if inner.damaged && inner.repair_target.is_some_and(|t| inner.flushed >= t) {
            inner.damaged = false;
            // Best effort: if the marker survives a crash, the node repairs itself again.
            let _ = self.ctx.disk.remove(super::node::DAMAGE_FILE);
            self.ctx.trace("pg.wal_repaired", json!({ "flushed": inner.flushed }));
            self.ctx.sometimes("pg.wal_repaired_from_peer");
        }
        Ok((inner.flushed, inner.flushed))
    }
}
