//! The mongo-failover verdict: every invariant checker, then the liveness bounds and metrics.

use sim::Outcome;

use super::history::History;
use super::{elections, fencing, lost_writes, APPS, CONFIG_SET, HEAL_AT_MS, RECOVERY_BOUND_MS, SHARDS};
use crate::scenario::Verdict;

pub fn check(outcome: &Outcome, h: &History) -> Verdict {
    let mut verdict = Verdict::default();
    elections::no_two_primaries_in_a_term(h, &mut verdict);
    lost_writes::acknowledged_writes_survive(h, &mut verdict);
    lost_writes::majority_reads_never_roll_back(h, &mut verdict);
    fencing::tokens_decide_lock_order(h, &mut verdict);
    routers_recover(h, &mut verdict);
    locks_recover(h, &mut verdict);
    elections::election_time(h, &mut verdict);
    let sim_s = outcome.sim_time_ms as f64 / 1000.0;
    verdict.metric("acked_writes_per_sim_s", h.acks.len() as f64 / sim_s);
    verdict.metric("rollbacks", h.rollbacks.len() as f64);
    verdict.metric("rolled_back_entries", h.rollbacks.iter().map(|r| r.3).sum::<usize>() as f64);
    verdict.metric("fence_rejections", h.stale_fence_rejections as f64);
    verdict.metric("lock_grants", h.grants.len() as f64);
    verdict
}

/// Liveness: after the heal, every app's router reaches every shard's primary again within
/// the bound (an acknowledged write proves it).
fn routers_recover(h: &History, verdict: &mut Verdict) {
    let mut worst = 0;
    for app in APPS {
        for set in SHARDS {
            let first =
                h.acks.iter().filter(|a| a.app == app && a.set == set && a.t_ms >= HEAL_AT_MS).map(|a| a.t_ms).min();
            match first {
                Some(t) if t - HEAL_AT_MS <= RECOVERY_BOUND_MS => worst = worst.max(t - HEAL_AT_MS),
                Some(t) => verdict.violation("liveness", format!("{app}'s router first reached {set} {} ms after the heal (bound {RECOVERY_BOUND_MS} ms)",
                    t - HEAL_AT_MS
                )),
                None => verdict.violation("liveness", format!("{app}'s router never reached {set} after the heal at {HEAL_AT_MS} ms ({} failed attempts in all)",
                    h.failed_attempts
                )),
            }
        }
    }
    verdict.metric("router_recovery_ms", worst as f64);
}

/// Liveness of the config servers: some lock is granted after the heal, within the bound.
fn locks_recover(h: &History, verdict: &mut Verdict) {
    let first = h.grants.iter().filter(|g| g.t_ms >= HEAL_AT_MS).map(|g| g.t_ms).min();
    if first.is_none_or(|t| t - HEAL_AT_MS > RECOVERY_BOUND_MS) {
        verdict.violation("liveness", format!("the {CONFIG_SET} replica set granted no lock within {RECOVERY_BOUND_MS} ms of the heal (first: {first:?})"
        ));
    }
}
