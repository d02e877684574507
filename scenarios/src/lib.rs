//! Seeded scenarios: each builds a topology, node mains (stack and workload), a fault schedule
//! and a checker from one seed, and runs on whichever engine the build carries.

pub mod bench;
pub mod kafka_partition;
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
    ];
    ALL
}

pub fn find(name: &str) -> Option<&'static Scenario> {
    all().iter().copied().find(|s| s.name == name)
}
