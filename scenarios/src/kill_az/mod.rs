//! `kill-az`: the `steady` stack, and at a seeded moment a whole zone dies with every node in
//! it (store members, balancer, service instances) and comes back later ([`schedule`]: the zone
//! is one hosting a collaboration instance, so every run moves live documents). The editors
//! live outside the zones: they keep editing; documents owned in the dead zone move to another
//! collaboration instance; the stores fail over; editors connected through the dead zone's
//! balancer reconnect through another.
//!
//! Checked: as `steady` ([`crate::stack::check`]), liveness bounded after the zone returns.
//!
//! `--config ack-before-durable` is unsafe on purpose: the collaboration service acknowledges
//! an edit as soon as its producer accepted it (a `producer.send()` whose future nobody awaits)
//! instead of once the log acknowledged it with `acks=all`, and the producer batches for
//! [`WRITE_BEHIND_LINGER_MS`] (`linger.ms`): a write-behind, edits acknowledged on receipt and
//! written to the log up to 2 s later. When the zone dies, its collaboration instance takes the
//! acknowledged edits still in its producer's buffer with it. Trusting editors (the synthetic
//! documents' users, [`crate::stack::editor`]) whose edits were all acknowledged close the tab
//! when the connection drops and reopen the document from the server, so nobody resends those
//! edits: the lost-edit checker finds acknowledged clocks missing from the durable state the
//! verifier reads back (MongoDB alone, and the front door), as `lost edit`. Edits typed on top
//! of a lost one by an editor who kept its copy cannot be integrated by the server either, so
//! the convergence checker usually reports a `divergence` as well.
//!
//! Why the write-behind rather than acknowledging when the produce request goes out (the first
//! version of this config): then the window between the acknowledgement and durability is one
//! produce round trip (milliseconds), so the dying instance rarely held an acknowledged edit
//! that was not already on a broker, a request already on the wire usually still landed on a
//! surviving leader, and a third of the zone draws killed no collaboration instance at all; it
//! was caught in about 1 seed in 20, and as a divergence. Now every seed whose dying instance
//! owns a synthetic document is caught (seeds 0..12: 12 of 12; see `ci/unsafe-check.sh`).
//!
//! Three more unsafe configs plant faults in the log consumers, one per durable-path promise
//! ([`crate::stack::check::durable_path`]): `commit-before-persist` (offsets committed before
//! the batch is persisted: `offset skipped unpersisted` once a member loses its partitions
//! mid-batch, in about half the seeds: 4 of 0..8, so `ci/unsafe-check.sh` sweeps 0..10),
//! `fresh-op-ids` (operations inserted under a fresh id, not their operation id:
//! `duplicate op` once a record is delivered twice) and `overwrite-snapshot` (compaction
//! rewrites the latest version in place: `snapshot changed`).

pub mod schedule;

use crate::scenario::{Built, Scenario};
use crate::stack::spec::StackSpec;
use system::log_consumer::UnsafeConsumer;

pub use crate::steady::SHORT;
pub const ACK_BEFORE_DURABLE: &str = "ack-before-durable";
pub const COMMIT_BEFORE_PERSIST: &str = "commit-before-persist";
pub const FRESH_OP_IDS: &str = "fresh-op-ids";
pub const OVERWRITE_SNAPSHOT: &str = "overwrite-snapshot";
/// The write-behind's delay under [`ACK_BEFORE_DURABLE`]: y-websocket's and Hocuspocus's
/// persistence hooks debounce their writes by 2 s by default.
pub const WRITE_BEHIND_LINGER_MS: u64 = 2_000;

pub static SCENARIO: Scenario = Scenario {
    name: "kill-az",
    about: "the full editor stack; a whole zone dies at a seeded moment and comes back",
    configs: &[
        (SHORT, "the same stack and schedule cut to 3 minutes, 6 editors on 3 documents (the turmoil suite's size)"),
        (
            ACK_BEFORE_DURABLE,
            "the collaboration service acknowledges an edit once its producer accepted it, and the producer writes \
             behind by a 2 s linger: acknowledged before durable (unsafe)",
        ),
        (COMMIT_BEFORE_PERSIST, "the log consumers commit offsets before persisting the batch (unsafe)"),
        (FRESH_OP_IDS, "the log consumers insert each delivery of an operation under a fresh id (unsafe)"),
        (OVERWRITE_SNAPSHOT, "compaction rewrites the latest snapshot version in place (unsafe)"),
    ],
    // The zone kill and what it must set in motion: balancers drop and re-add instances,
    // sessions move to another collaboration instance and editors resync there, the stores
    // elect or promote, and the durable path (compaction, loads from MongoDB, keys) keeps on.
    sweep_must_reach: &[
        "fault.kill",
        "fault.kill.zone",
        "balancer.instance_removed",
        "balancer.instance_readded",
        "balancer.sessions_moved",
        "stack.editor_reconnected_resynced",
        "stack.editor_reopened_after_saved",
        "stack.verified_both_ways",
        "collab.room_loaded_existing",
        "mongo.election",
        "pg.promoted_standby",
        "kafka.leader_failover",
        "auth.key_rotated",
        "durable.snapshot_compacted",
        "docs.loaded_from_mongo",
    ],
    window_probes: &[],
    draw: |seed, config| {
        let spec = spec(config);
        schedule::draw(seed, &spec.instance_zones(), spec.duration_ms)
    },
    build,
};

pub fn spec(config: Option<&str>) -> StackSpec {
    let mut spec = match config {
        Some(SHORT) => StackSpec::short(),
        _ => StackSpec::standard(),
    };
    if config == Some(ACK_BEFORE_DURABLE) {
        spec.ack_before_durable = true;
        spec.produce_linger_ms = WRITE_BEHIND_LINGER_MS;
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_draw_kills_a_zone_with_a_collaboration_instance() {
        let spec = spec(None);
        let mut killed = std::collections::BTreeSet::new();
        for seed in 0..40 {
            let s = (SCENARIO.draw)(seed, None);
            let sim::Fault::Kill(sim::Target::Zone(zone)) = &s[0].fault else { panic!("{s:?}") };
            assert!(spec.instance_zones().contains(zone), "{zone}");
            killed.insert(zone.clone());
        }
        assert_eq!(killed.len(), spec.instance_zones().len());
    }

    #[test]
    fn the_schedule_scales_with_the_run_and_leaves_editing_after_the_heal() {
        for config in [None, Some(SHORT)] {
            let spec = spec(config);
            for seed in 0..40 {
                let s = (SCENARIO.draw)(seed, config);
                assert!(s[0].at_ms >= spec.duration_ms / 5, "{config:?} {s:?}");
                assert!(s[1].at_ms + spec.duration_ms / 20 <= spec.type_until_ms(), "{config:?} {s:?}");
            }
        }
    }

    #[test]
    fn only_the_unsafe_config_acknowledges_early_and_writes_behind() {
        let safe = spec(None);
        assert!(!safe.ack_before_durable);
        assert_eq!(safe.produce_linger_ms, 0);
        let bad = spec(Some(ACK_BEFORE_DURABLE));
        assert!(bad.ack_before_durable);
        assert_eq!(bad.produce_linger_ms, WRITE_BEHIND_LINGER_MS);
    }
}
