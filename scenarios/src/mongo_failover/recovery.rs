//! Liveness after the faults: every app's router reaches every shard again (an acknowledged
//! write proves it), and the config servers grant locks again, within a bound.
//!
//! Measured from the last heal, else the last fault, else the start of the run: the schedule
//! that ran decides, not the one a seed drew. A run that ends before the bound has passed is not
//! judged (there was no time to owe recovery in); with the run's ending, the run ends for this
//! purpose when the clients stop.

use sim::observation::Observations;
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
            // The apps write until the clients stop (the run's ending), else until the end.
            let writing_until = o.ending_started_ms().unwrap_or(outcome.sim_time_ms);
            if writing_until >= from + self.bound_ms {
                self.routers_recover(o, from, verdict);
                self.locks_recover(o, from, verdict);
            }
        });
    }
}

impl RecoveryChecker {
    /// Every app's first acknowledgement from every shard after `from` comes within the bound.
    fn routers_recover(&self, o: &Observations, from: u64, verdict: &mut Verdict) {
        let acks: Vec<(u64, &str, WriteAcked)> =
            o.of::<WriteAcked>().filter(|a| a.t_ms >= from).map(|a| (a.t_ms, a.node, a.value)).collect();
        let mut worst = 0;
        for app in &self.apps {
            for set in self.cluster.shard_sets() {
                let first = acks.iter().find(|(_, n, a)| n == app && a.set == set).map(|(t, _, _)| t - from);
                let bound = self.bound_ms;
                match first {
                    Some(after) if after <= bound => worst = worst.max(after),
                    Some(after) => verdict.violation(
                        "liveness",
                        format!(
                            "{app}'s router first reached {set} {after} ms after {} (bound {bound} ms)",
                            since(from)
                        ),
                    ),
                    None => verdict
                        .violation("liveness", format!("{app}'s router never reached {set} after {}", since(from))),
                }
            }
        }
        verdict.metric("router_recovery_ms", worst as f64);
    }

    /// The config servers grant some lock within the bound after `from`.
    fn locks_recover(&self, o: &Observations, from: u64, verdict: &mut Verdict) {
        let config_set = self.cluster.config_set();
        let first = o.of::<LockGranted>().find(|g| g.t_ms >= from && g.value.set == config_set).map(|g| g.t_ms - from);
        if first.is_none_or(|after| after > self.bound_ms) {
            let (bound, first) = (self.bound_ms, first.map_or("never".into(), |t| format!("after {t} ms")));
            let message = format!("{config_set} granted no lock within {bound} ms of {} (first: {first})", since(from));
            verdict.violation("liveness", message);
        }
    }
}

/// What recovery is measured from, for messages.
fn since(from_ms: u64) -> String {
    format!("the last heal or fault at {from_ms} ms")
}
