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

pub mod schedule;

use crate::scenario::{Built, Scenario};
use crate::stack::spec::StackSpec;

pub const ACK_BEFORE_DURABLE: &str = "ack-before-durable";

pub static SCENARIO: Scenario = Scenario {
    name: "kill-az",
    about: "the full editor stack; a whole zone dies at a seeded moment and comes back",
    configs: &[(ACK_BEFORE_DURABLE, "the collaboration service acknowledges edits when the produce is sent (unsafe)")],
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
    spec
}

fn build(seed: u64, config: Option<&str>, schedule: Vec<sim::Scheduled>) -> Built {
    crate::stack::build::build(seed, &spec(config), schedule).0
}
