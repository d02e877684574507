//! The simulated world: the seams node code runs against (net, disk, clock, rng), the topology
//! and fault model, the trace, and the two engines (madsim and turmoil) that run a plan.
//!
//! Data flows one way: a scenario builds a [`plan::Plan`] (topology, node mains, fault
//! schedule), an engine runs it in a [`world::WorldState`], nodes record [`trace`] events, and the
//! scenario's checkers read the outcome.

pub mod clock;
pub mod ctx;
pub mod disk;
pub mod ending;
pub mod engine;
pub mod fault;
pub mod link;
pub mod log;
pub mod net;
pub mod observation;
pub mod plan;
pub mod ratio;
pub mod rng;
pub mod timer;
pub mod topology;
pub mod trace;
pub mod world;

pub use ctx::NodeCtx;
pub use ending::{Ending, EndingPhase, EndingStep};
pub use engine::Engine;
pub use fault::{Fault, Scheduled, Target};
pub use observation::{Observation, Observations};
pub use plan::{node_main, NodeMain, Outcome, Plan, RunOptions};
pub use topology::Topology;
pub use world::WorldState;
