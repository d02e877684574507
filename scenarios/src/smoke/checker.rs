//! The smoke invariants: acknowledged appends survive on every replica, replicas converge after
//! the heal, and the log makes progress after the heal.

use std::collections::BTreeSet;

use sim::Outcome;

use super::history::History;
use crate::scenario::Verdict;
use super::{HEAL_AT_MS, REPLICAS, WORKLOAD_STOP_MS};

/// At most this many individual violations are listed per kind; the count says the rest.
const LIST_AT_MOST: usize = 5;

pub fn check(outcome: &Outcome, h: &History) -> Verdict {
    let mut verdict = Verdict::default();
    acked_survive(h, &mut verdict.violations);
    converged(h, &mut verdict.violations);
    match h.acked.iter().find(|(_, t)| *t > HEAL_AT_MS) {
        Some((_, t)) => verdict.metric("recovery_after_heal_ms", (t - HEAL_AT_MS) as f64),
        None => verdict.violation(format!(
            "liveness: no append acknowledged after the heal at {HEAL_AT_MS} ms ({} attempts in all)",
            h.attempts
        )),
    }
    let sim_s = outcome.sim_time_ms as f64 / 1000.0;
    verdict.metric("acked_appends_per_sim_s", h.acked.len() as f64 / sim_s);
    let (available, windows) = availability(h);
    verdict.metric("availability_pct", 100.0 * available as f64 / windows as f64);
    verdict.metric("unavailable_s", (windows - available) as f64);
    verdict
}

/// Seconds of the workload in which at least one append was acknowledged, out of all of them:
/// what a user typing through the faults would have seen.
fn availability(h: &History) -> (u64, u64) {
    let windows = WORKLOAD_STOP_MS / 1000;
    let served: BTreeSet<u64> = h.acked.iter().map(|(_, t)| t / 1000).filter(|w| *w < windows).collect();
    (served.len() as u64, windows)
}

fn acked_survive(h: &History, violations: &mut Vec<String>) {
    for replica in REPLICAS {
        let log: BTreeSet<&str> = h.applied.get(replica).into_iter().flatten().map(String::as_str).collect();
        let missing: Vec<&str> = h.acked.iter().map(|(v, _)| v.as_str()).filter(|v| !log.contains(v)).collect();
        for v in missing.iter().take(LIST_AT_MOST) {
            violations.push(format!("lost acknowledged append: {v} is missing from {replica}"));
        }
        if missing.len() > LIST_AT_MOST {
            violations.push(format!("lost acknowledged append: {} more missing from {replica}", missing.len() - LIST_AT_MOST));
        }
    }
}

fn converged(h: &History, violations: &mut Vec<String>) {
    let logs: Vec<(&str, &[String])> =
        REPLICAS.iter().map(|r| (*r, h.applied.get(*r).map(Vec::as_slice).unwrap_or_default())).collect();
    let (first, reference) = logs[0];
    for (name, log) in &logs[1..] {
        if log != &reference {
            let diverge = reference.iter().zip(log.iter()).position(|(a, b)| a != b);
            violations.push(format!(
                "replicas diverged: {first} has {} entries, {name} has {}, first difference at {:?}",
                reference.len(),
                log.len(),
                diverge
            ));
        }
    }
}
