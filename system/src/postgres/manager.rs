//! The Patroni agent's decision cycle, sans-IO: Patroni's `ha.py` `run_cycle`, reduced to the
//! rules that decide safety and liveness.
//!
//! Each agent runs one cycle every `loop_wait`: the shell (`agent`) asks its server for its
//! state over the local control channel, reads the cluster from the DCS (and, when the leader
//! key is free, polls the other agents' REST API), calls [`Manager::cycle`], and carries out the
//! returned actions through the control channel and the DCS. The rules:
//!
//! * The leader renews the leader key every cycle. Its lease, as it sees it, runs from the send
//!   time of its last successful renewal for `ttl` (see [`super::dcs`] for why the send time);
//!   it demotes its server `safety_margin` before that ends, or at once when the key is gone
//!   or held by someone else. The server itself knows nothing of the lease: a stalled agent
//!   leaves a primary running, which only the watchdog stops ([`Manager::watchdog_timeout_ms`]).
//! * A member that finds the key free takes it only if the DCS `/sync` key lets it (synchronous
//!   standby or previous leader), its WAL is undamaged, no member still reports itself primary
//!   ("master is still alive"), and no other eligible, reachable member is more advanced
//!   (`_is_healthiest_node`). Ties go to the lowest name; the DCS compare-and-set settles races.
//! * A member that finds the key held by someone else follows that member's epoch.
//! * A member that finds the key held by itself without being primary (it restarted, or never
//!   heard that its acquisition succeeded) releases it: `master_start_timeout` is modelled as 0.
//! * The REST API's `/primary` (what the proxy checks) is healthy only while the server is the
//!   primary of the epoch the agent holds the key for and its lease has not run out
//!   ([`Manager::healthy_primary`], Patroni's `is_leader()`).

use serde::{Deserialize, Serialize};
use sim::ratio::Ratio;

use super::dcs::ClusterView;
use super::protocol::{MemberRole, MemberStatus};
use super::wal::Position;

/// Patroni's and PostgreSQL's timeouts, all scaled by one factor so that production orderings
/// hold in simulation: `wal_sender_timeout` (60 s) is longer than the leader `ttl` (30 s), and
/// `loop_wait + 2 * retry_timeout <= ttl` (10 + 2 * 10 <= 30), as Patroni requires.
///
/// Production defaults ([`Timing::production`]): Patroni `ttl` 30 s, `loop_wait` 10 s,
/// `retry_timeout` 10 s, `watchdog.safety_margin` 5 s; PostgreSQL `wal_sender_timeout` and
/// `wal_receiver_timeout` 60 s; HAProxy's health check `inter 3s`. [`Timing::scaled`] multiplies
/// every one of them by `scale`. The archiving cadence (`archive_timeout`, the base-backup
/// interval) is a schedule, not a timeout, and is set apart: a one-minute run must see several.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timing {
    /// The factor every timeout below was multiplied by (1/1: production).
    pub scale: Ratio,
    pub ttl_ms: u64,
    pub loop_wait_ms: u64,
    pub retry_timeout_ms: u64,
    /// Patroni's `watchdog.safety_margin`: the watchdog fires this long before the leader key
    /// would expire; the agent also demotes its server this long before its own view of the
    /// lease runs out.
    pub safety_margin_ms: u64,
    pub wal_sender_timeout_ms: u64,
    pub wal_receiver_timeout_ms: u64,
    /// HAProxy's `inter`: how often the proxy checks each member's `/primary`.
    pub check_interval_ms: u64,
    pub archive_timeout_ms: u64,
    pub base_backup_interval_ms: u64,
}

impl Timing {
    /// The production defaults (see the type's doc).
    pub fn production() -> Self {
        Timing::scaled(Ratio::ALWAYS)
    }

    /// Every timeout of [`Timing::production`] times `scale`; archiving every second and a base
    /// backup every 10 s.
    pub fn scaled(scale: Ratio) -> Self {
        let by = |ms: u64| ms * u64::from(scale.num) / u64::from(scale.den);
        Timing {
            scale,
            ttl_ms: by(30_000),
            loop_wait_ms: by(10_000),
            retry_timeout_ms: by(10_000),
            safety_margin_ms: by(5_000),
            wal_sender_timeout_ms: by(60_000),
            wal_receiver_timeout_ms: by(60_000),
            check_interval_ms: by(3_000),
            archive_timeout_ms: 1_000,
            base_backup_interval_ms: 10_000,
        }
    }

    /// Production timing divided by 5: `ttl` 6 s, `loop_wait` 2 s, `retry_timeout` 2 s, safety
    /// margin 1 s, `wal_sender_timeout` 12 s, health checks every 600 ms.
    pub fn simulation() -> Self {
        Timing::scaled(Ratio::new(1, 5))
    }
}

/// This member's own state, as the shell sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Local {
    pub role: LocalRole,
    pub position: Position,
    pub damaged: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
    /// The epoch this agent holds the leader key for, and the send time of its last
    /// successful renewal.
    lease: Option<(u64, u64)>,
}

impl Manager {
    pub fn new(me: &str, timing: Timing) -> Self {
        Manager { me: me.into(), timing, lease: None }
    }

    pub fn timing(&self) -> &Timing {
        &self.timing
    }

    /// A renewal or acquisition of the key for `epoch`, sent at `sent_at_ms`, succeeded.
    pub fn on_lease(&mut self, epoch: u64, sent_at_ms: u64) {
        let sent = match self.lease {
            Some((e, t)) if e == epoch => t.max(sent_at_ms),
            _ => sent_at_ms,
        };
        self.lease = Some((epoch, sent));
    }

    pub fn on_demoted(&mut self) {
        self.lease = None;
    }

    /// When this agent demotes its server at the latest (0: it holds no lease).
    pub fn deadline_ms(&self) -> u64 {
        self.lease.map_or(0, |(_, sent)| (sent + self.timing.ttl_ms).saturating_sub(self.timing.safety_margin_ms))
    }

    pub fn holds_lease(&self, now_ms: u64) -> bool {
        now_ms < self.deadline_ms()
    }

    /// What the agent pets the watchdog with after a renewal: the time left until half the
    /// safety margin before its lease ends. Patroni pets with a fixed `ttl - safety_margin`;
    /// counting from the renewal's send time instead means a slow answer from the DCS cannot
    /// push the reset past the moment the DCS lets another member take the key. The agent
    /// itself demotes half a margin earlier, so the watchdog fires only for a stalled agent.
    pub fn watchdog_timeout_ms(&self, now_ms: u64) -> Option<u64> {
        let (_, sent) = self.lease?;
        let reset_at = (sent + self.timing.ttl_ms).saturating_sub(self.timing.safety_margin_ms / 2);
        Some(reset_at.saturating_sub(now_ms))
    }

    /// Patroni's `/primary` health check: the server is primary of the epoch this agent holds
    /// the key for, and the lease has not run out.
    pub fn healthy_primary(&self, now_ms: u64, server: &LocalRole) -> bool {
        match (self.lease, server) {
            (Some((held, _)), LocalRole::Primary { epoch }) => held == *epoch && self.holds_lease(now_ms),
            _ => false,
        }
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
        if primary_epoch.is_some() && !self.holds_lease(now_ms) {
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
    fn primary_renews_within_its_lease_and_demotes_a_margin_before_it_ends() {
        let mut m = Manager::new("a", Timing::simulation());
        m.on_lease(1, 1_000);
        let me = Local { role: LocalRole::Primary { epoch: 1 }, position: Position::default(), damaged: false };
        let v = view(Some(("a", 1)), Some("a"), None);
        assert_eq!(m.cycle(2_000, Some(&v), &me, &[]), vec![Action::Renew { epoch: 1 }]);
        // ttl 6 s, safety margin 1 s: the agent holds the lease until 6 s after the send.
        assert!(m.holds_lease(5_999));
        assert!(!m.holds_lease(6_000));
        assert!(matches!(m.cycle(6_000, None, &me, &[])[..], [Action::Demote { .. }]));
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

    #[test]
    fn the_watchdog_is_petted_to_fire_between_the_agents_deadline_and_the_lease_end() {
        let mut m = Manager::new("a", Timing::simulation());
        assert_eq!(m.watchdog_timeout_ms(0), None, "no lease, no watchdog");
        m.on_lease(1, 1_000);
        // The renewal answered at 1 400: the reset comes at 1 000 + 6 000 - 500.
        assert_eq!(m.watchdog_timeout_ms(1_400), Some(5_100));
        assert!(m.deadline_ms() < 6_500 && 6_500 < 1_000 + 6_000);
        // An older send time never shortens a lease a newer renewal extended.
        m.on_lease(1, 3_000);
        m.on_lease(1, 2_000);
        assert_eq!(m.deadline_ms(), 8_000);
        // A new epoch starts afresh.
        m.on_lease(2, 2_500);
        assert_eq!(m.deadline_ms(), 7_500);
    }

    #[test]
    fn primary_health_needs_the_key_the_lease_and_a_primary_server_of_that_epoch() {
        // (lease: epoch and send time, now, the server's role, healthy)
        type Case = (Option<(u64, u64)>, u64, LocalRole, bool);
        let cases: &[Case] = &[
            (Some((3, 1_000)), 2_000, LocalRole::Primary { epoch: 3 }, true),
            (Some((3, 1_000)), 6_000, LocalRole::Primary { epoch: 3 }, false),
            (Some((3, 1_000)), 2_000, LocalRole::Primary { epoch: 2 }, false),
            (Some((3, 1_000)), 2_000, LocalRole::Standby { following: None }, false),
            (None, 2_000, LocalRole::Primary { epoch: 3 }, false),
        ];
        for (lease, now, server, healthy) in cases {
            let mut m = Manager::new("a", Timing::simulation());
            if let Some((epoch, sent)) = lease {
                m.on_lease(*epoch, *sent);
            }
            assert_eq!(m.healthy_primary(*now, server), *healthy, "{lease:?} at {now} with {server:?}");
        }
    }

    #[test]
    fn production_orderings_hold_at_every_scale() {
        for scale in [Ratio::ALWAYS, Ratio::new(1, 5), Ratio::new(1, 10)] {
            let t = Timing::scaled(scale);
            assert!(t.wal_sender_timeout_ms > t.ttl_ms, "{t:?}");
            assert!(t.loop_wait_ms + 2 * t.retry_timeout_ms <= t.ttl_ms, "{t:?}");
            assert!(t.safety_margin_ms < t.ttl_ms && t.check_interval_ms < t.ttl_ms, "{t:?}");
        }
        assert_eq!(Timing::production().ttl_ms, 30_000);
    }
}
