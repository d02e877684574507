//! What an engine runs: a topology, a main function per node, a fault schedule and a duration.

use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::sync::Arc;

use crate::ctx::NodeCtx;
use crate::fault::Scheduled;
use crate::topology::Topology;
use crate::world::WorldState;

/// A node's main function: called again with a fresh context on every (re)start.
pub type NodeMain = Arc<dyn Fn(NodeCtx) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Wraps an async function as a [`NodeMain`].
pub fn node_main<F, Fut>(f: F) -> NodeMain
where
    F: Fn(NodeCtx) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    Arc::new(move |ctx| Box::pin(f(ctx)))
}

pub struct Plan {
    pub topology: Topology,
    /// One main per topology node, by name.
    pub mains: Vec<(String, NodeMain)>,
    /// Faults in the order they fire; ties fire in list order.
    pub schedule: Vec<Scheduled>,
    pub duration_ms: u64,
}

impl Plan {
    pub fn new(topology: Topology, duration_ms: u64) -> Self {
        Plan { topology, mains: Vec::new(), schedule: Vec::new(), duration_ms }
    }

    pub fn node(&mut self, name: &str, main: NodeMain) -> &mut Self {
        assert!(self.topology.get(name).is_some(), "node {name} has no place in the topology");
        self.mains.push((name.to_string(), main));
        self
    }

    pub fn at(&mut self, at_ms: u64, fault: crate::fault::Fault) -> &mut Self {
        self.schedule.push(Scheduled { at_ms, fault });
        self
    }

    pub(crate) fn sorted_schedule(&self) -> Vec<Scheduled> {
        let mut s = self.schedule.clone();
        s.sort_by_key(|f| f.at_ms);
        s
    }
}

/// How to run a plan.
#[derive(Default)]
pub struct RunOptions {
    pub seed: u64,
    /// Write every trace event as JSON Lines here.
    pub trace_sink: Option<Box<dyn Write + Send>>,
    /// Keep the events in memory for checkers that read the trace.
    pub keep_events: bool,
}

impl RunOptions {
    /// The trace this run records into.
    pub(crate) fn trace(&mut self) -> crate::trace::Trace {
        let mut trace = crate::trace::Trace::new();
        if let Some(sink) = self.trace_sink.take() {
            trace = trace.with_sink(sink);
        }
        if self.keep_events {
            trace = trace.keeping_events();
        }
        trace
    }
}

/// What a finished run leaves for the checkers.
pub struct Outcome {
    pub world: Arc<WorldState>,
    pub sim_time_ms: u64,
}

impl Outcome {
    pub fn trace_hash(&self) -> String {
        self.world.with_trace(|t| t.hash_hex())
    }
    /// Reads the run's observations (faults included).
    pub fn observations<R>(&self, f: impl FnOnce(&crate::observation::Observations) -> R) -> R {
        self.world.with_observations(f)
    }
    pub fn events(&self) -> u64 {
        self.world.with_trace(|t| t.events())
    }
}
