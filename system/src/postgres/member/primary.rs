//! The primary's half of the core: promotion, commits (fsynced before they are answered, then
//! waiting for the synchronous standby when their tables require it), the walsender's
//! decisions, and keeping the DCS `/sync` key in step with [`SyncRep`].

use serde_json::json;

use super::{closed, trace, Action, Member, Observed, Pending, Role};
use crate::postgres::data::{SyncCommit, Txn};
use crate::postgres::observe::SyncDegraded;
use crate::postgres::observe::{FirstWrite, SyncStandby};
use crate::postgres::protocol::{Replication, Response};
use crate::postgres::replication::{StandbyProgress, SyncChange, SyncRep, SyncState};
use crate::postgres::timeline;
use crate::postgres::wal::{Body, Position, WalRecord};

/// Most records in one replication message.
const MAX_BATCH: usize = 128;

impl Member {
    /// Before promoting: make durable whatever was received but not yet flushed.
    pub(super) fn flush_received(&mut self, gen: u64, out: &mut Vec<Action>) {
        if gen != self.generation {
            out.push(closed("role changed while promoting"));
            return;
        }
        let last = self.wal.last_index();
        if last > self.flushed {
            out.push(self.sync_upto(last));
        }
    }

    /// Writes the first record of `epoch`'s timeline after everything flushed; the member is
    /// primary once that record is durable ([`Member::synced`]).
    pub(super) fn promote(&mut self, gen: u64, epoch: u64, wall_ms: u64, out: &mut Vec<Action>) {
        if gen != self.generation || self.flushed < self.wal.last_index() || self.broken {
            out.push(closed("role changed while promoting"));
            return;
        }
        let index = self.wal.last_index() + 1;
        let (file, bytes) = self.wal.push(WalRecord { index, epoch, commit_wall_ms: wall_ms, body: Body::Promote });
        self.role = Role::Promoting { epoch, index };
        out.push(Action::Append { file, bytes, from: index });
        out.push(self.sync_upto(index));
    }

    /// Checks and appends a client's transaction; it is answered once flushed (and, for
    /// synchronous commit, once the synchronous standby has it).
    pub(super) fn commit(
        &mut self,
        now_ms: u64,
        id: u64,
        epoch: Option<u64>,
        txn: Txn,
        wall_ms: u64,
        out: &mut Vec<Action>,
    ) {
        let refuse = |out: &mut Vec<Action>, response| out.push(Action::Settle { id, response });
        if let Err(e) = txn.validate() {
            return refuse(out, Response::Rejected { reason: e.to_string() });
        }
        self.watchdog_fired(now_ms, out);
        let mine = match self.role {
            Role::Primary { epoch } if !self.broken => epoch,
            _ => return refuse(out, Response::NotPrimary { leader: self.leader() }),
        };
        if epoch.is_some_and(|e| e != mine) {
            return refuse(out, Response::NotPrimary { leader: None });
        }
        if let Err(e) = self.head.check(&txn.checks) {
            return refuse(out, Response::Rejected { reason: e.to_string() });
        }
        let level = self.config.durability.level(&txn.writes);
        let index = self.wal.last_index() + 1;
        let body = Body::Commit { txn: txn.id, writes: txn.writes.clone() };
        let (file, bytes) = self.wal.push(WalRecord { index, epoch: mine, commit_wall_ms: wall_ms, body });
        self.head.apply(mine, index, &txn.writes);
        out.push(Action::Append { file, bytes, from: index });
        if self.config.planted.send_unflushed {
            // The planted bug: the walsenders are woken by the write, not by its fsync.
            out.push(Action::FlushMoved);
        }
        if self.wal.get(index - 1).is_some_and(|r| r.epoch == mine && r.body == Body::Promote) {
            out.push(Action::Observe(Observed::FirstWrite(FirstWrite { epoch: mine, index })));
        }
        if self.config.planted.ack_before_fsync && level == SyncCommit::Local {
            // The planted bug: answered on the append, and no fsync asked for (as a server
            // trusting a volatile write cache): the record becomes durable only when a later
            // commit's fsync covers it, so a power loss before then takes it.
            out.push(Action::Settle { id, response: Response::Committed { epoch: mine, index } });
            return;
        }
        self.pending.insert(id, Pending { index, epoch: mine, level, waiting: false });
        out.push(self.sync_upto(index));
    }

    /// After the flush position moved: answers what the synchronous state now allows, and
    /// moves newly flushed synchronous commits to wait for the standby.
    pub(super) fn answer_flushed(&mut self, now_ms: u64, out: &mut Vec<Action>) {
        if self.watchdog_fired(now_ms, out) {
            return;
        }
        self.release(now_ms, out);
        let flushed = self.flushed;
        let ready: Vec<u64> =
            self.pending.iter().filter(|(_, p)| !p.waiting && p.index <= flushed).map(|(id, _)| *id).collect();
        for id in ready {
            let Some(p) = self.pending.get_mut(&id) else { continue };
            if p.level == SyncCommit::Local || self.sync.wait(p.index, id, flushed, &self.standbys) {
                let p = self.pending.remove(&id).expect("just found");
                out.push(Action::Settle { id, response: self.acknowledge(&p) });
            } else {
                p.waiting = true;
            }
        }
    }

    /// Answers every waiting commit the synchronous state now allows.
    fn release(&mut self, now_ms: u64, out: &mut Vec<Action>) {
        if self.watchdog_fired(now_ms, out) {
            return;
        }
        for id in self.sync.release(self.flushed, &self.standbys) {
            if let Some(p) = self.pending.remove(&id) {
                out.push(Action::Settle { id, response: self.acknowledge(&p) });
            }
        }
    }

    /// The answer to a commit durable at its level. No lease is checked here: PostgreSQL
    /// knows nothing of Patroni's; a role change would have settled the commit already, and a
    /// watchdog reset is checked before any release.
    fn acknowledge(&self, p: &Pending) -> Response {
        Response::Committed { epoch: p.epoch, index: p.index }
    }

    /// The leader a standby follows, for clients that asked the wrong member.
    fn leader(&self) -> Option<String> {
        match &self.role {
            Role::Standby { following } => following.as_ref().map(|f| f.0.clone()),
            _ => None,
        }
    }

    /// Patroni's synchronous-standby upkeep: pick or switch, then ask for the DCS write.
    pub(super) fn maintain_sync(&mut self, now_ms: u64, out: &mut Vec<Action>) {
        let Some(epoch) = self.primary_epoch() else { return };
        if let Some(change) = self.sync.maintain(now_ms, &self.config.zone, self.flushed, &self.standbys) {
            out.push(Action::WriteSync { epoch, standby: change.standby });
        }
    }

    /// The DCS names the new synchronous standby: acknowledgements resume under it.
    pub(super) fn sync_written(&mut self, now_ms: u64, epoch: u64, standby: Option<String>, out: &mut Vec<Action>) {
        if self.primary_epoch() != Some(epoch) {
            return;
        }
        if let Some(from) = self.sync.committed(&SyncChange { standby: standby.clone() }) {
            out.push(Action::Observe(Observed::SyncDegraded(SyncDegraded { epoch, from })));
            out.push(Action::Sometimes("pg.sync_degraded"));
        }
        self.release(now_ms, out);
        out.push(Action::Sometimes(if standby.is_some() { "pg.sync_standby_named" } else { "pg.sync_standby_none" }));
        out.push(Action::Observe(Observed::SyncStandby(SyncStandby { epoch, standby: standby.clone() })));
        out.push(trace("pg.sync_standby", json!({ "epoch": epoch, "standby": standby })));
    }

    /// A standby's handshake: our timeline if we are a primary it may follow.
    pub(super) fn hello(&mut self, name: &str, position: Position, out: &mut Vec<Action>) {
        if name == self.config.me || !self.config.members.iter().any(|m| m == name) {
            out.push(closed("not a member"));
            return;
        }
        match self.role {
            Role::Primary { epoch } if !self.broken && timeline::may_serve(epoch, position) => {
                let (history, last_index) = (self.wal.history(), self.wal.last_index());
                out.push(Action::Send(Replication::Welcome { epoch, history, last_index }));
            }
            _ => {
                out.push(Action::Send(Replication::NotPrimary));
                out.push(closed("not the primary of that timeline"));
            }
        }
    }

    /// The standby starts streaming from `from`, which must be on our flushed log.
    pub(super) fn start_streaming(
        &mut self,
        now_ms: u64,
        gen: u64,
        name: String,
        zone: String,
        from: u64,
        out: &mut Vec<Action>,
    ) {
        if gen != self.generation || from == 0 || from > self.flushed + 1 {
            out.push(closed("cannot stream from there"));
            return;
        }
        out.push(trace("pg.standby_streaming", json!({ "standby": name, "from": from })));
        let progress = StandbyProgress { zone, flushed: from - 1, applied: from - 1, last_feedback_ms: now_ms };
        self.standbys.insert(name, progress);
    }

    /// A standby's positions: commits waiting for it may be answered.
    pub(super) fn feedback(
        &mut self,
        now_ms: u64,
        gen: u64,
        name: &str,
        flushed: u64,
        applied: u64,
        out: &mut Vec<Action>,
    ) {
        if gen != self.generation || flushed > self.wal.last_index() || applied > flushed {
            out.push(closed("feedback from another generation, or impossible"));
            return;
        }
        if let Some(p) = self.standbys.get_mut(name) {
            p.flushed = flushed;
            p.applied = applied;
            p.last_feedback_ms = now_ms;
        }
        self.release(now_ms, out);
        if let SyncState::Switching { to: Some(t), barrier } = self.sync.state() {
            if t == name && flushed >= *barrier {
                out.push(Action::WakeHa);
            }
        }
    }

    /// The walsender's next batch from `next` on (and our flush position), or None once
    /// generation `gen` has ended.
    pub fn to_send(&self, gen: u64, next: u64) -> Option<(Vec<WalRecord>, u64)> {
        // The planted `send_unflushed` bug streams what is written, not only what is flushed.
        let upto = if self.config.planted.send_unflushed { self.wal.last_index() } else { self.flushed };
        (gen == self.generation).then(|| (self.wal.range(next, upto, MAX_BATCH), self.flushed))
    }

    /// The synchronous replication state (for tests and traces).
    pub fn sync_rep(&self) -> &SyncRep {
        &self.sync
    }
}
