//! `steady`: the full collaborative-editor stack across three zones with no faults: 24 editors
//! on 8 documents for 10 simulated minutes (one document replays the concurrent two-agent
//! trace, one the paper trace split among its editors, six take seeded synthetic edits), an
//! admin who signs everyone up, grants and later revokes, and an attacker. Then the ending:
//! every server loses power, recovers, and the verifier reads every document back.
//!
//! Checked ([`crate::stack::check`]): convergence (editors, live rooms, front door, MongoDB),
//! trace content, no acknowledged edit lost, security, liveness.

use crate::scenario::{Built, Scenario};
use crate::stack::spec::StackSpec;

pub static SCENARIO: Scenario = Scenario {
    name: "steady",
    about: "the full editor stack over three zones, no faults: 24 editors on 8 documents for 10 minutes",
    configs: &[(SHORT, "the same stack cut to 3 minutes, 6 editors on 3 documents (the turmoil suite's size)")],
    // The paths a fault-free run must still exercise: sign-up, grants and a revocation, key
    // rotation, snapshots compacted under the lock, documents loaded
    // from MongoDB on a cache miss, a resent update stored once, and every attack refused.
    sweep_must_reach: &[
        "stack.users_signed_up",
        "stack.permissions_granted",
        "stack.permission_revoked",
        "stack.verified_both_ways",
        "auth.key_rotated",
        "durable.snapshot_compacted",
        "durable.duplicate_op",
        "docs.loaded_from_mongo",
        "collab.session_revoked",
        "collab.malformed_frame_closed",
        "collab.refused_401",
        "collab.refused_403",
    ],
    window_probes: &[],
    draw: |_, _| Vec::new(),
    build,
};

/// The config that runs the stack at [`StackSpec::short`] size.
pub const SHORT: &str = "short";

pub fn spec(config: Option<&str>) -> StackSpec {
    match config {
        Some(SHORT) => StackSpec::short(),
        _ => StackSpec::standard(),
    }
}

fn build(seed: u64, config: Option<&str>, schedule: Vec<sim::Scheduled>) -> Built {
    crate::stack::build::build(seed, &spec(config), schedule).0
}
