//! The failover manager's decision cycle, sans-IO: Patroni's `ha.py` `run_cycle`, reduced to the
//! rules that decide safety and liveness.
//!
//! Each member runs one cycle every `loop_wait`: the shell reads the cluster from the DCS (and,
//! when the leader key is free, polls the other members' API), calls [`Manager::cycle`], and
//! carries out the returned actions. The rules:
//!
//! * The primary renews the leader key every cycle. It may acknowledge writes only until its
//!   fence: the send time of its last successful renewal plus `ttl`, minus a safety margin (see
//!   [`super::dcs`] for why the send time). Past the fence, or when the key is gone or held by
//!   someone else, it demotes.
//! * A member that finds the key free takes it only if the DCS `/sync` key lets it (synchronous
//!   standby or previous leader), its WAL is undamaged, no member still reports itself primary
//!   ("master is still alive"), and no other eligible, reachable member is more advanced
//!   (`_is_healthiest_node`). Ties go to the lowest name; the DCS compare-and-set settles races.
//! * A member that finds the key held by someone else follows that member's epoch.
//! * A member that finds the key held by itself without being primary (it restarted, or never
//!   heard that its acquisition succeeded) releases it: `master_start_timeout` is modelled as 0.

use serde::{Deserialize, Serialize};

use super::dcs::ClusterView;
use super::protocol::{MemberRole, MemberStatus};
use super::wal::Position;

/// Patroni's timing, scaled for simulation. Patroni's defaults are `ttl` 30 s, `loop_wait` 10 s,
/// `retry_timeout` 10 s; PostgreSQL's `wal_sender_timeout` is 60 s and `archive_timeout` 0 (off;
/// production setups often use 60 s).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timing {
    pub ttl_ms: u64,
    pub loop_wait_ms: u64,
    pub retry_timeout_ms: u64,
    /// Subtracted from the lease on the primary's side before it stops writing.
    pub fence_margin_ms: u64,
    pub wal_sender_timeout_ms: u64,
    pub archive_timeout_ms: u64,
    pub base_backup_interval_ms: u64,
}

impl Timing {
    /// `ttl` 6 s and `retry_timeout` 2 s (Patroni's defaults divided by 5), `loop_wait` 1 s
    /// (divided by 10, so a 6 s lease gets several renewal attempts), `wal_sender_timeout` 3 s,
    /// archiving every second and a base backup every 10 s, so a one-minute simulation sees
    /// several of each.
    pub fn simulation() -> Self {
        Timing {
            ttl_ms: 6_000,
            loop_wait_ms: 1_000,
            retry_timeout_ms: 2_000,
            fence_margin_ms: 500,
            wal_sender_timeout_ms: 3_000,
            archive_timeout_ms: 1_000,
            base_backup_interval_ms: 10_000,
        }
    }
}

/// This member's own state, as the shell sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Local {
    pub role: LocalRole,
    pub position: Position,
    pub damaged: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LocalRole {
    Primary { epoch: u64 },
    Standby { following: Option<(String, u64)> },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Renew { epoch: u64 },
    Acquire,
    Demote { reason: String },
    Follow { leader: String, epoch: u64 },
    Release { epoch: u64 },
}

pub struct Manager {
    me: String,
    timing: Timing,
    fence_ms: Option<u64>,
    /// Whether the lease fences writes (false only for the planted `no_fence` bug).
    fenced: bool,
}

impl Manager {
    pub fn new(me: &str, timing: Timing) -> Self {
        Manager { me: me.into(), timing, fence_ms: None, fenced: true }
    }

    /// With `fenced` false (a planted bug, [`super::planted::Planted::no_fence`]), a primary
    /// holding a lease may write forever, and demotes only when the DCS says it lost the key.
    pub fn fenced(mut self, fenced: bool) -> Self {
        self.fenced = fenced;
        self
    }

    pub fn timing(&self) -> &Timing {
        &self.timing
    }

    /// A renewal or acquisition sent at `sent_at_ms` succeeded.
    pub fn on_lease(&mut self, sent_at_ms: u64) {
        let fence = sent_at_ms + self.timing.ttl_ms.saturating_sub(self.timing.fence_margin_ms);
        self.fence_ms = Some(self.fence_ms.map_or(fence, |f| f.max(fence)));
    }

    pub fn on_demoted(&mut self) {
        self.fence_ms = None;
    }

    /// Until when the primary may acknowledge writes (0: not at all).
    pub fn fence_ms(&self) -> u64 {
        match self.fence_ms {
            Some(_) if !self.fenced => u64::MAX,
            fence => fence.unwrap_or(0),
        }
    }

    pub fn may_write(&self, now_ms: u64) -> bool {
        now_ms < self.fence_ms()
    }

    /// One HA cycle. `view` is None when the DCS could not be read within `retry_timeout`.
    pub fn cycle(
        &mut self,
        now_ms: u64,
        view: Option<&ClusterView>,
        local: &Local,
        peers: &[MemberStatus],
    ) -> Vec<Action> {
        let primary_epoch = match local.role {
            LocalRole::Primary { epoch } => Some(epoch),
            LocalRole::Standby { .. } => None,
        };
        if primary_epoch.is_some() && !self.may_write(now_ms) {
            return vec![Action::Demote { reason: "could not renew the leader lease in time".into() }];
        }
        let Some(view) = view else { return Vec::new() };
        match (primary_epoch, &view.leader) {
            (Some(epoch), Some(k)) if k.holder == self.me && k.epoch == epoch => vec![Action::Renew { epoch }],
            (Some(_), Some(k)) => {
                vec![Action::Demote { reason: format!("leader key held by {} in epoch {}", k.holder, k.epoch) }]
            }
            (Some(_), None) => vec![Action::Demote { reason: "leader key expired".into() }],
            (None, Some(k)) if k.holder == self.me => vec![Action::Release { epoch: k.epoch }],
            (None, Some(k)) => {
                let wanted = Some((k.holder.clone(), k.epoch));
                match &local.role {
                    LocalRole::Standby { following } if *following == wanted => Vec::new(),
                    _ => vec![Action::Follow { leader: k.holder.clone(), epoch: k.epoch }],
                }
            }
            (None, None) if self.healthiest(view, local, peers) => vec![Action::Acquire],
            (None, None) => Vec::new(),
        }
    }

    fn healthiest(&self, view: &ClusterView, local: &Local, peers: &[MemberStatus]) -> bool {
        if local.damaged || !view.sync.may_acquire(&self.me) {
            return false;
        }
        let mine = (local.position, std::cmp::Reverse(self.me.as_str()));
        peers.iter().filter(|p| p.name != self.me).all(|p| {
            if p.role == MemberRole::Primary {
                return false;
            }
            if p.damaged || !view.sync.may_acquire(&p.name) {
                return true;
            }
            mine > (p.position, std::cmp::Reverse(p.name.as_str()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::dcs::{LeaderKey, SyncKey};

    fn view(leader: Option<(&str, u64)>, sync_leader: Option<&str>, standby: Option<&str>) -> ClusterView {
        ClusterView {
            leader: leader.map(|(h, e)| LeaderKey { holder: h.into(), epoch: e, lease_rev: 0, ttl_ms: 6_000 }),
            sync: SyncKey { leader: sync_leader.map(String::from), epoch: 1, standby: standby.map(String::from) },
            epoch: 1,
        }
    }

    fn standby(position: (u64, u64)) -> Local {
        Local {
            role: LocalRole::Standby { following: None },
            position: Position { epoch: position.0, index: position.1 },
            damaged: false,
        }
    }

    fn peer(name: &str, role: MemberRole, position: (u64, u64)) -> MemberStatus {
        MemberStatus {
            name: name.into(),
            role,
            epoch: 1,
            position: Position { epoch: position.0, index: position.1 },
            damaged: false,
        }
    }

    #[test]
    fn primary_renews_within_its_fence_and_demotes_past_it() {
        let mut m = Manager::new("a", Timing::simulation());
        m.on_lease(1_000);
        let me = Local { role: LocalRole::Primary { epoch: 1 }, position: Position::default(), damaged: false };
        let v = view(Some(("a", 1)), Some("a"), None);
        assert_eq!(m.cycle(2_000, Some(&v), &me, &[]), vec![Action::Renew { epoch: 1 }]);
        assert!(m.may_write(6_499));
        assert!(!m.may_write(6_500));
        assert!(matches!(m.cycle(6_500, None, &me, &[])[..], [Action::Demote { .. }]));
        let other = view(Some(("b", 2)), Some("b"), None);
        assert!(matches!(m.cycle(3_000, Some(&other), &me, &[])[..], [Action::Demote { .. }]));
    }

    #[test]
    fn only_the_most_advanced_eligible_member_acquires() {
        let mut m = Manager::new("b", Timing::simulation());
        let v = view(None, Some("a"), Some("b"));
        // c is ahead but not a synchronous candidate; a (old leader) is unreachable.
        let peers = [peer("c", MemberRole::Standby, (1, 90))];
        assert_eq!(m.cycle(0, Some(&v), &standby((1, 80)), &peers), vec![Action::Acquire]);
        // The old leader answers and is ahead: b waits.
        let peers = [peer("a", MemberRole::Standby, (1, 85))];
        assert_eq!(m.cycle(0, Some(&v), &standby((1, 80)), &peers), vec![]);
        // The old leader still says it is primary: nobody takes over.
        let peers = [peer("a", MemberRole::Primary, (1, 70))];
        assert_eq!(m.cycle(0, Some(&v), &standby((1, 80)), &peers), vec![]);
        // c is never eligible under synchronous mode.
        let mut c = Manager::new("c", Timing::simulation());
        assert_eq!(c.cycle(0, Some(&v), &standby((1, 90)), &[]), vec![]);
    }

    #[test]
    fn bootstrap_ties_go_to_the_lowest_name_and_others_follow() {
        let v = view(None, None, None);
        let mut a = Manager::new("a", Timing::simulation());
        let mut b = Manager::new("b", Timing::simulation());
        let peers = [peer("a", MemberRole::Standby, (0, 0)), peer("b", MemberRole::Standby, (0, 0))];
        assert_eq!(a.cycle(0, Some(&v), &standby((0, 0)), &peers), vec![Action::Acquire]);
        assert_eq!(b.cycle(0, Some(&v), &standby((0, 0)), &peers), vec![]);
        let held = view(Some(("a", 1)), Some("a"), None);
        assert_eq!(
            b.cycle(0, Some(&held), &standby((0, 0)), &peers),
            vec![Action::Follow { leader: "a".into(), epoch: 1 }]
        );
        // A member holding the key without being primary gives it back.
        assert_eq!(a.cycle(0, Some(&held), &standby((1, 1)), &peers), vec![Action::Release { epoch: 1 }]);
    }

    #[test]
    fn a_damaged_member_never_acquires() {
        let mut m = Manager::new("b", Timing::simulation());
        let v = view(None, Some("a"), Some("b"));
        let mut me = standby((1, 80));
        me.damaged = true;
        assert_eq!(m.cycle(0, Some(&v), &me, &[]), vec![]);
    }
}
