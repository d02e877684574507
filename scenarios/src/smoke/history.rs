//! What the smoke workload and verifier observe, for the checker: acknowledged appends (a
//! claim the log made to the client) and, after the run's final power loss and recovery, each
//! replica's applied log as the verifier read it (the evidence).

use serde::{Deserialize, Serialize};
use sim::Observation;

/// The log acknowledged an append to the client.
#[derive(Debug, Serialize, Deserialize)]
pub struct Acked {
    pub value: String,
    pub index: u64,
    pub replica: String,
}

impl Observation for Acked {
    const KIND: &'static str = "smoke.acked";
}

/// A replica's applied log up to the verifier's barrier, read after recovery.
#[derive(Debug, Serialize, Deserialize)]
pub struct RecoveredLog {
    pub replica: String,
    /// The index of the barrier the verifier committed after recovery: every replica's read
    /// covers the log up to it, so the reads are comparable.
    pub upto: u64,
    /// The non-empty entries up to `upto`, as (index, value).
    pub entries: Vec<(u64, String)>,
}

impl Observation for RecoveredLog {
    const KIND: &'static str = "smoke.recovered_log";
}
