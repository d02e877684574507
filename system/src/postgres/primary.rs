//! The primary's side of the shell: promotion, commits (fsync before acknowledging, then the
//! synchronous standby when the tables require it), the walsender and standby feedback, and
//! keeping the DCS `/sync` key in step with [`super::replication::SyncRep`].

use std::io;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sim::net::Conn;
use tokio::io::{ReadHalf, WriteHalf};
use tokio::sync::oneshot;

use super::data::{SyncCommit, Txn};
use super::dcs::{Command, Outcome};
use super::dcs_client::DcsClient;
use super::node::{Inner, Node, Role};
use super::observe::Promoted;
use super::protocol::{Replication, Response, REPLICATION_PORT};
use super::replication::{StandbyProgress, SyncState};
use super::wal::{Body, WalRecord};
use crate::wire;

const HANDSHAKE: Duration = Duration::from_secs(2);
const KEEPALIVE: Duration = Duration::from_millis(500);
const MAX_BATCH: usize = 128;

impl Node {
    /// Becomes the primary of `epoch`: flushes what was received, writes the timeline's first
    /// record, and opens for writes until `fence_ms`.
    pub(super) async fn promote(self: &Arc<Self>, epoch: u64, fence_ms: u64) -> io::Result<()> {
        let gen = self.stop(Role::Standby { following: None });
        let (from, to) = {
            let inner = self.lock();
            (inner.flushed + 1, inner.wal.last_index())
        };
        self.sync_wal(from, to).await?;
        let index = {
            let mut inner = self.lock();
            check_gen(&inner, gen)?;
            let last = inner.wal.last_index();
            self.advance_flushed(&mut inner, last);
            let record = WalRecord { index: last + 1, epoch, commit_wall_ms: self.ctx.clock.wall_ms(), body: Body::Promote };
            let (file, frame) = inner.wal.push(record);
            self.ctx.disk.append(&file, &frame)?;
            last + 1
        };
        self.sync_wal(index, index).await?;
        {
            let mut inner = self.lock();
            check_gen(&inner, gen)?;
            inner.role = Role::Primary { epoch };
            inner.fence_ms = fence_ms;
            self.advance_flushed(&mut inner, index);
        }
        self.ctx.set_role(&self.config.roles.primary, true);
        self.ctx.observe(&Promoted { epoch, index });
        self.ctx.sometimes(if epoch == 1 { "pg.bootstrapped" } else { "pg.promoted_standby" });
        if let Some(store) = self.config.archive.clone() {
            self.spawn_role_task(gen, self.clone().archive(epoch, gen, store));
        }
        Ok(())
    }

    /// Commits `txn` if this node is the primary of `epoch`.
    pub(super) async fn execute(&self, epoch: Option<u64>, txn: Txn) -> Response {
        if let Err(e) = txn.validate() {
            return Response::Rejected { reason: e.to_string() };
        }
        let level = self.config.durability.level(&txn.writes);
        let (gen, mine, index, from) = match self.append_commit(epoch, txn) {
            Ok(x) => x,
            Err(resp) => return resp,
        };
        if self.sync_wal(from, index).await.is_err() {
            self.lock().broken = true;
            self.wake.notify_one();
            return Response::Indeterminate { reason: "fsync failed".into() };
        }
        let rx = {
            let mut inner = self.lock();
            if inner.generation != gen {
                return Response::Indeterminate { reason: "demoted while flushing".into() };
            }
            self.advance_flushed(&mut inner, index);
            self.release_waiters(&mut inner);
            let id = inner.next_waiter;
            inner.next_waiter += 1;
            let (flushed, standbys) = (inner.flushed, &inner.standbys.clone());
            if level == SyncCommit::Local || inner.sync.wait(index, id, flushed, standbys) {
                return self.acknowledge(&inner, gen, mine, index);
            }
            let (tx, rx) = oneshot::channel();
            inner.waiters.insert(id, tx);
            rx
        };
        if rx.await.is_err() {
            return Response::Indeterminate { reason: "demoted while waiting for the synchronous standby".into() };
        }
        self.acknowledge(&self.lock(), gen, mine, index)
    }

    /// Checks and appends the commit record (not yet flushed). Errors are the final answer.
    /// Returns the generation, epoch, index, and the first index this commit's fsync must cover.
    fn append_commit(&self, epoch: Option<u64>, txn: Txn) -> Result<(u64, u64, u64, u64), Response> {
        let mut inner = self.lock();
        let mine = match inner.role {
            Role::Primary { epoch: e } if !inner.broken && self.now_ms() < inner.fence_ms => e,
            _ => return Err(Response::NotPrimary { leader: following(&inner) }),
        };
        if epoch.is_some_and(|e| e != mine) {
            return Err(Response::NotPrimary { leader: None });
        }
        if let Err(e) = inner.head.check(&txn.checks) {
            return Err(Response::Rejected { reason: e.to_string() });
        }
        let index = inner.wal.last_index() + 1;
        let body = Body::Commit { txn: txn.id, writes: txn.writes.clone() };
        let (file, frame) = inner.wal.push(WalRecord { index, epoch: mine, commit_wall_ms: self.ctx.clock.wall_ms(), body });
        if let Err(e) = self.ctx.disk.append(&file, &frame) {
            // A failed append changes nothing on disk: the commit definitely did not happen.
            inner.wal.truncate(index - 1);
            inner.broken = true;
            self.wake.notify_one();
            return Err(Response::Rejected { reason: format!("WAL write failed: {e}") });
        }
        inner.head.apply(mine, index, &txn.writes);
        Ok((inner.generation, mine, index, inner.flushed + 1))
    }

    /// The last check before answering: still the primary of that epoch, within the fence.
    fn acknowledge(&self, inner: &Inner, gen: u64, epoch: u64, index: u64) -> Response {
        if inner.generation == gen && self.now_ms() < inner.fence_ms {
            Response::Committed { epoch, index }
        } else {
            Response::Indeterminate { reason: "lost the leader lease before acknowledging".into() }
        }
    }

    /// Wakes every commit the synchronous state now allows.
    pub(super) fn release_waiters(&self, inner: &mut Inner) {
        let standbys = inner.standbys.clone();
        for id in inner.sync.release(inner.flushed, &standbys) {
            if let Some(tx) = inner.waiters.remove(&id) {
                let _ = tx.send(());
            }
        }
    }

    /// Patroni's synchronous-standby upkeep: pick, switch, write `/sync`, then resume acks.
    pub(super) async fn maintain_sync(&self, dcs: &mut DcsClient) {
        let (change, epoch) = {
            let mut inner = self.lock();
            let Some(epoch) = inner.primary_epoch() else { return };
            let (now, flushed, standbys) = (self.now_ms(), inner.flushed, inner.standbys.clone());
            let zone = self.ctx.zone.clone();
            (inner.sync.maintain(now, &zone, flushed, &standbys), epoch)
        };
        let Some(change) = change else { return };
        let cmd = Command::SetSync { who: self.name().into(), epoch, standby: change.standby.clone() };
        if let Ok((Outcome::Done, _)) = dcs.write(cmd, self.dcs_budget()).await {
            let mut inner = self.lock();
            if inner.primary_epoch() == Some(epoch) {
                inner.sync.committed(&change);
                self.release_waiters(&mut inner);
                self.ctx.trace("pg.sync_standby", json!({ "epoch": epoch, "standby": change.standby }));
                self.ctx.sometimes(if change.standby.is_some() { "pg.sync_standby_named" } else { "pg.sync_standby_none" });
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
    /// the current generation.
    async fn walsender(self: Arc<Self>, mut conn: Conn) {
        let Ok(Ok(Replication::Hello { name, zone, position })) = tokio::time::timeout(HANDSHAKE, wire::recv(&mut conn)).await
        else {
            return;
        };
        if name == self.name() || !self.config.members.contains(&name) {
            return;
        }
        let welcome = {
            let inner = self.lock();
            match inner.role {
                Role::Primary { epoch } if !inner.broken && position.epoch <= epoch => {
                    Some((inner.generation, Replication::Welcome { epoch, history: inner.wal.history(), last_index: inner.wal.last_index() }))
                }
                _ => None,
            }
        };
        let Some((gen, welcome)) = welcome else {
            let _ = wire::send(&mut conn, &Replication::NotPrimary).await;
            return;
        };
        if wire::send(&mut conn, &welcome).await.is_err() {
            return;
        }
        let Ok(Ok(Replication::Start { from })) = tokio::time::timeout(HANDSHAKE, wire::recv(&mut conn)).await else { return };
        {
            let mut inner = self.lock();
            if inner.generation != gen || from == 0 || from > inner.flushed + 1 {
                return;
            }
            let now = self.now_ms();
            let progress = StandbyProgress { zone, flushed: from - 1, applied: from - 1, last_feedback_ms: now };
            inner.standbys.insert(name.clone(), progress);
        }
        self.ctx.trace("pg.standby_streaming", json!({ "standby": name, "from": from }));
        let (rd, wr) = tokio::io::split(conn);
        self.spawn_role_task(gen, self.clone().read_feedback(rd, name, gen));
        self.spawn_role_task(gen, self.clone().send_wal(wr, from, gen));
    }

    async fn read_feedback(self: Arc<Self>, mut rd: ReadHalf<Conn>, name: String, gen: u64) {
        let timeout = Duration::from_millis(self.config.timing.wal_sender_timeout_ms);
        while let Ok(Ok(Replication::Feedback { flushed, applied })) = tokio::time::timeout(timeout, wire::recv(&mut rd)).await {
            let mut inner = self.lock();
            if inner.generation != gen || flushed > inner.wal.last_index() || applied > flushed {
                return;
            }
            let now = self.now_ms();
            if let Some(p) = inner.standbys.get_mut(&name) {
                p.flushed = flushed;
                p.applied = applied;
                p.last_feedback_ms = now;
            }
            self.release_waiters(&mut inner);
            if let SyncState::Switching { to: Some(t), barrier } = inner.sync.state() {
                if *t == name && flushed >= *barrier {
                    self.wake.notify_one();
                }
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
            let (records, primary_flushed) = {
                let inner = self.lock();
                if inner.generation != gen {
                    return;
                }
                (inner.wal.range(next, inner.flushed, MAX_BATCH), inner.flushed)
            };
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

fn check_gen(inner: &Inner, gen: u64) -> io::Result<()> {
    if inner.generation == gen {
        Ok(())
    } else {
        Err(io::Error::other("role changed while promoting"))
    }
}

fn following(inner: &Inner) -> Option<String> {
    match &inner.role {
        Role::Standby { following } => following.as_ref().map(|f| f.0.clone()),
        Role::Primary { .. } => None,
    }
}
