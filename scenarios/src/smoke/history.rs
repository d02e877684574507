//! What the smoke workload and replicas observe, for the checker: acknowledged appends and each
//! replica's applied entries (a replica's applied log starts empty in every life).

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

/// What a replica did to its applied log: a new life starts it empty (entries are re-applied
/// as they commit again), and each committed entry is appended.
#[derive(Debug, Serialize, Deserialize)]
pub enum ReplicaApplied {
    Started,
    Entry { value: String },
}

impl Observation for ReplicaApplied {
    const KIND: &'static str = "smoke.applied";
}
