//! The distributed configuration store the failover manager relies on, as Patroni relies on
//! etcd: a replicated state machine (applied in the order the Raft log commits commands) that
//! holds the cluster's leader key with its lease, the epoch counter (timelines), and the `/sync`
//! key naming the synchronous standby.
//!
//! Every change is a compare-and-set evaluated here, in log order, so two members can never both
//! acquire the leader key, and epochs are handed out exactly once. Lease expiry is etcd's: the
//! DCS leader times a lease on its own monotonic clock from when it applied the last renewal (and
//! restarts every lease at full TTL when it becomes leader), then proposes an `Expire` naming
//! the lease revision it saw expire, so a renewal that raced it wins. A leader's agent computes
//! its own deadline from when it *sent* the renewal, which is never later than when the DCS
//! applied it: with clocks that run at the same rate (skew does not matter, rate does), the agent
//! demotes its server, and the watchdog it pets resets a server whose agent stalled, before the
//! DCS lets anyone else acquire the key. The server itself never looks at the lease.

use serde::{Deserialize, Serialize};

/// The leader key (`/leader` in Patroni) and its lease.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderKey {
    pub holder: String,
    pub epoch: u64,
    /// Bumped by every renewal; `Expire` must name the revision it timed out.
    pub lease_rev: u64,
    pub ttl_ms: u64,
}

/// The `/sync` key: the leader it was written for and the standby allowed to take over.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncKey {
    pub leader: Option<String>,
    pub epoch: u64,
    pub standby: Option<String>,
}

impl SyncKey {
    /// Patroni's `synchronous_mode` rule: only the synchronous standby or the leader itself may
    /// take the leader key; before the first leader, anyone may (bootstrap).
    pub fn may_acquire(&self, who: &str) -> bool {
        match &self.leader {
            None => true,
            Some(l) => l == who || self.standby.as_deref() == Some(who),
        }
    }
}

/// What every DCS answer carries: the cluster as the DCS currently sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterView {
    pub leader: Option<LeaderKey>,
    pub sync: SyncKey,
    /// The last epoch handed out.
    pub epoch: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    Acquire { who: String, ttl_ms: u64 },
    Renew { who: String, epoch: u64 },
    Release { who: String, epoch: u64 },
    Expire { epoch: u64, lease_rev: u64 },
    SetSync { who: String, epoch: u64, standby: Option<String> },
}

/// The result of applying one command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Done,
    /// The compare failed; nothing changed.
    Refused(String),
}

/// The state machine. Deterministic: the same commands give the same state on every member.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DcsState {
    view: ClusterView,
}

impl DcsState {
    pub fn view(&self) -> &ClusterView {
        &self.view
    }

    pub fn apply(&mut self, cmd: &Command) -> Outcome {
        let v = &mut self.view;
        let held = |who: &str, epoch: u64| v.leader.as_ref().is_some_and(|k| k.holder == who && k.epoch == epoch);
        match cmd {
            Command::Acquire { who, ttl_ms } => {
                if let Some(k) = &v.leader {
                    return Outcome::Refused(format!("leader key held by {} (epoch {})", k.holder, k.epoch));
                }
                if !v.sync.may_acquire(who) {
                    return Outcome::Refused(format!("{who} is not a synchronous candidate"));
                }
                v.epoch += 1;
                v.leader = Some(LeaderKey { holder: who.clone(), epoch: v.epoch, lease_rev: 0, ttl_ms: *ttl_ms });
                v.sync = SyncKey { leader: Some(who.clone()), epoch: v.epoch, standby: None };
                Outcome::Done
            }
            Command::Renew { who, epoch } => {
                if !held(who, *epoch) {
                    return Outcome::Refused(format!("{who} does not hold the key in epoch {epoch}"));
                }
                if let Some(k) = v.leader.as_mut() {
                    k.lease_rev += 1;
                }
                Outcome::Done
            }
            Command::Release { who, epoch } => {
                if !held(who, *epoch) {
                    return Outcome::Refused(format!("{who} does not hold the key in epoch {epoch}"));
                }
                v.leader = None;
                Outcome::Done
            }
            Command::Expire { epoch, lease_rev } => {
                let matches = v.leader.as_ref().is_some_and(|k| k.epoch == *epoch && k.lease_rev == *lease_rev);
                if !matches {
                    return Outcome::Refused("lease renewed or gone".into());
                }
                v.leader = None;
                Outcome::Done
            }
            Command::SetSync { who, epoch, standby } => {
                if !held(who, *epoch) {
                    return Outcome::Refused(format!("{who} does not hold the key in epoch {epoch}"));
                }
                v.sync = SyncKey { leader: Some(who.clone()), epoch: *epoch, standby: standby.clone() };
                Outcome::Done
            }
        }
    }

    /// The lease that would need expiring, if any: `(epoch, lease_rev, ttl_ms)`.
    pub fn lease(&self) -> Option<(u64, u64, u64)> {
        self.view.leader.as_ref().map(|k| (k.epoch, k.lease_rev, k.ttl_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acquire(who: &str) -> Command {
        Command::Acquire { who: who.into(), ttl_ms: 6_000 }
    }

    #[test]
    fn one_holder_at_a_time_and_epochs_are_handed_out_once() {
        let mut s = DcsState::default();
        assert_eq!(s.apply(&acquire("a")), Outcome::Done);
        assert!(matches!(s.apply(&acquire("b")), Outcome::Refused(_)));
        assert_eq!(s.view().epoch, 1);
        assert_eq!(s.apply(&Command::Renew { who: "a".into(), epoch: 1 }), Outcome::Done);
        assert!(matches!(s.apply(&Command::Renew { who: "b".into(), epoch: 1 }), Outcome::Refused(_)));
        assert_eq!(s.lease(), Some((1, 1, 6_000)));
    }

    #[test]
    fn expiry_loses_to_a_racing_renewal() {
        let mut s = DcsState::default();
        s.apply(&acquire("a"));
        s.apply(&Command::Renew { who: "a".into(), epoch: 1 });
        assert!(matches!(s.apply(&Command::Expire { epoch: 1, lease_rev: 0 }), Outcome::Refused(_)));
        assert_eq!(s.apply(&Command::Expire { epoch: 1, lease_rev: 1 }), Outcome::Done);
        assert!(s.view().leader.is_none());
    }

    #[test]
    fn only_the_sync_standby_or_the_old_leader_may_take_over() {
        let mut s = DcsState::default();
        s.apply(&acquire("a"));
        s.apply(&Command::SetSync { who: "a".into(), epoch: 1, standby: Some("b".into()) });
        s.apply(&Command::Release { who: "a".into(), epoch: 1 });
        assert!(matches!(s.apply(&acquire("c")), Outcome::Refused(_)));
        assert_eq!(s.apply(&acquire("b")), Outcome::Done);
        assert_eq!(s.view().epoch, 2);
        assert_eq!(s.view().sync, SyncKey { leader: Some("b".into()), epoch: 2, standby: None });
        // A stale leader cannot rename the synchronous standby.
        assert!(matches!(
            s.apply(&Command::SetSync { who: "a".into(), epoch: 1, standby: Some("c".into()) }),
            Outcome::Refused(_)
        ));
    }
}
