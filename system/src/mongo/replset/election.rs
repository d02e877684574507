//! Heartbeats, elections (dry run, then the real one), priority takeover and stepping down.

use rand::Rng;

use super::{Action, Election, ElectionReason, LastVote, Now, ReplSet};
use crate::mongo::oplog::{Op, OpTime};
use crate::mongo::protocol::PeerMsg;

impl ReplSet {
    pub(super) fn send_due_heartbeats(&mut self, now: Now) {
        for p in self.others().collect::<Vec<_>>() {
            if now.ms < self.peers[p].next_heartbeat_ms {
                continue;
            }
            self.peers[p].next_heartbeat_ms = now.ms + self.settings.heartbeat_interval_ms;
            let msg = PeerMsg::Heartbeat {
                term: self.hs.term,
                primary: self.primary,
                applied: self.oplog.last(),
                applied_wall_ms: self.oplog.last_wall_ms(),
                commit: self.commit,
            };
            self.send(p, msg);
        }
    }

    /// A primary that cannot see a majority for an election timeout steps down, so clients
    /// stop writing to a member that can no longer commit anything.
    pub(super) fn check_majority_visible(&mut self, now: Now) {
        let window = self.settings.election_timeout_ms;
        let seen = self.others().filter(|p| self.peers[*p].last_heard_ms.is_some_and(|t| t + window >= now.ms)).count();
        if seen + 1 < self.config.majority() {
            self.step_down(now, "cannot see a majority of the set");
        }
    }

    pub(super) fn check_election_timers(&mut self, now: Now) {
        if let Some(e) = &self.election {
            if now.ms >= e.started_ms + self.settings.election_timeout_ms {
                self.lose_election(now);
            }
            return;
        }
        if self.my_priority() == 0 || self.damaged {
            return;
        }
        if now.ms >= self.election_at_ms {
            self.start_election(now, ElectionReason::ElectionTimeout);
            return;
        }
        if self.takeover_at_ms.is_some_and(|at| now.ms >= at) {
            self.takeover_at_ms = None;
            if self.takeover_warranted() {
                self.start_election(now, ElectionReason::PriorityTakeover);
            }
        }
    }

    /// Starts the dry-run round: no term bump and no vote kept until it wins.
    pub(super) fn start_election(&mut self, now: Now, reason: ElectionReason) {
        self.begin_round(now, true, self.hs.term, reason);
    }

    fn begin_round(&mut self, now: Now, dry_run: bool, term: u64, reason: ElectionReason) {
        let mut granted = std::collections::BTreeSet::new();
        granted.insert(self.me);
        self.election =
            Some(Election { dry_run, term, reason, granted, refused: Default::default(), started_ms: now.ms });
        self.out.push(Action::Standing { term, dry_run, reason });
        let last_applied = self.oplog.last();
        for p in self.others().collect::<Vec<_>>() {
            self.send(p, PeerMsg::RequestVote { term, dry_run, last_applied });
        }
        self.tally(now);
    }

    pub(super) fn on_request_vote(&mut self, now: Now, from: usize, term: u64, dry_run: bool, last_applied: OpTime) {
        let already_voted = self.hs.last_vote.is_some_and(|v| v.term == term && v.candidate != from);
        // A damaged member may lack entries it once held, so its view of who is fresh enough is
        // not to be trusted: it votes for no one until repaired.
        let granted =
            !self.damaged && term >= self.hs.term && last_applied >= self.oplog.last() && (dry_run || !already_voted);
        if granted && !dry_run {
            self.hs.last_vote = Some(LastVote { term, candidate: from });
            self.out.push(Action::PersistHardState(self.hs));
            self.reset_election_timer(now);
        }
        self.send(from, PeerMsg::Vote { term: self.hs.term, dry_run, granted });
    }

    pub(super) fn on_vote(&mut self, now: Now, from: usize, term: u64, dry_run: bool, granted: bool) {
        let Some(e) = self.election.as_mut() else { return };
        // A dry-run voter keeps its own (possibly lower) term; a real vote is for our term.
        if e.dry_run != dry_run || (granted && !dry_run && term != e.term) {
            return;
        }
        if granted {
            e.granted.insert(from);
        } else {
            e.refused.insert(from);
        }
        self.tally(now);
    }

    /// A vote request that could not be sent counts as a refusal (no vote will come).
    pub(super) fn on_undeliverable(&mut self, now: Now, to: usize, msg: &PeerMsg) {
        let PeerMsg::RequestVote { term, dry_run, .. } = msg else { return };
        let Some(e) = self.election.as_mut() else { return };
        if e.term == *term && e.dry_run == *dry_run && to < self.config.members.len() && !e.granted.contains(&to) {
            e.refused.insert(to);
            self.tally(now);
        }
    }

    fn tally(&mut self, now: Now) {
        let Some(e) = &self.election else { return };
        let majority = self.config.majority();
        if e.granted.len() >= majority {
            let (dry_run, reason) = (e.dry_run, e.reason);
            if dry_run && self.settings.dry_run_elects {
                self.become_primary(now, reason);
            } else if dry_run {
                self.hs.term += 1;
                self.hs.last_vote = Some(LastVote { term: self.hs.term, candidate: self.me });
                self.out.push(Action::PersistHardState(self.hs));
                self.begin_round(now, false, self.hs.term, reason);
            } else {
                self.become_primary(now, reason);
            }
        } else if e.refused.len() > self.config.members.len() - majority {
            self.lose_election(now);
        }
    }

    fn lose_election(&mut self, now: Now) {
        if let Some(e) = self.election.take() {
            let lost = Action::ElectionLost {
                term: e.term,
                dry_run: e.dry_run,
                granted: e.granted.len(),
                refused: e.refused.len(),
            };
            self.out.push(lost);
        }
        self.reset_election_timer(now);
    }

    fn become_primary(&mut self, now: Now, reason: ElectionReason) {
        self.primary = true;
        self.known_primary = Some(self.me);
        self.election = None;
        self.takeover_at_ms = None;
        self.fetch = None;
        for p in &mut self.peers {
            p.position = OpTime::ZERO;
            p.next_heartbeat_ms = now.ms;
        }
        self.out.push(Action::BecamePrimary { term: self.hs.term, reason });
        // MongoDB's "new primary" no-op: the first entry of the term, which lets the commit
        // point move past entries of earlier terms.
        self.append_local(now, vec![Op::Noop { msg: "new primary".into() }], None);
        self.send_due_heartbeats(now);
    }

    pub(super) fn step_down(&mut self, now: Now, reason: &'static str) {
        self.primary = false;
        if self.known_primary == Some(self.me) {
            self.known_primary = None;
        }
        self.out.push(Action::SteppedDown { term: self.hs.term, reason });
        self.reset_election_timer(now);
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_heartbeat(
        &mut self,
        now: Now,
        from: usize,
        term: u64,
        primary: bool,
        applied: OpTime,
        applied_wall_ms: u64,
        commit: OpTime,
    ) {
        self.note_peer(from, term, primary, applied, applied_wall_ms);
        if primary && term == self.hs.term && !self.primary {
            self.heard_from_primary(now, from);
            self.learn_commit(commit);
            if self.damaged && self.repair_target.is_none() {
                self.repair_target = Some(applied);
            }
        }
        // A damaged member reports nothing durable: it counts towards no majority.
        let durable = if self.damaged { OpTime::ZERO } else { self.durable };
        let reply = PeerMsg::HeartbeatReply {
            term: self.hs.term,
            primary: self.primary,
            applied: self.oplog.last(),
            applied_wall_ms: self.oplog.last_wall_ms(),
            durable,
        };
        self.send(from, reply);
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_heartbeat_reply(
        &mut self,
        now: Now,
        from: usize,
        term: u64,
        primary: bool,
        applied: OpTime,
        applied_wall_ms: u64,
        durable: OpTime,
    ) {
        self.note_peer(from, term, primary, applied, applied_wall_ms);
        if primary && term == self.hs.term && !self.primary {
            self.heard_from_primary(now, from);
        }
        if self.primary {
            self.update_position(from, durable);
        }
    }

    fn note_peer(&mut self, from: usize, term: u64, primary: bool, applied: OpTime, applied_wall_ms: u64) {
        let p = &mut self.peers[from];
        p.term = term;
        p.is_primary = primary;
        p.applied = applied;
        p.applied_wall_ms = applied_wall_ms;
    }

    fn heard_from_primary(&mut self, now: Now, primary: usize) {
        self.known_primary = Some(primary);
        self.reset_election_timer(now);
        if self.takeover_at_ms.is_none() && self.takeover_warranted() {
            let rank = self.priority_rank() as u64;
            let limit = self.settings.election_timeout_ms * self.settings.election_offset_limit_permille / 1000;
            let offset = self.rng.gen_range(0..=limit);
            self.takeover_at_ms = Some(now.ms + (rank + 1) * self.settings.election_timeout_ms + offset);
        }
    }

    /// This member outranks the primary it follows and is fresh enough to replace it.
    fn takeover_warranted(&self) -> bool {
        let Some(p) = self.known_primary.filter(|p| *p != self.me) else { return false };
        let peer = &self.peers[p];
        !self.primary
            && peer.is_primary
            && peer.term == self.hs.term
            && self.config.members[p].priority < self.my_priority()
            && self.oplog.last_wall_ms() + self.settings.priority_takeover_freshness_ms >= peer.applied_wall_ms
    }

    fn my_priority(&self) -> u32 {
        self.config.members[self.me].priority
    }

    /// How many members have a strictly higher priority than this one.
    fn priority_rank(&self) -> usize {
        let mine = self.my_priority();
        self.config.members.iter().filter(|m| m.priority > mine).count()
    }
}
