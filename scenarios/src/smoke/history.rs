//! What the smoke workload and replicas leave behind for the checker.

use std::collections::BTreeMap;

#[derive(Debug, Default)]
pub struct History {
    /// Appends the log acknowledged, with the simulated time of the acknowledgement.
    pub acked: Vec<(String, u64)>,
    pub attempts: u64,
    /// Each replica's applied log (value per index) in its current life.
    pub applied: BTreeMap<String, Vec<String>>,
}
