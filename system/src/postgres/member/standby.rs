//! The standby's half of the core: the walreceiver's decisions. Compare timelines with the
//! primary and rewind what never reached it (`pg_rewind`), append streamed records that
//! continue the log, report positions, and declare a damaged WAL repaired once it holds
//! everything the primary had when streaming began.

use serde_json::json;

use super::{closed, refused, trace, Action, Member, Role};
use crate::postgres::protocol::Replication;
use crate::postgres::timeline;
use crate::postgres::wal::{History, WalRecord};

impl Member {
    /// The primary's handshake: check its timeline, rewind, and ask to stream from there.
    pub(super) fn welcome(&mut self, gen: u64, epoch: u64, history: History, last_index: u64, out: &mut Vec<Action>) {
        if gen != self.generation {
            out.push(closed("generation ended"));
            return;
        }
        let Role::Standby { following: Some((leader, following)) } = &self.role else {
            out.push(closed("not following anyone"));
            return;
        };
        if let Err(e) = timeline::check_primary(*following, epoch, &history) {
            out.push(refused(e.to_string()));
            return;
        }
        let leader = leader.clone();
        // The planted `skip_rewind` bug keeps the whole log, whatever timeline it is on.
        let keep = match self.config.planted.skip_rewind {
            true => self.wal.last_index(),
            false => timeline::rewind_point(&self.wal, &history, last_index),
        };
        self.rewind(keep, out);
        self.receiver.repair_target = Some(last_index);
        self.receiver.primary_flushed = last_index;
        self.receiver.timeline = Some((epoch, history));
        out.push(Action::Send(Replication::Start { from: keep + 1 }));
        out.push(trace("pg.streaming", json!({ "leader": leader, "epoch": epoch, "from": keep + 1 })));
    }

    /// Streamed records: appended if they continue our log on the primary's timeline (the
    /// whole batch is checked first, so a bad record changes nothing), then fsynced together
    /// with anything received earlier and not yet flushed.
    pub(super) fn records(&mut self, gen: u64, records: Vec<WalRecord>, out: &mut Vec<Action>) {
        if gen != self.generation {
            out.push(closed("generation ended"));
            return;
        }
        let Some((primary, history)) = &self.receiver.timeline else {
            out.push(refused("records before the handshake".into()));
            return;
        };
        if let Err(e) = timeline::check_follows(self.wal.position(), &records, *primary, history) {
            out.push(refused(e.to_string()));
            return;
        }
        if records.is_empty() {
            return;
        }
        let mut appends: Vec<Action> = Vec::new();
        for r in records {
            crate::postgres::wal::apply(&mut self.head, &r);
            let index = r.index;
            let (file, frame) = self.wal.push(r);
            match appends.last_mut() {
                Some(Action::Append { file: f, bytes, .. }) if *f == file => bytes.extend(frame),
                _ => appends.push(Action::Append { file, bytes: frame, from: index }),
            }
        }
        out.extend(appends);
        out.push(self.sync_upto(self.wal.last_index()));
    }

    /// The primary's flush position: lag and repair bookkeeping, then our feedback.
    pub(super) fn progress(&mut self, now_ms: u64, gen: u64, primary_flushed: u64, out: &mut Vec<Action>) {
        if gen != self.generation {
            out.push(closed("generation ended"));
            return;
        }
        self.receiver.primary_flushed = primary_flushed;
        if self.flushed >= primary_flushed {
            self.receiver.caught_up_ms = Some(now_ms);
        }
        if self.damaged && self.receiver.repair_target.is_some_and(|t| self.flushed >= t) {
            self.damaged = false;
            out.push(Action::ClearDamage);
            out.push(trace("pg.wal_repaired", json!({ "flushed": self.flushed })));
            out.push(Action::Sometimes("pg.wal_repaired_from_peer"));
        }
        out.push(Action::Send(Replication::Feedback { flushed: self.flushed, applied: self.flushed }));
    }
}
