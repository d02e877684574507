//! Seeded scenarios: each builds a topology, node mains (stack and workload), a fault schedule
//! and a checker from one seed, and runs on whichever engine the build carries.

pub mod availability;
pub mod bench;
pub mod kafka_partition;
pub mod kill_az;
pub mod ledger;
pub mod mongo_failover;
pub mod postgres_failover;
pub mod postgres_pitr;
pub mod redis_failover;
pub mod registers;
pub mod runner;
pub mod scenario;
pub mod schedule_file;
pub mod shrink;
pub mod smoke;
pub mod stack;
pub mod steady;
pub mod transactions;

pub use runner::{run, RunReport, RunRequest};
pub use scenario::{Built, Checker, Scenario, Verdict, Violation, WindowProbe};

/// Every registered scenario, by name.
pub fn all() -> &'static [&'static Scenario] {
    static ALL: &[&Scenario] = &[
        &smoke::SCENARIO,
        &kafka_partition::SCENARIO,
        &mongo_failover::SCENARIO,
        &postgres_failover::SCENARIO,
        &postgres_pitr::SCENARIO,
        &redis_failover::SCENARIO,
        &steady::SCENARIO,
        &kill_az::SCENARIO,
    ];
    ALL
}

pub fn find(name: &str) -> Option<&'static Scenario> {
    all().iter().copied().find(|s| s.name == name)
}

#[cfg(test)]
mod tests {
    /// The rule: every run ends with a power loss of every server, a restart, recovery and
    /// a quiet period, so every checker can judge what survives. A scenario (or one of its
    /// configs) that forgot its ending would judge page-cache contents instead.
    #[test]
    fn every_scenario_and_config_ends_with_power_loss_and_recovery() {
        for s in super::all() {
            let configs = std::iter::once(None).chain(s.configs.iter().map(|(c, _)| Some(*c)));
            for config in configs {
                let built = (s.build)(0, config, (s.draw)(0, config));
                assert!(built.plan.ending.is_some(), "{} {config:?} has no ending", s.name);
            }
        }
    }
}
