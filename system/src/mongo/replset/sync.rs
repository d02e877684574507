//! Oplog replication: the fetcher (secondaries pulling from the primary), the source side
//! (serving and parking fetches), the majority commit point, and rollback.

use super::{Action, Fetching, Now, Parked, ReplSet};
use crate::mongo::oplog::{OpTime, OplogEntry};
use crate::mongo::protocol::PeerMsg;

impl ReplSet {
    /// Sends a fetch to the primary when none is in flight (or the one in flight is lost).
    pub(super) fn maybe_fetch(&mut self, now: Now) {
        // A fetch reports everything before `after` as durable: none goes out while a batch or a
        // rollback is being made durable, or while a deposed primary's journal has unflushed
        // entries.
        if self.syncing || self.durable != self.oplog.last() {
            return;
        }
        let Some(source) = self.known_primary.filter(|p| *p != self.me) else { return };
        if let Some(f) = self.fetch {
            let lost_after = self.settings.fetch_await_ms + self.settings.heartbeat_interval_ms;
            if f.source == source && now.ms < f.sent_ms + lost_after {
                return;
            }
        }
        let id = self.next_fetch_id;
        self.next_fetch_id += 1;
        self.fetch = Some(Fetching { id, source, sent_ms: now.ms });
        let msg = PeerMsg::Fetch { id, term: self.hs.term, after: self.oplog.last(), repairing: self.damaged };
        self.send(source, msg);
    }

    /// Answers a fetch at once when there is something to say, else parks it.
    pub(super) fn serve_fetch(&mut self, now: Now, from: usize, id: u64, after: OpTime, repairing: bool) {
        if self.primary && !repairing {
            self.update_position(from, after);
        }
        self.parked.retain(|p| p.from != from);
        if !self.oplog.contains(after) {
            let msg = PeerMsg::Diverged {
                id,
                term: self.hs.term,
                boundaries: self.oplog.boundaries(),
                last: self.oplog.last(),
            };
            self.send(from, msg);
        } else if self.oplog.last().ts > after.ts {
            self.send_batch(from, id, after);
        } else {
            self.parked.push(Parked { from, id, after, until_ms: now.ms + self.settings.fetch_await_ms });
        }
    }

    fn send_batch(&mut self, to: usize, id: u64, after: OpTime) {
        let entries = self.oplog.after(after.ts, self.settings.fetch_batch_max).to_vec();
        self.send(to, PeerMsg::Batch { id, term: self.hs.term, entries, commit: self.commit });
    }

    /// New entries arrived: answer every parked fetch they extend.
    pub(super) fn release_parked(&mut self, _now: Now) {
        let last = self.oplog.last().ts;
        let (ready, waiting): (Vec<Parked>, Vec<Parked>) = self.parked.drain(..).partition(|p| last > p.after.ts);
        self.parked = waiting;
        for p in ready {
            if self.oplog.contains(p.after) {
                self.send_batch(p.from, p.id, p.after);
            }
        }
    }

    pub(super) fn expire_parked(&mut self, now: Now) {
        let (done, waiting): (Vec<Parked>, Vec<Parked>) = self.parked.drain(..).partition(|p| now.ms >= p.until_ms);
        self.parked = waiting;
        for p in done {
            self.send_batch(p.from, p.id, p.after);
        }
    }

    /// Takes the fetch answer `id` from `from`, if it is the one in flight.
    fn take_fetch(&mut self, from: usize, id: u64) -> bool {
        match self.fetch {
            Some(f) if f.id == id && f.source == from => {
                self.fetch = None;
                true
            }
            _ => false,
        }
    }

    pub(super) fn on_batch(
        &mut self,
        now: Now,
        from: usize,
        id: u64,
        term: u64,
        entries: Vec<OplogEntry>,
        commit: OpTime,
    ) {
        if !self.take_fetch(from, id) || term < self.hs.term || self.primary {
            return;
        }
        let mut probe = self.oplog.last();
        for e in &entries {
            let follows = e.optime.ts == probe.ts + 1 && e.optime.term >= probe.term && e.optime.term <= term;
            if !follows {
                self.out.push(Action::Ignored { from, why: "fetched batch does not continue the oplog" });
                return;
            }
            probe = e.optime;
        }
        if !entries.is_empty() {
            for e in &entries {
                self.oplog.push(e.clone());
            }
            // Durable only when the shell says the fsync returned: until then no fetch (which
            // reports the position) goes out.
            self.syncing = true;
            self.out.push(Action::Append { entries, sync: true });
            self.release_parked(now);
        }
        // The batch proves this oplog matches the source's up to its end, so the source's
        // commit point holds here up to that end.
        let upto = commit.ts.min(self.oplog.last().ts);
        if let Some(t) = self.oplog.term_at(upto) {
            self.raise_commit(OpTime::new(t, upto));
        }
        self.maybe_fetch(now);
    }

    pub(super) fn on_diverged(
        &mut self,
        _now: Now,
        from: usize,
        id: u64,
        term: u64,
        boundaries: &[OpTime],
        last: OpTime,
    ) {
        if !self.take_fetch(from, id) || term < self.hs.term || self.primary {
            return;
        }
        // Only a source whose history is newer than ours can make us roll back (MongoDB picks a
        // sync source ahead of itself): a member that lost its tail, or a damaged one, must not
        // talk a healthy member out of entries that may be committed.
        if last <= self.oplog.last() {
            self.out.push(Action::Ignored { from, why: "diverged reply from a source not ahead of us" });
            return;
        }
        let sorted = boundaries.windows(2).all(|w| w[0].term < w[1].term && w[0].ts < w[1].ts);
        if !sorted || boundaries.last().is_some_and(|b| *b > last) {
            self.out.push(Action::Ignored { from, why: "diverged reply with unordered boundaries" });
            return;
        }
        let common = self.oplog.common_point(boundaries, last);
        if common >= self.oplog.last() {
            self.out.push(Action::Ignored { from, why: "diverged reply but no entry to roll back" });
            return;
        }
        let removed = self.oplog.truncate_after(common.ts);
        let past_commit = self.commit > common;
        if past_commit {
            self.commit = common;
        }
        // What is kept becomes durable when the shell has rewritten the file.
        self.durable = self.durable.min(self.oplog.last());
        self.syncing = true;
        self.parked.retain(|p| p.after.ts <= common.ts);
        self.out.push(Action::RollBack { common, removed, past_commit });
    }

    /// A commit point heard from the primary (heartbeat): adopted if this oplog holds it.
    pub(super) fn learn_commit(&mut self, commit: OpTime) {
        if self.oplog.contains(commit) {
            self.raise_commit(commit);
        }
    }

    fn raise_commit(&mut self, commit: OpTime) {
        if commit > self.commit {
            self.commit = commit;
            self.out.push(Action::Commit(commit));
        }
    }

    /// A member's durable optime, as the primary hears it (fetch or heartbeat reply).
    pub(super) fn update_position(&mut self, from: usize, position: OpTime) {
        if self.oplog.contains(position) && position > self.peers[from].position {
            self.peers[from].position = position;
            self.advance_commit();
        }
    }

    /// The shell made the oplog durable up to `optime`.
    pub(super) fn on_durable(&mut self, now: Now, optime: OpTime) {
        if !self.oplog.contains(optime) {
            return;
        }
        self.durable = self.durable.max(optime);
        if self.durable == self.oplog.last() {
            self.syncing = false;
        }
        if self.primary {
            self.advance_commit();
            return;
        }
        if self.damaged && self.repair_target.is_some_and(|t| self.durable >= t) {
            self.damaged = false;
            self.repair_target = None;
            self.out.push(Action::Repaired);
        }
        self.maybe_fetch(now);
    }

    /// The primary's commit point: the newest optime a majority holds durably, if it is of
    /// the current term (earlier terms' entries commit only beneath one of ours).
    fn advance_commit(&mut self) {
        if !self.primary {
            return;
        }
        let mut held: Vec<OpTime> = vec![self.durable];
        held.extend(self.others().map(|p| self.peers[p].position));
        held.sort_unstable_by(|a, b| b.cmp(a));
        let candidate = held[self.config.majority() - 1];
        if candidate.term == self.hs.term {
            self.raise_commit(candidate);
        }
    }
}
