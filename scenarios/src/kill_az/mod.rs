//! `kill-az`: the `steady` stack, and at a seeded moment a whole zone dies with every node in
//! it (store members, balancer, service instances) and comes back later ([`schedule`]). The
//! editors live outside the zones: they keep editing; documents owned in the dead zone move to
//! another collaboration instance; the stores fail over; editors connected through the dead
//! zone's balancer reconnect through another.
//!
//! Checked: as `steady` ([`crate::stack::check`]), liveness bounded after the zone returns.
//!
//! `--config ack-before-durable` is unsafe on purpose: the collaboration service acknowledges
//! an edit when its produce is sent, not when the log acknowledged it. An edit acknowledged just
//! before its instance dies is then lost with it once its (trusting) editors reopen the document
//! from the server; the lost-edit checker catches it as `lost edit`.
//!
//! Three more unsafe configs plant faults in the log consumers, one per durable-path promise
//! ([`crate::stack::check::durable_path`]): `commit-before-persist` (offsets committed before
//! the batch is persisted: `offset skipped unpersisted` once a member loses its partitions
//! mid-batch), `fresh-op-ids` (operations inserted under a fresh id, not their operation id:
//! `duplicate op` once a record is delivered twice) and `overwrite-snapshot` (compaction
//! rewrites the latest version in place: `snapshot changed`).

pub mod schedule;

use crate::scenario::{Built, Scenario};
use crate::stack::spec::StackSpec;
use system::log_consumer::UnsafeConsumer;

pub const ACK_BEFORE_DURABLE: &str = "ack-before-durable";
pub const COMMIT_BEFORE_PERSIST: &str = "commit-before-persist";
pub const FRESH_OP_IDS: &str = "fresh-op-ids";
pub const OVERWRITE_SNAPSHOT: &str = "overwrite-snapshot";

pub static SCENARIO: Scenario = Scenario {
    name: "kill-az",
    about: "the full editor stack; a whole zone dies at a seeded moment and comes back",
    configs: &[
        (ACK_BEFORE_DURABLE, "the collaboration service acknowledges edits when the produce is sent (unsafe)"),
        (COMMIT_BEFORE_PERSIST, "the log consumers commit offsets before persisting the batch (unsafe)"),
        (FRESH_OP_IDS, "the log consumers insert each delivery of an operation under a fresh id (unsafe)"),
        (OVERWRITE_SNAPSHOT, "compaction rewrites the latest snapshot version in place (unsafe)"),
    ],
    sweep_must_reach: &[
        "fault.kill",
        "stack.editor_reconnected_resynced",
        "stack.editor_reopened_after_saved",
        "stack.verified_both_ways",
    ],
    window_probes: &[],
    draw: |seed, _| schedule::draw(seed, &spec(None).zones),
    build,
};

pub fn spec(config: Option<&str>) -> StackSpec {
    let mut spec = StackSpec::standard();
    spec.ack_before_durable = config == Some(ACK_BEFORE_DURABLE);
    spec.unsafe_consumer = match config {
        Some(COMMIT_BEFORE_PERSIST) => UnsafeConsumer::CommitBeforePersist,
        Some(FRESH_OP_IDS) => UnsafeConsumer::FreshOpIds,
        Some(OVERWRITE_SNAPSHOT) => UnsafeConsumer::OverwriteSnapshot,
        _ => UnsafeConsumer::Safe,
    };
    spec
}

fn build(seed: u64, config: Option<&str>, schedule: Vec<sim::Scheduled>) -> Built {
    crate::stack::build::build(seed, &spec(config), schedule).0
}
