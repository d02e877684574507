//! What an engine runs: a topology, a main function per node, a fault schedule, a duration and
//! (optionally) the run's [`Ending`].
//!
//! Nodes come in three kinds. A server ([`Plan::node`]: a store member, a sentinel, a proxy) is
//! restarted by `HealAll` and by the ending, and loses power in the ending. A client
//! ([`Plan::client`]: a workload) is stopped for good when the ending begins. A verifier
//! ([`Plan::verifier`]) starts only when the ending's recovery starts, to read the final state.

use std::collections::BTreeSet;
use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::sync::Arc;

use crate::ctx::NodeCtx;
use crate::ending::Ending;
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
    /// One main per server and client node, by name, started with the run.
    pub mains: Vec<(String, NodeMain)>,
    /// Which of `mains` are clients (stopped for good when the ending begins).
    pub clients: BTreeSet<String>,
    /// Nodes started only when the ending's recovery starts.
    pub verifiers: Vec<(String, NodeMain)>,
    /// Faults in the order they fire; ties fire in list order.
    pub schedule: Vec<Scheduled>,
    /// The workload's part of the run: the schedule runs until here, then the ending (if any).
    pub duration_ms: u64,
    /// How the run ends after `duration_ms`; `None` stops every node there, crashing nothing.
    pub ending: Option<Ending>,
}

impl Plan {
    pub fn new(topology: Topology, duration_ms: u64) -> Self {
        Plan {
            topology,
            mains: Vec::new(),
            clients: BTreeSet::new(),
            verifiers: Vec::new(),
            schedule: Vec::new(),
            duration_ms,
            ending: None,
        }
    }

    /// Adds a server: started with the run, restarted by `HealAll`, power-lost in the ending.
    pub fn node(&mut self, name: &str, main: NodeMain) -> &mut Self {
        self.check_new(name);
        self.mains.push((name.to_string(), main));
        self
    }

    /// Adds a client (a workload): started with the run like a server, stopped for good at
    /// `duration_ms` when the plan has an ending. Without an ending it behaves as a server.
    pub fn client(&mut self, name: &str, main: NodeMain) -> &mut Self {
        self.node(name, main);
        self.clients.insert(name.to_string());
        self
    }

    /// Adds a verifier: started once, when the ending's recovery starts (the plan needs an
    /// ending). Faults before then do not start it.
    pub fn verifier(&mut self, name: &str, main: NodeMain) -> &mut Self {
        self.check_new(name);
        self.verifiers.push((name.to_string(), main));
        self
    }

    fn check_new(&self, name: &str) {
        assert!(self.topology.get(name).is_some(), "node {name} has no place in the topology");
        let taken = self.mains.iter().chain(&self.verifiers).any(|(n, _)| n == name);
        assert!(!taken, "node {name} has two mains");
    }

    pub fn at(&mut self, at_ms: u64, fault: crate::fault::Fault) -> &mut Self {
        self.schedule.push(Scheduled { at_ms, fault });
        self
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
