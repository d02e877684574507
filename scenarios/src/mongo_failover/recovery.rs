//! Liveness after the faults: every app's router reaches every shard again (an acknowledged
//! write proves it), and the config servers grant locks again, within a bound.
//!
//! Measured from the last heal, else the last fault, else the start of the run: the schedule
//! that ran decides, not the one a seed drew. A run that ends before the bound has passed is not
//! judged (there was no time to owe recovery in).

use sim::Outcome;
use system::mongo::{LockGranted, MongoCluster, WriteAcked};

use crate::scenario::{Checker, Verdict};

pub struct RecoveryChecker {
    /// The nodes whose routers must recover.
    pub apps: Vec<String>,
    pub cluster: MongoCluster,
    pub bound_ms: u64,
}

impl Checker for RecoveryChecker {
    fn check(&self, outcome: &Outcome, verdict: &mut Verdict) {
        outcome.observations(|o| {
            let from = o.last_heal_ms().or(o.last_fault_ms()).unwrap_or(0);
            if outcome.sim_time_ms < from + self.bound_ms {
                return;
            }
            let acks: Vec<(u64, &str, WriteAcked)> = o.of::<WriteAcked>().map(|a| (a.t_ms, a.node, a.value)).collect();
            let mut worst = 0;
            for app in &self.apps {
                for set in self.cluster.shard_sets() {
                    let first = acks.iter().filter(|(t, n, a)| *t >= from && n == app && a.set == set).map(|a| a.0).next();
                    match first.map(|t| t - from) {
                        Some(after) if after <= self.bound_ms => worst = worst.max(after),
                        Some(after) => verdict.violation(
                            "liveness",
                            format!("{app}'s router first reached {set} {after} ms after {from} ms (bound {} ms)", self.bound_ms),
                        ),
                        None => verdict.violation("liveness", format!("{app}'s router never reached {set} after {from} ms")),
                    }
                }
            }
            verdict.metric("router_recovery_ms", worst as f64);
            let config_set = self.cluster.config_set();
            let first = o.of::<LockGranted>().find(|g| g.t_ms >= from && g.value.set == config_set).map(|g| g.t_ms - from);
            if first.is_none_or(|after| after > self.bound_ms) {
                verdict.violation(
                    "liveness",
                    format!("{config_set} granted no lock within {} ms of {from} ms (first after {first:?} ms)", self.bound_ms),
                );
            }
        });
    }
}
