//! Sentinel liveness: a fault that cuts the master off from the Sentinels for long enough is
//! followed, within a bound, by a failover to another node.
//!
//! The faults are read from the observations ([`sim::Observations::faults`]), with the nodes each
//! resolved to when it fired, and judged against the master the Sentinels named at that moment: a
//! kill, pause or isolation of that node, or a partition that leaves it on one side and enough
//! Sentinels to fail over on the other. A fault undone before the bound has passed (a short pause,
//! a restart, a partition healed early) owes nothing, and a run with no fault owes no failover.
//!
//! With a Sentinel down (it halted on a failed `sentinel.conf` save), the two left must both vote
//! for one candidate: when they start together and split their votes, neither retries before
//! twice `failover-timeout` (Redis's behaviour), so such a fault is held to the longer
//! `degraded_bound_ms`, and owes a failover only if it lasts that long.

use sim::observation::FaultApplied;
use sim::{Fault, Outcome, Target, WorldState};
use system::redis::{RedisCluster, SentinelObserved};

use super::checker::SentinelView;
use crate::scenario::{Checker, Verdict};

pub struct FailoverChecker {
    pub redis: RedisCluster,
    /// A master cut off for this long must have been replaced within this long of the fault.
    pub failover_bound_ms: u64,
    /// The bound while some Sentinel of the cluster is halted.
    pub degraded_bound_ms: u64,
}

/// A fault that owed a failover.
struct Owed {
    t_ms: u64,
    bound_ms: u64,
    kind: &'static str,
    master: String,
    epoch: u64,
}

impl Checker for FailoverChecker {
    fn check(&self, outcome: &Outcome, verdict: &mut Verdict) {
        let (owed, view) = outcome.observations(|o| {
            let faults: Vec<(u64, FaultApplied)> = o.faults().map(|f| (f.t_ms, f.value)).collect();
            let view = SentinelView::read(o, &self.redis);
            let halted: Vec<u64> = o
                .of::<SentinelObserved>()
                .filter(|s| self.redis.sentinels().iter().any(|n| n == s.node))
                .filter_map(|s| matches!(s.value, SentinelObserved::Halted { .. }).then_some(s.t_ms))
                .collect();
            (self.owed(&faults, &view, &halted, &outcome.world, outcome.sim_time_ms), view)
        });
        let mut measured = false;
        for fault in owed {
            let deadline = fault.t_ms + fault.bound_ms;
            let switch = view.switches.iter().find(|s| {
                s.t_ms > fault.t_ms && s.t_ms <= deadline && s.config_epoch > fault.epoch && s.to != fault.master
            });
            match switch {
                Some(s) if !measured => {
                    measured = true;
                    verdict.metric("sentinel_failover_ms", (s.t_ms - fault.t_ms) as f64);
                }
                Some(_) => {}
                None => verdict.violation(
                    "sentinel failover",
                    format!(
                        "no Sentinel moved off {} within {} ms of its {} at {} ms",
                        fault.master, fault.bound_ms, fault.kind, fault.t_ms
                    ),
                ),
            }
        }
    }
}

impl FailoverChecker {
    /// The faults that hit the master the Sentinels named when they fired and lasted at least
    /// the bound (or until the end of the run, if that is at least the bound).
    fn owed(
        &self,
        faults: &[(u64, FaultApplied)],
        view: &SentinelView,
        halted: &[u64],
        world: &WorldState,
        end_ms: u64,
    ) -> Vec<Owed> {
        let mut owed = Vec::new();
        for (i, (t_ms, f)) in faults.iter().enumerate() {
            let (master, epoch, _) = view.at(*t_ms);
            if !self.hits(f, master, world) {
                continue;
            }
            let undone_ms = faults[i + 1..].iter().find(|(_, g)| undoes(&f.fault, g, master)).map_or(end_ms, |g| g.0);
            let degraded = halted.iter().any(|h| *h <= t_ms + self.failover_bound_ms);
            let bound_ms = if degraded { self.degraded_bound_ms } else { self.failover_bound_ms };
            if undone_ms.saturating_sub(*t_ms) >= bound_ms {
                owed.push(Owed { t_ms: *t_ms, bound_ms, kind: f.fault.kind(), master: master.to_string(), epoch });
            }
        }
        owed
    }

    /// Whether `f` silenced `master` for the Sentinels.
    fn hits(&self, f: &FaultApplied, master: &str, world: &WorldState) -> bool {
        let touched = f.nodes.iter().any(|n| n == master);
        match &f.fault {
            Fault::Kill(_) | Fault::Pause(_) | Fault::Isolate(_) => touched,
            Fault::Partition { a, b } | Fault::PartitionOneWay { from: a, to: b } => {
                let side = |t| self.side(t, master, &f.nodes, world);
                match (side(a), side(b)) {
                    (Some(a), Some(b)) => self.separates(&a, &b, master) || self.separates(&b, &a, master),
                    _ => touched,
                }
            }
            _ => false,
        }
    }

    /// The nodes a partition side names, if they can be told after the fact (this cluster's
    /// master and replica roles can: the replicas are the members it touched other than the
    /// master; another role cannot).
    fn side(&self, target: &Target, master: &str, touched: &[String], world: &WorldState) -> Option<Vec<String>> {
        match target {
            Target::Role(r) if *r == self.redis.role_master() => Some(vec![master.to_string()]),
            Target::Role(r) if *r == self.redis.role_replica() => {
                Some(touched.iter().filter(|n| *n != master && self.redis.nodes().contains(n)).cloned().collect())
            }
            Target::Role(_) => None,
            other => Some(world.resolve(other)),
        }
    }

    /// `master` is on `ours` and enough Sentinels to fail it over are on `theirs`.
    fn separates(&self, ours: &[String], theirs: &[String], master: &str) -> bool {
        let cut_sentinels = self.redis.sentinels().iter().filter(|s| theirs.contains(s) && !ours.contains(s)).count();
        ours.iter().any(|n| n == master) && cut_sentinels >= self.redis.sentinels_to_fail_over()
    }
}

/// Whether the later fault `g` ends the outage of `master` that `f` began.
fn undoes(f: &Fault, g: &FaultApplied, master: &str) -> bool {
    let touched = g.nodes.iter().any(|n| n == master);
    match (f, &g.fault) {
        (_, Fault::HealAll) => true,
        (Fault::Kill(_), Fault::Restart(_)) => touched,
        (Fault::Pause(_), Fault::Resume(_) | Fault::Restart(_)) => touched,
        (Fault::Isolate(_) | Fault::Partition { .. } | Fault::PartitionOneWay { .. }, Fault::HealNetwork) => true,
        _ => false,
    }
}
