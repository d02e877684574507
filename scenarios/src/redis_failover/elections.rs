//! Every Sentinel failover, not only the first: who was elected, by which durable votes, in which
//! epoch, and whether enough Sentinels saw the master down.
//!
//! Sentinel's safety rests on two counts (`sentinel.c`): a failover starts only once `quorum`
//! Sentinels agree the master is down (ODOWN), and only the Sentinel a majority voted for in the
//! failover's epoch carries it out; each Sentinel votes once per epoch and saves its vote before
//! answering. Judged from what each Sentinel itself reports ([`SentinelObserved`]) and, for the
//! votes, from what its `sentinel.conf` holds at the end:
//! - `failover without majority`: a leader started a failover without durable votes
//!   ([`SentinelObserved::Voted`], recorded by each voter once its vote is saved) from
//!   `max(quorum, majority)` Sentinels for it in that epoch;
//! - `failover without quorum`: fewer than `quorum` Sentinels reported the master down
//!   (`+sdown`) in the window in which the failover could have been decided (an ODOWN verdict
//!   uses peer reports up to five ask periods old, and an election may run for the election
//!   timeout after it);
//! - `split election`: two leaders in one epoch, a Sentinel voting for two candidates in one
//!   epoch, two masters announced under one configuration epoch, or a switch under an epoch no
//!   leader was elected in;
//! - `vote not persisted`: a Sentinel released a vote its `sentinel.conf` does not hold at the end
//!   (a restart could then vote again in that epoch).
//!
//! Recorded: how many switches and elections the run had, and the window probes
//! `redis.sentinels_split` (a partition left the master with some Sentinels but not all) and
//! `redis.majority_switch_minority_saw_master` (a leader was elected during such a split while a
//! Sentinel still saw the master).

use std::collections::{BTreeMap, BTreeSet};

use sim::observation::FaultApplied;
use sim::{Fault, Observations, Outcome, Target};
use system::redis::{RedisCluster, SentinelObserved};

use super::checker::{SentinelView, LIST_AT_MOST};
use crate::scenario::{Checker, Verdict};

/// How far back an `+sdown` may support a failover decided at a given moment: ODOWN counts peer
/// reports up to five ask periods (5 s) old, and the election that follows may take up to the
/// election timeout (`min(10 s, failover-timeout)`, 6 s here); plus a second of slack.
pub const SDOWN_SUPPORT_MS: u64 = 12_000;

pub struct ElectionChecker {
    pub redis: RedisCluster,
}

/// One Sentinel's reports, in order.
#[derive(Default)]
struct Reports {
    /// (t, master, down).
    sdown: Vec<(u64, String, bool)>,
    /// (t, candidate, epoch).
    votes: Vec<(u64, String, u64)>,
    halted_ms: Option<u64>,
}

impl Reports {
    /// Whether this Sentinel reported `master` down at some point in `[from_ms, to_ms]` (or was
    /// still down from before).
    fn saw_down(&self, master: &str, from_ms: u64, to_ms: u64) -> bool {
        let mine = self.sdown.iter().filter(|(_, m, _)| m == master);
        let before = mine.clone().rfind(|(t, _, _)| *t < from_ms).is_some_and(|(_, _, down)| *down);
        before || mine.filter(|(t, _, _)| *t >= from_ms && *t <= to_ms).any(|(_, _, down)| *down)
    }

    /// Whether this Sentinel saw `master` up at `t_ms` (not down, not halted).
    fn saw_up(&self, master: &str, t_ms: u64) -> bool {
        let down = self.sdown.iter().rfind(|(t, m, _)| m == master && *t <= t_ms).is_some_and(|s| s.2);
        !down && self.halted_ms.is_none_or(|h| h > t_ms)
    }
}

struct Election {
    t_ms: u64,
    leader: String,
    epoch: u64,
    voters: Vec<String>,
}

impl Checker for ElectionChecker {
    fn check(&self, outcome: &Outcome, verdict: &mut Verdict) {
        let (reports, elections, view, splits) = outcome.observations(|o| {
            let (reports, elections) = self.read(o);
            (
                reports,
                elections,
                SentinelView::read(o, &self.redis),
                self.splits(o, &SentinelView::read(o, &self.redis)),
            )
        });
        let mut no_majority = Vec::new();
        let mut no_quorum = Vec::new();
        let mut split = Vec::new();
        let mut leaders: BTreeMap<u64, &str> = BTreeMap::new();
        for e in &elections {
            if let Some(other) = leaders.insert(e.epoch, &e.leader).filter(|l| *l != e.leader) {
                split.push(format!("{} and {} were both elected leader in epoch {}", other, e.leader, e.epoch));
            }
            self.judge(e, &reports, &mut no_majority, &mut no_quorum);
            let master = self.failed_master(e, &reports);
            let during_split = splits.iter().any(|(from, to)| *from <= e.t_ms && e.t_ms <= *to);
            if during_split && reports.values().any(|r| r.saw_up(&master, e.t_ms)) {
                outcome.world.sometimes("redis.majority_switch_minority_saw_master");
            }
        }
        self.double_votes(&reports, &mut split);
        self.switches(&view, &leaders, &mut split, verdict);
        if !splits.is_empty() {
            outcome.world.sometimes("redis.sentinels_split");
        }
        let unsaved = self.unsaved_votes(outcome, &reports);
        verdict.metric("sentinel_elections", elections.len() as f64);
        verdict.violations_upto("failover without majority", no_majority, LIST_AT_MOST);
        verdict.violations_upto("failover without quorum", no_quorum, LIST_AT_MOST);
        verdict.violations_upto("split election", split, LIST_AT_MOST);
        verdict.violations_upto("vote not persisted", unsaved, LIST_AT_MOST);
    }
}

impl ElectionChecker {
    fn read(&self, o: &Observations) -> (BTreeMap<String, Reports>, Vec<Election>) {
        let mut reports: BTreeMap<String, Reports> =
            self.redis.sentinels().iter().map(|s| (s.clone(), Reports::default())).collect();
        let mut elections = Vec::new();
        for seen in o.of::<SentinelObserved>() {
            let Some(r) = reports.get_mut(seen.node) else { continue };
            match seen.value {
                SentinelObserved::Sdown { master, down } => r.sdown.push((seen.t_ms, master, down)),
                SentinelObserved::Voted { candidate, epoch } => r.votes.push((seen.t_ms, candidate, epoch)),
                SentinelObserved::Halted { .. } => r.halted_ms = r.halted_ms.or(Some(seen.t_ms)),
                SentinelObserved::Elected { epoch, voters } => {
                    elections.push(Election { t_ms: seen.t_ms, leader: seen.node.to_string(), epoch, voters })
                }
                _ => {}
            }
        }
        (reports, elections)
    }

    /// The master `e`'s leader was failing over: the last one it reported down.
    fn failed_master(&self, e: &Election, reports: &BTreeMap<String, Reports>) -> String {
        let mine = reports.get(&e.leader).map(|r| r.sdown.as_slice()).unwrap_or_default();
        mine.iter().rfind(|(t, _, down)| *t <= e.t_ms && *down).map(|s| s.1.clone()).unwrap_or_default()
    }

    fn judge(
        &self,
        e: &Election,
        reports: &BTreeMap<String, Reports>,
        no_majority: &mut Vec<String>,
        no_quorum: &mut Vec<String>,
    ) {
        let needed = self.redis.sentinels_to_fail_over();
        let durable: BTreeSet<&str> = reports
            .iter()
            .filter(|(_, r)| r.votes.iter().any(|(t, c, ep)| *t <= e.t_ms && *c == e.leader && *ep == e.epoch))
            .map(|(s, _)| s.as_str())
            .collect();
        if durable.len() < needed {
            no_majority.push(format!(
                "{} started a failover in epoch {} at {} ms with the saved votes of {:?} (it counted {:?}); \
                 {needed} of {} Sentinels are needed",
                e.leader,
                e.epoch,
                e.t_ms,
                durable,
                e.voters,
                reports.len()
            ));
        }
        let master = self.failed_master(e, reports);
        let from_ms = e.t_ms.saturating_sub(SDOWN_SUPPORT_MS);
        let saw: Vec<&str> =
            reports.iter().filter(|(_, r)| r.saw_down(&master, from_ms, e.t_ms)).map(|(s, _)| s.as_str()).collect();
        if saw.len() < self.redis.quorum() {
            no_quorum.push(format!(
                "{} started a failover of {master:?} in epoch {} at {} ms, but only {saw:?} reported it down \
                 since {from_ms} ms (quorum {})",
                e.leader,
                e.epoch,
                e.t_ms,
                self.redis.quorum()
            ));
        }
    }

    /// A Sentinel voting for two candidates in one epoch.
    fn double_votes(&self, reports: &BTreeMap<String, Reports>, split: &mut Vec<String>) {
        for (s, r) in reports {
            let mut by_epoch: BTreeMap<u64, &str> = BTreeMap::new();
            for (t, c, e) in &r.votes {
                if let Some(first) = by_epoch.insert(*e, c).filter(|f| f != c) {
                    split.push(format!("{s} voted for {first} and, at {t} ms, for {c} in epoch {e}"));
                }
            }
        }
    }

    /// Every configuration epoch names one master, and was won in an election.
    fn switches(&self, view: &SentinelView, leaders: &BTreeMap<u64, &str>, split: &mut Vec<String>, v: &mut Verdict) {
        let mut named: BTreeMap<u64, &str> = BTreeMap::new();
        for s in &view.switches {
            if let Some(other) = named.insert(s.config_epoch, &s.to).filter(|o| *o != s.to) {
                split.push(format!("configuration epoch {} named both {other} and {}", s.config_epoch, s.to));
            }
        }
        for (epoch, to) in &named {
            if !leaders.contains_key(epoch) {
                split.push(format!("{to} was named master under epoch {epoch}, which no Sentinel was elected in"));
            }
        }
        v.metric("sentinel_switches", named.len() as f64);
    }

    /// Votes released that the voter's `sentinel.conf` does not hold at the end.
    fn unsaved_votes(&self, outcome: &Outcome, reports: &BTreeMap<String, Reports>) -> Vec<String> {
        let mut unsaved = Vec::new();
        for (s, r) in reports {
            let Some((t, c, epoch)) = r.votes.iter().max_by_key(|v| v.2) else { continue };
            let saved = self.redis.sentinel_state(&outcome.world, s).map_or(0, |p| p.leader_epoch);
            if saved < *epoch {
                unsaved.push(format!(
                    "{s} voted for {c} in epoch {epoch} at {t} ms; its sentinel.conf holds a vote of epoch {saved}"
                ));
            }
        }
        unsaved
    }

    /// When a partition left the master with some Sentinels but not all: (from, to) ms.
    fn splits(&self, o: &Observations, view: &SentinelView) -> Vec<(u64, u64)> {
        let faults: Vec<(u64, FaultApplied)> = o.faults().map(|f| (f.t_ms, f.value)).collect();
        let mut out = Vec::new();
        for (i, (t, f)) in faults.iter().enumerate() {
            let Fault::Partition { a, b } = &f.fault else { continue };
            let master = view.master_at(*t);
            let (a, b) = (self.side(a, master, &f.nodes), self.side(b, master, &f.nodes));
            let far = if a.iter().any(|n| n == master) {
                &b
            } else if b.iter().any(|n| n == master) {
                &a
            } else {
                continue;
            };
            let cut = self.redis.sentinels().iter().filter(|s| far.contains(s)).count();
            if cut == 0 || cut == self.redis.sentinels().len() {
                continue;
            }
            let healed = faults[i + 1..].iter().find(|(_, g)| matches!(g.fault, Fault::HealNetwork | Fault::HealAll));
            out.push((*t, healed.map_or(u64::MAX, |g| g.0)));
        }
        out
    }

    /// The nodes a partition side named (this cluster's master role resolves to the master).
    fn side(&self, target: &Target, master: &str, touched: &[String]) -> Vec<String> {
        match target {
            Target::Role(r) if *r == self.redis.role_master() => vec![master.to_string()],
            Target::Node(n) => vec![n.clone()],
            Target::Nodes(ns) => ns.clone(),
            _ => touched.to_vec(),
        }
    }
}
