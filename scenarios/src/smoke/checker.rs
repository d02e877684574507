//! The smoke invariants: acknowledged appends survive on every replica, replicas converge, and
//! the log makes progress after the last fault.
//!
//! Survival and convergence are judged from the truth after the last crash: the run ends with a
//! power loss of every replica and a recovery (see `sim::ending`), and the verifier reads each
//! replica's recovered log ([`RecoveredLog`]). An acknowledgement ([`Acked`]) is the claim; the
//! recovered logs are the evidence.
//!
//! Fault times come from the observations (the last `HealAll`, or else the last fault), so a run
//! given another schedule, or none, is judged by the same rules.

use std::collections::{BTreeMap, BTreeSet};

use sim::Outcome;

use super::history::{Acked, RecoveredLog};
use crate::scenario::{Checker, Verdict};

/// At most this many individual violations are listed per kind; the count says the rest.
const LIST_AT_MOST: usize = 5;

/// Judges a replicated log's replicas against what its clients were told.
pub struct LogChecker {
    pub replicas: Vec<String>,
    /// Clients stop here (the run's ending begins).
    pub workload_stop_ms: u64,
}

/// What the observations say about one run.
struct Seen {
    acked: Vec<(String, u64)>,
    /// Each replica's recovered log, as the verifier read it (missing: never read).
    recovered: BTreeMap<String, RecoveredLog>,
    recovery_from_ms: u64,
}

impl LogChecker {
    fn read(&self, outcome: &Outcome) -> Seen {
        outcome.observations(|o| {
            let acked = o.of::<Acked>().map(|a| (a.value.value, a.t_ms)).collect();
            let recovered = o.of::<RecoveredLog>().map(|r| (r.value.replica.clone(), r.value)).collect();
            let recovery_from_ms = o.last_heal_ms().or(o.last_fault_ms()).unwrap_or(0);
            Seen { acked, recovered, recovery_from_ms }
        })
    }
}

impl Checker for LogChecker {
    fn check(&self, outcome: &Outcome, verdict: &mut Verdict) {
        let seen = self.read(outcome);
        for r in self.replicas.iter().filter(|r| !seen.recovered.contains_key(*r)) {
            verdict.violation("not recovered", format!("{r} could not be read after the final power loss and restart"));
        }
        self.acked_survive(&seen, verdict);
        self.converged(&seen, verdict);
        let from = seen.recovery_from_ms;
        match seen.acked.iter().find(|(_, t)| *t > from) {
            Some((_, t)) => verdict.metric("recovery_after_heal_ms", (t - from) as f64),
            None => verdict.violation("liveness", format!("no append acknowledged after the last fault at {from} ms")),
        }
        let sim_s = outcome.sim_time_ms as f64 / 1000.0;
        verdict.metric("acked_appends_per_sim_s", seen.acked.len() as f64 / sim_s);
        let (available, windows) = self.availability(&seen);
        verdict.metric("availability_pct", 100.0 * available as f64 / windows.max(1) as f64);
        verdict.metric("unavailable_s", (windows - available) as f64);
    }
}

impl LogChecker {
    /// Seconds of the workload in which at least one append was acknowledged, out of all of
    /// them: what a user typing through the faults would have seen.
    fn availability(&self, seen: &Seen) -> (u64, u64) {
        let windows = self.workload_stop_ms / 1000;
        let served: BTreeSet<u64> = seen.acked.iter().map(|(_, t)| t / 1000).filter(|w| *w < windows).collect();
        (served.len() as u64, windows)
    }

    fn acked_survive(&self, seen: &Seen, verdict: &mut Verdict) {
        // An append is lost when any recovered log misses it; counted once for the report.
        let mut lost: BTreeSet<&str> = BTreeSet::new();
        for log in seen.recovered.values() {
            let log: BTreeSet<&str> = log.entries.iter().map(|(_, v)| v.as_str()).collect();
            lost.extend(seen.acked.iter().map(|(v, _)| v.as_str()).filter(|v| !log.contains(v)));
        }
        for (v, t) in &seen.acked {
            if lost.remove(v.as_str()) {
                verdict.data_lost("append", *t);
            }
        }
        for (replica, log) in &seen.recovered {
            let log: BTreeSet<&str> = log.entries.iter().map(|(_, v)| v.as_str()).collect();
            let missing: Vec<String> = seen
                .acked
                .iter()
                .filter(|(v, _)| !log.contains(v.as_str()))
                .map(|(v, _)| format!("{v} is missing from {replica}"))
                .collect();
            verdict.violations_upto("lost acknowledged append", missing, LIST_AT_MOST);
        }
    }

    fn converged(&self, seen: &Seen, verdict: &mut Verdict) {
        let mut logs = seen.recovered.iter();
        let Some((first, reference)) = logs.next() else { return };
        for (name, log) in logs {
            let (log, reference) = (&log.entries, &reference.entries);
            if log != reference {
                let diverge = reference.iter().zip(log.iter()).position(|(a, b)| a != b);
                verdict.violation(
                    "replicas diverged",
                    format!(
                        "{first} has {} entries, {name} has {}, first difference at {diverge:?}",
                        reference.len(),
                        log.len(),
                    ),
                );
            }
        }
    }
}
