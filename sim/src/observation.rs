//! Typed observations: what nodes tell the checkers, as one stream.
//!
//! A node records an observation through its context ([`crate::NodeCtx::observe`]); the world
//! writes it into the trace (so the trace hash covers it and a trace file shows it) and keeps it
//! for the checkers, which read it back by type with [`Observations::of`]. Every store, service
//! and workload uses this one mechanism, so a checker written for one scenario works unchanged in
//! any scenario that runs the nodes it watches. The world's own faults are observations too
//! ([`FaultApplied`]): checkers learn fault times from what happened, never from the schedule a
//! seed drew, so a run given another schedule (or a shrunk one) is judged by the same rules.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use sim::observation::{Observation, Observations};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Promoted { epoch: u64 }
//! impl Observation for Promoted { const KIND: &'static str = "doc.promoted"; }
//!
//! let mut seen = Observations::default();
//! seen.push(1_500, "pg-1", Promoted::KIND, serde_json::to_value(Promoted { epoch: 2 }).unwrap());
//! let promotions: Vec<_> = seen.of::<Promoted>().collect();
//! assert_eq!((promotions[0].t_ms, promotions[0].node, promotions[0].value.epoch), (1_500, "pg-1", 2));
//! ```

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::fault::Fault;
use crate::trace::Event;

/// A typed fact a node reports. `KIND` names it in the trace; it must be unique per type (prefix
/// it with the store or service: `pg.promoted`, `redis.write_acked`).
pub trait Observation: Serialize + DeserializeOwned + 'static {
    const KIND: &'static str;
}

/// One observation read back: when, where, what.
#[derive(Clone, Debug)]
pub struct Seen<'a, T> {
    pub t_ms: u64,
    pub node: &'a str,
    pub value: T,
}

/// A fault the world applied, and the nodes it touched (resolved when it fired).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FaultApplied {
    pub fault: Fault,
    pub nodes: Vec<String>,
}

impl Observation for FaultApplied {
    const KIND: &'static str = "fault";
}

/// A block of a synced file that a `Fault::Corrupt` damaged (node: the damaged disk's).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskCorrupted {
    pub file: String,
    /// The 512-byte block's index in the file.
    pub block: u64,
}

impl Observation for DiskCorrupted {
    const KIND: &'static str = "sim.disk_corrupted";
}

/// One client operation as its user saw it: its class (`append`, `edit`, `sign_in`...), whether
/// it succeeded, and how long it took, recorded when it completes (so the operation was invoked
/// at `t_ms − latency_ms`). Reports aggregate these into availability per class, latency
/// percentiles and recovery times; a scenario whose clients record them gets those figures.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpOutcome {
    pub class: String,
    pub ok: bool,
    pub latency_ms: u64,
}

impl Observation for OpOutcome {
    const KIND: &'static str = "client.op";
}

/// Every observation of a run, in the order they were recorded.
#[derive(Default)]
pub struct Observations {
    events: Vec<Event>,
}

impl Observations {
    pub fn push(&mut self, t_ms: u64, node: &str, kind: &str, fields: Value) {
        self.push_event(Event::new(t_ms, node, kind, &fields));
    }

    /// Keeps an event the world has already stamped (the same one it writes to the trace).
    pub fn push_event(&mut self, event: Event) {
        self.events.push(event);
    }

    /// Every observation of type `T`, in order. An event of `T`'s kind that does not decode as a
    /// `T` is a bug in the node that recorded it, not something a checker may skip over.
    pub fn of<T: Observation>(&self) -> impl Iterator<Item = Seen<'_, T>> + '_ {
        self.events.iter().filter(|e| e.kind == T::KIND).map(|e| Seen {
            t_ms: e.t_ms,
            node: e.node.as_str(),
            value: serde_json::from_str(e.fields.get())
                .unwrap_or_else(|err| panic!("observation {} does not decode: {err}", T::KIND)),
        })
    }

    /// The faults the world applied, in order.
    pub fn faults(&self) -> impl Iterator<Item = Seen<'_, FaultApplied>> + '_ {
        self.of::<FaultApplied>()
    }

    /// The time of the last fault that heals everything (`HealAll`), if any: after it, the
    /// system owes recovery.
    pub fn last_heal_ms(&self) -> Option<u64> {
        self.faults().filter(|f| matches!(f.value.fault, Fault::HealAll)).map(|f| f.t_ms).last()
    }

    /// The time of the last fault of any kind. The run's ending (its heal, its power loss) is
    /// not a fault: it is recorded as [`crate::EndingStep`]s, which this does not see.
    pub fn last_fault_ms(&self) -> Option<u64> {
        self.faults().map(|f| f.t_ms).last()
    }

    /// The steps of the run's ending, in order (none when the plan has no ending).
    pub fn ending(&self) -> impl Iterator<Item = Seen<'_, crate::EndingStep>> + '_ {
        self.of::<crate::EndingStep>()
    }

    /// When the ending stopped the clients and healed the world (`duration_ms`).
    pub fn ending_started_ms(&self) -> Option<u64> {
        self.ending().find(|s| s.value.phase == crate::EndingPhase::ClientsStopped).map(|s| s.t_ms)
    }

    /// When the servers restarted after the ending's power loss and the verifiers started:
    /// what was acknowledged before this must be found in what recovered.
    pub fn recovery_started_ms(&self) -> Option<u64> {
        self.ending().find(|s| s.value.phase == crate::EndingPhase::Recovery).map(|s| s.t_ms)
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}
