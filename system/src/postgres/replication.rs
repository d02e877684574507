//! Synchronous replication on the primary, as a sans-IO state machine: which standby is
//! synchronous, which commits wait for it, and how the choice changes without ever leaving an
//! acknowledged commit on a standby that cannot be promoted.
//!
//! PostgreSQL acknowledges a `synchronous_commit = on` commit once the standby named in
//! `synchronous_standby_names` has flushed it; Patroni's `synchronous_mode` keeps that name in the
//! DCS (`/sync`) as well, and only the member named there (or the old leader) may be promoted.
//! So the order of a change matters:
//!
//! * to name a new standby, acknowledgements pause, the new standby catches up with everything
//!   flushed so far (a barrier), the DCS is updated, and only then do acknowledgements resume on
//!   the new standby's flush position;
//! * with no healthy standby at all, the DCS is updated to name none (then only the leader is
//!   promotable) before commits are acknowledged on the local flush alone: Patroni's non-strict
//!   `synchronous_mode` degrading to `/sync = none` ([`SyncRep::committed`] reports it);
//! * under `synchronous_mode_strict`, never: with no healthy standby, synchronous commits wait
//!   (Patroni sets `synchronous_standby_names = '*'`) until some standby is healthy again, and a
//!   new primary acknowledges none before it has named one.
//!
//! A standby is healthy while its feedback is younger than `wal_sender_timeout`: PostgreSQL
//! keeps a silent standby in `pg_stat_replication` (and so Patroni keeps it synchronous) until
//! the walsender times it out.

use std::collections::BTreeMap;

use serde::Serialize;

/// What one standby has told the primary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StandbyProgress {
    pub zone: String,
    pub flushed: u64,
    pub applied: u64,
    /// When the last feedback arrived (ms of the primary's monotonic clock).
    pub last_feedback_ms: u64,
}

/// Who acknowledges synchronous commits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum SyncState {
    /// No synchronous standby: commits are acknowledged on the local flush.
    Local,
    /// Changing to `to` (None: to no standby): acknowledgements wait until the change is in
    /// the DCS; `to` must first flush everything up to `barrier`.
    Switching {
        to: Option<String>,
        barrier: u64,
    },
    Standby(String),
}

/// A change of synchronous standby the shell must write to the DCS (`/sync`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncChange {
    pub standby: Option<String>,
}

/// The primary's synchronous replication state. Waiters are opaque ids the shell maps to
/// clients.
#[derive(Debug)]
pub struct SyncRep {
    state: SyncState,
    waiters: BTreeMap<u64, Vec<u64>>,
    /// `wal_sender_timeout`: a standby silent this long is not a synchronous candidate.
    sender_timeout_ms: u64,
    /// `synchronous_mode_strict`: block rather than acknowledge without a standby.
    strict: bool,
    /// The standby the DCS last named for this primary (None before the first).
    named: Option<String>,
}

impl SyncRep {
    /// A new primary starts with no synchronous standby: the DCS `/sync` key names none after
    /// a leader acquisition.
    pub fn new(sender_timeout_ms: u64, strict: bool) -> Self {
        SyncRep { state: SyncState::Local, waiters: BTreeMap::new(), sender_timeout_ms, strict, named: None }
    }

    pub fn state(&self) -> &SyncState {
        &self.state
    }

    /// The highest index that may be acknowledged now.
    fn ackable(&self, local_flushed: u64, standbys: &BTreeMap<String, StandbyProgress>) -> u64 {
        match &self.state {
            SyncState::Local if self.strict => 0,
            SyncState::Local => local_flushed,
            SyncState::Switching { .. } => 0,
            SyncState::Standby(s) => standbys.get(s).map_or(0, |p| p.flushed.min(local_flushed)),
        }
    }

    /// Registers waiter `id` for the commit at `index`; true if it may be acknowledged at once.
    pub fn wait(
        &mut self,
        index: u64,
        id: u64,
        local_flushed: u64,
        standbys: &BTreeMap<String, StandbyProgress>,
    ) -> bool {
        if index <= self.ackable(local_flushed, standbys) {
            return true;
        }
        self.waiters.entry(index).or_default().push(id);
        false
    }

    /// Waiters that may be acknowledged after any progress (a flush, feedback, a switch).
    pub fn release(&mut self, local_flushed: u64, standbys: &BTreeMap<String, StandbyProgress>) -> Vec<u64> {
        let upto = self.ackable(local_flushed, standbys);
        let keep = self.waiters.split_off(&(upto + 1));
        let done = std::mem::replace(&mut self.waiters, keep);
        done.into_values().flatten().collect()
    }

    /// Every waiter, for failing them all on demotion.
    pub fn drain(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.waiters).into_values().flatten().collect()
    }

    fn healthy(&self, p: &StandbyProgress, now_ms: u64) -> bool {
        now_ms.saturating_sub(p.last_feedback_ms) < self.sender_timeout_ms
    }

    /// The best synchronous candidate: healthy, in another zone, most caught up, then by name.
    fn best(&self, now_ms: u64, my_zone: &str, standbys: &BTreeMap<String, StandbyProgress>) -> Option<String> {
        standbys
            .iter()
            .filter(|(_, p)| p.zone != my_zone && self.healthy(p, now_ms))
            .max_by(|(a, pa), (b, pb)| pa.flushed.cmp(&pb.flushed).then_with(|| b.cmp(a)))
            .map(|(n, _)| n.clone())
    }

    /// Decides whether to change the synchronous standby (Patroni's loop does this every
    /// `loop_wait`). Returns the DCS write to make once the switch's barrier is met.
    pub fn maintain(
        &mut self,
        now_ms: u64,
        my_zone: &str,
        local_flushed: u64,
        standbys: &BTreeMap<String, StandbyProgress>,
    ) -> Option<SyncChange> {
        let best = self.best(now_ms, my_zone, standbys);
        let healthy = |s: &String| standbys.get(s).is_some_and(|p| self.healthy(p, now_ms));
        // Strict mode never gives up on a standby without another to switch to.
        let retarget = match &self.state {
            _ if self.strict && best.is_none() => false,
            SyncState::Standby(s) => !healthy(s),
            SyncState::Local => best.is_some(),
            SyncState::Switching { to: Some(t), .. } => !healthy(t),
            SyncState::Switching { to: None, .. } => best.is_some(),
        };
        if retarget {
            self.state = SyncState::Switching { to: best, barrier: local_flushed };
        }
        match &self.state {
            SyncState::Switching { to: Some(t), barrier } => {
                let caught_up = standbys.get(t).is_some_and(|p| p.flushed >= *barrier);
                caught_up.then(|| SyncChange { standby: Some(t.clone()) })
            }
            SyncState::Switching { to: None, .. } => Some(SyncChange { standby: None }),
            _ => None,
        }
    }

    /// The DCS accepted `change`: acknowledgements resume under the new standby (or locally).
    /// Returns the standby given up when this degrades to `/sync = none` after one was named.
    pub fn committed(&mut self, change: &SyncChange) -> Option<String> {
        let SyncState::Switching { to, .. } = &self.state else { return None };
        if *to != change.standby {
            return None;
        }
        self.state = match &change.standby {
            Some(s) => SyncState::Standby(s.clone()),
            None => SyncState::Local,
        };
        match &change.standby {
            Some(s) => {
                self.named = Some(s.clone());
                None
            }
            None => self.named.take(),
        }
    }

    /// The standby named in the DCS, if acknowledgements currently depend on one.
    pub fn standby(&self) -> Option<&str> {
        match &self.state {
            SyncState::Standby(s) => Some(s),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(zone: &str, flushed: u64, at: u64) -> StandbyProgress {
        StandbyProgress { zone: zone.into(), flushed, applied: flushed, last_feedback_ms: at }
    }

    #[test]
    fn local_mode_acks_on_flush_and_a_switch_pauses_acks_until_the_dcs_agrees() {
        let mut s = SyncRep::new(3_000, false);
        let mut standbys = BTreeMap::new();
        assert!(s.wait(1, 10, 1, &standbys));
        standbys.insert("b".to_string(), progress("z2", 1, 0));
        // Commit 2 is flushed locally, but a standby is about to be named: no local ack.
        let change = s.maintain(0, "z1", 2, &standbys);
        assert_eq!(change, None, "b has not reached the barrier yet");
        assert!(!s.wait(2, 11, 2, &standbys));
        assert!(s.release(2, &standbys).is_empty());
        standbys.get_mut("b").unwrap().flushed = 2;
        let change = s.maintain(100, "z1", 2, &standbys).expect("barrier met");
        assert_eq!(change.standby.as_deref(), Some("b"));
        assert!(s.release(2, &standbys).is_empty(), "not before the DCS write");
        s.committed(&change);
        assert_eq!(s.release(2, &standbys), vec![11]);
        assert_eq!(s.standby(), Some("b"));
    }

    #[test]
    fn acks_follow_the_standby_flush_and_a_silent_standby_is_replaced() {
        let mut s = SyncRep::new(3_000, false);
        let mut standbys =
            BTreeMap::from([("b".to_string(), progress("z2", 5, 0)), ("c".to_string(), progress("z3", 4, 0))]);
        let change = s.maintain(0, "z1", 5, &standbys).unwrap();
        s.committed(&change);
        assert_eq!(s.standby(), Some("b"));
        assert!(!s.wait(6, 1, 6, &standbys));
        standbys.get_mut("b").unwrap().flushed = 6;
        assert_eq!(s.release(6, &standbys), vec![1]);
        // b goes silent; c is healthy and will take over once caught up with index 7.
        standbys.get_mut("c").unwrap().last_feedback_ms = 4_000;
        assert!(!s.wait(7, 2, 7, &standbys));
        assert_eq!(s.maintain(4_000, "z1", 7, &standbys), None);
        assert!(matches!(s.state(), SyncState::Switching { to: Some(t), barrier: 7 } if t == "c"));
        standbys.get_mut("c").unwrap().flushed = 7;
        let change = s.maintain(4_100, "z1", 7, &standbys).unwrap();
        s.committed(&change);
        assert_eq!(s.release(7, &standbys), vec![2]);
    }

    #[test]
    fn no_healthy_standby_means_naming_none_before_local_acks() {
        let mut s = SyncRep::new(3_000, false);
        let standbys = BTreeMap::from([("b".to_string(), progress("z2", 5, 0))]);
        let first = s.maintain(0, "z1", 5, &standbys).unwrap();
        s.committed(&first);
        let change = s.maintain(10_000, "z1", 9, &standbys).unwrap();
        assert_eq!(change.standby, None);
        assert!(!s.wait(9, 3, 9, &standbys));
        s.committed(&change);
        assert_eq!(s.release(9, &standbys), vec![3]);
        assert_eq!(s.state(), &SyncState::Local);
        assert_eq!(s.drain(), Vec::<u64>::new());
    }

    #[test]
    fn standbys_in_the_primary_zone_are_never_synchronous() {
        let mut s = SyncRep::new(3_000, false);
        let standbys = BTreeMap::from([("b".to_string(), progress("z1", 5, 0))]);
        assert_eq!(s.maintain(0, "z1", 5, &standbys), None);
        assert_eq!(s.state(), &SyncState::Local);
    }

    #[test]
    fn degrading_to_none_reports_the_standby_given_up() {
        let mut s = SyncRep::new(3_000, false);
        let standbys = BTreeMap::from([("b".to_string(), progress("z2", 5, 0))]);
        let named = s.maintain(0, "z1", 5, &standbys).unwrap();
        assert_eq!(s.committed(&named), None, "naming a standby is no degradation");
        let none = s.maintain(3_000, "z1", 5, &standbys).unwrap();
        assert_eq!(none.standby, None);
        assert_eq!(s.committed(&none), Some("b".to_string()));
        // A fresh primary naming none has nothing to degrade from.
        let mut fresh = SyncRep::new(3_000, false);
        assert_eq!(fresh.maintain(0, "z1", 0, &BTreeMap::new()), None);
        assert_eq!(fresh.state(), &SyncState::Local);
    }

    #[test]
    fn strict_mode_blocks_instead_of_degrading() {
        let mut s = SyncRep::new(3_000, true);
        let mut standbys = BTreeMap::new();
        // A new primary with no standby acknowledges no synchronous commit.
        assert!(!s.wait(1, 10, 1, &standbys));
        assert_eq!(s.maintain(0, "z1", 1, &standbys), None);
        standbys.insert("b".to_string(), progress("z2", 1, 0));
        let named = s.maintain(0, "z1", 1, &standbys).unwrap();
        s.committed(&named);
        assert_eq!(s.release(1, &standbys), vec![10]);
        // b goes silent and nobody else is healthy: no switch to none, commits wait.
        assert!(!s.wait(2, 11, 2, &standbys));
        assert_eq!(s.maintain(5_000, "z1", 2, &standbys), None);
        assert_eq!(s.state(), &SyncState::Standby("b".into()));
        assert!(s.release(2, &standbys).is_empty());
        // b comes back and confirms: the waiter is released.
        standbys.insert("b".to_string(), progress("z2", 2, 5_000));
        assert_eq!(s.release(2, &standbys), vec![11]);
    }
}
