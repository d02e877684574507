//! Seeded scenarios: each builds a topology, node mains (stack and workload), a fault schedule
//! and a checker from one seed, and runs on whichever engine the build carries.

pub mod bench;
pub mod ledger;
pub mod runner;
pub mod scenario;
pub mod smoke;

pub use runner::{run, RunReport, RunRequest};
pub use scenario::{Built, Scenario, Verdict};

/// Every registered scenario, by name.
pub fn all() -> &'static [&'static Scenario] {
    static ALL: &[&Scenario] = &[
        &smoke::SCENARIO,
    ];
    ALL
}

pub fn find(name: &str) -> Option<&'static Scenario> {
    all().iter().copied().find(|s| s.name == name)
}
