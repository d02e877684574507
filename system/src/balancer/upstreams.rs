//! Everything a balancer decides about its upstreams, sans-IO, in one place the shell locks:
//! the health table, a circuit breaker per instance, round-robin positions, and the live
//! WebSocket sessions. The shell feeds it probe results and connection outcomes, and asks it
//! where a request goes; it answers with instance names and with the sessions to close.

use std::collections::{BTreeMap, BTreeSet};

use super::breaker::{self, Breaker, BreakerConfig, Outcome};
use super::health::{Change, HealthTable, Probe};
use super::rendezvous;
use super::route::Pool;
use super::sessions::{SessionId, Sessions};

/// The instances of each pool, as configured.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pools {
    pub auth: Vec<String>,
    pub docs: Vec<String>,
    pub collab: Vec<String>,
}

impl Pools {
    pub fn members(&self, pool: Pool) -> &[String] {
        match pool {
            Pool::Auth => &self.auth,
            Pool::Docs => &self.docs,
            Pool::Collab => &self.collab,
        }
    }

    /// Every (pool, instance), each instance once (an instance listed in two pools is probed
    /// and judged once, under the first).
    pub fn all(&self) -> Vec<(Pool, String)> {
        let mut seen = BTreeSet::new();
        [Pool::Auth, Pool::Docs, Pool::Collab]
            .into_iter()
            .flat_map(|p| self.members(p).iter().map(move |i| (p, i.clone())))
            .filter(|(_, i)| seen.insert(i.clone()))
            .collect()
    }
}

/// What a probe result changed.
#[derive(Debug, Default)]
pub struct Probed<H> {
    pub change: Option<Change>,
    /// Sessions whose instance no longer owns their document, removed from the registry: the
    /// shell closes each through its handle.
    pub moved: Vec<(SessionId, H)>,
}

#[derive(Debug)]
pub struct Upstreams<H> {
    pools: Pools,
    health: HealthTable,
    breakers: BTreeMap<String, Breaker>,
    next: BTreeMap<Pool, usize>,
    sessions: Sessions<H>,
}

impl<H> Upstreams<H> {
    pub fn new(pools: Pools, fail_after: u32, recover_after: u32, breaker: BreakerConfig) -> Self {
        let all = pools.all();
        let health = HealthTable::new(all.iter().map(|(_, i)| i.clone()), fail_after, recover_after);
        let breakers = all.into_iter().map(|(_, i)| (i, Breaker::new(breaker))).collect();
        Upstreams { pools, health, breakers, next: BTreeMap::new(), sessions: Sessions::default() }
    }

    pub fn pools(&self) -> &Pools {
        &self.pools
    }

    pub fn health(&self) -> &HealthTable {
        &self.health
    }

    /// Steps the health table with a probe of `instance`. A change of the collaboration pool's
    /// healthy set moves documents: the sessions left on a non-owner are handed back to close.
    /// An instance entering rotation starts with a fresh breaker (the probe is newer evidence).
    pub fn probe(&mut self, now_ms: u64, instance: &str, probe: Probe) -> Probed<H> {
        let change = self.health.step(now_ms, instance, probe);
        let mut moved = Vec::new();
        if let Some(change) = &change {
            if !matches!(change, Change::Removed { .. }) {
                if let Some(b) = self.breakers.get_mut(instance) {
                    *b = Breaker::new(b.config());
                }
            }
            if self.pools.collab.iter().any(|c| c == instance) {
                let healthy: Vec<&str> = self.health.healthy(&self.pools.collab).collect();
                for id in self.sessions.misplaced(&healthy) {
                    let session = self.sessions.close(id).expect("misplaced sessions are live");
                    moved.push((id, session.handle));
                }
            }
        }
        Probed { change, moved }
    }

    /// The instance a new request for `pool` goes to: the next healthy one in round-robin order
    /// whose breaker lets an attempt through, skipping those in `tried` (this request's earlier
    /// attempts). The caller must report the attempt with [`Upstreams::attempted`].
    pub fn pick(&mut self, now_ms: u64, pool: Pool, tried: &BTreeSet<String>) -> Option<String> {
        let candidates: Vec<&str> = self
            .health
            .healthy(self.pools.members(pool))
            .filter(|i| !tried.contains(*i))
            .filter(|i| self.breakers.get(*i).is_some_and(|b| b.would_allow(now_ms)))
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let next = self.next.entry(pool).or_default();
        let chosen = candidates[*next % candidates.len()].to_string();
        *next = next.wrapping_add(1);
        let allowed = self.breakers.get_mut(&chosen).is_some_and(|b| b.allow(now_ms));
        debug_assert!(allowed, "would_allow and allow agree at one instant");
        Some(chosen)
    }

    /// The owner of `doc` among the healthy collaboration instances: the only instance a
    /// session for it may go to (another would hold a second live copy of the room). None when
    /// no collaboration instance is healthy, or the owner's breaker is open.
    pub fn owner(&mut self, now_ms: u64, doc: &str) -> Option<String> {
        let owner = rendezvous::owner(doc, self.health.healthy(&self.pools.collab))?.to_string();
        self.breakers.get_mut(&owner).is_some_and(|b| b.allow(now_ms)).then_some(owner)
    }

    /// Reports how an attempt to reach `instance` went.
    pub fn attempted(&mut self, now_ms: u64, instance: &str, outcome: Outcome) -> Option<breaker::Transition> {
        self.breakers.get_mut(instance)?.record(now_ms, outcome)
    }

    /// Registers a session for `doc` on `instance` if `instance` still owns `doc` (the healthy
    /// set may have changed while the connection was being made); None if it no longer does.
    pub fn open_session(&mut self, now_ms: u64, doc: &str, instance: &str, handle: H) -> Option<SessionId> {
        let owner = rendezvous::owner(doc, self.health.healthy(&self.pools.collab))?;
        (owner == instance).then(|| self.sessions.open(doc, instance, now_ms, handle))
    }

    /// Forgets a session that ended.
    pub fn close_session(&mut self, id: SessionId) {
        self.sessions.close(id);
    }

    pub fn sessions(&self) -> &Sessions<H> {
        &self.sessions
    }
}

#[cfg(test)]
mod tests {
    use super::Outcome::{Failure, Success};
    use super::Probe::{Failed, Passed};
    use super::*;

    fn pools() -> Pools {
        let names = |p: &str| (1..=3).map(|i| format!("{p}-{i}")).collect();
        Pools { auth: names("auth"), docs: names("docs"), collab: names("collab") }
    }

    fn upstreams() -> Upstreams<u32> {
        let mut u = Upstreams::new(pools(), 2, 2, BreakerConfig { failure_threshold: 2, open_ms: 1_000 });
        for (_, i) in u.pools().all() {
            u.probe(0, &i, Passed);
        }
        u
    }

    #[test]
    fn requests_go_round_robin_over_healthy_instances_and_skip_tried_ones() {
        let mut u = upstreams();
        let none = BTreeSet::new();
        let picks: Vec<String> = (0..6).map(|_| u.pick(0, Pool::Auth, &none).unwrap()).collect();
        assert_eq!(picks, ["auth-1", "auth-2", "auth-3", "auth-1", "auth-2", "auth-3"]);
        u.probe(10, "auth-2", Failed);
        u.probe(20, "auth-2", Failed);
        assert!(!u.health().in_rotation("auth-2"));
        let picks: BTreeSet<String> = (0..4).map(|_| u.pick(30, Pool::Auth, &none).unwrap()).collect();
        assert_eq!(picks, BTreeSet::from(["auth-1".into(), "auth-3".into()]));
        let tried = BTreeSet::from(["auth-1".to_string(), "auth-3".to_string()]);
        assert_eq!(u.pick(30, Pool::Auth, &tried), None, "every healthy instance was tried");
        assert_eq!(u.pick(30, Pool::Docs, &tried).as_deref(), Some("docs-1"), "pools rotate apart");
    }

    #[test]
    fn an_open_breaker_takes_an_instance_out_before_its_probes_fail() {
        let mut u = upstreams();
        let none = BTreeSet::new();
        u.attempted(0, "docs-1", Failure);
        assert!(u.attempted(1, "docs-1", Failure).is_some(), "opened");
        let picks: BTreeSet<String> = (0..4).map(|_| u.pick(2, Pool::Docs, &none).unwrap()).collect();
        assert!(!picks.contains("docs-1"), "{picks:?}");
        assert!(u.health().in_rotation("docs-1"), "the health table still lists it");
        // After open_ms one trial goes through; its success closes the breaker.
        let picks: Vec<String> = (0..3).map(|_| u.pick(1_001, Pool::Docs, &none).unwrap()).collect();
        assert_eq!(picks.iter().filter(|p| *p == "docs-1").count(), 1, "{picks:?}");
        u.attempted(1_002, "docs-1", Success);
        let picks: Vec<String> = (0..3).map(|_| u.pick(1_003, Pool::Docs, &none).unwrap()).collect();
        assert_eq!(picks.iter().filter(|p| *p == "docs-1").count(), 1, "{picks:?}");
    }

    #[test]
    fn sessions_move_when_their_owner_leaves_and_when_it_returns() {
        let mut u = upstreams();
        let docs: Vec<String> = (0..30).map(|i| format!("t/d{i}")).collect();
        let mut ids = BTreeMap::new();
        for (n, d) in docs.iter().enumerate() {
            let owner = u.owner(0, d).unwrap();
            let id = u.open_session(0, d, &owner, n as u32).unwrap();
            ids.insert(id, owner);
        }
        assert!(u.open_session(0, &docs[0], "collab-9", 99).is_none(), "not the owner");
        assert!(u.probe(10, "collab-2", Failed).moved.is_empty(), "one failed probe moves nothing");
        let out = u.probe(20, "collab-2", Failed);
        assert!(matches!(out.change, Some(Change::Removed { .. })));
        let on_2: Vec<SessionId> = ids.iter().filter(|(_, o)| *o == "collab-2").map(|(i, _)| *i).collect();
        assert!(!on_2.is_empty());
        assert_eq!(out.moved.iter().map(|(id, _)| *id).collect::<Vec<_>>(), on_2);
        assert_eq!(u.sessions().len(), 30 - on_2.len());
        // Editors reconnect to the new owners.
        for (id, _) in &out.moved {
            let doc = &docs[*id as usize];
            let owner = u.owner(30, doc).unwrap();
            assert_ne!(owner, "collab-2");
            u.open_session(30, doc, &owner, 0).unwrap();
        }
        // collab-2 returns after recover_after passes: its documents move back.
        assert!(u.probe(40, "collab-2", Passed).moved.is_empty());
        let back = u.probe(50, "collab-2", Passed);
        assert!(matches!(back.change, Some(Change::Readded { .. })));
        assert_eq!(back.moved.len(), on_2.len());
        // An auth instance's change never touches sessions.
        u.probe(60, "auth-1", Failed);
        assert!(u.probe(70, "auth-1", Failed).moved.is_empty());
    }

    #[test]
    fn no_owner_without_a_healthy_collab_instance_or_with_its_breaker_open() {
        let mut u = upstreams();
        let owner = u.owner(0, "t/doc").unwrap();
        u.attempted(0, &owner, Failure);
        u.attempted(0, &owner, Failure);
        assert_eq!(u.owner(1, "t/doc"), None, "the owner's breaker is open: no fallback to another");
        let mut fresh = Upstreams::<()>::new(pools(), 2, 2, BreakerConfig::default());
        assert_eq!(fresh.owner(0, "t/doc"), None, "nothing probed yet");
    }

    #[test]
    fn two_balancers_fed_the_same_probes_pick_the_same_owners() {
        let (mut one, mut two) = (upstreams(), upstreams());
        for u in [&mut one, &mut two] {
            u.probe(10, "collab-3", Failed);
            u.probe(20, "collab-3", Failed);
        }
        for i in 0..50 {
            let doc = format!("acme/doc-{i}");
            assert_eq!(one.owner(30, &doc), two.owner(30, &doc), "{doc}");
        }
    }
}
