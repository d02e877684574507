//! The run's ending: the truth after the last crash.
//!
//! A store's durability is only as good as what survives a power loss, and what a node says it
//! flushed is a claim, not evidence. A plan with an [`Ending`] therefore ends the same way every
//! time, after its schedule (whatever the schedule was, `[]` included):
//!
//! 1. at `duration_ms`, every client ([`crate::Plan::client`]) stops for good: it is killed (its
//!    disk loses what it had not synced, as in a power loss) and nothing restarts it;
//! 2. at the same moment the world heals everything: partitions, link shapes, pauses, disk
//!    faults and clock skews are cleared and dead servers restart. This is not a schedule fault:
//!    [`crate::Observations::last_heal_ms`] and `last_fault_ms` do not see it;
//! 3. `settle_ms` later, every server loses power at once: each disk goes back to what was
//!    synced (after the heal no disk tears a write, so only unsynced data is lost);
//! 4. at once every server restarts, recovers from its disk, and the verifiers
//!    ([`crate::Plan::verifier`]) start for the first time: they read the final state through
//!    the clients' protocols and record what they read;
//! 5. `recover_ms` later the run stops. Checkers read the recovered disks and the verifiers'
//!    observations.
//!
//! Each step is an [`EndingStep`] observation (`sim.ending`), so a checker finds when recovery
//! started with [`crate::Observations::recovery_started_ms`].
//!
//! A plan without an ending (`plan.ending = None`) runs exactly as before this module existed:
//! the schedule runs to `duration_ms`, then the engine stops every node, no disk is crashed.
//!
//! ```
//! use sim::{node_main, Ending, Plan, Topology};
//!
//! let mut topology = Topology::new();
//! topology.add("db", "z1", "r1");
//! topology.add("app", "z1", "r1");
//! topology.add("check", "z1", "r1");
//! let mut plan = Plan::new(topology, 10_000);
//! plan.node("db", node_main(|_ctx| async {}));
//! plan.client("app", node_main(|_ctx| async {}));
//! plan.verifier("check", node_main(|_ctx| async {}));
//! plan.ending = Some(Ending { settle_ms: 2_000, recover_ms: 5_000 });
//! assert_eq!(plan.end_ms(), 17_000);
//! ```
//!
//! Left out: a client's own crash recovery (clients never come back), and faults during the
//! ending (the schedule's faults at or after `duration_ms` are not applied when a plan has an
//! ending; the ending is the quiet, healed end of the run).

use serde::{Deserialize, Serialize};

use crate::fault::{Fault, Scheduled};
use crate::observation::Observation;
use crate::plan::Plan;

/// How a run ends after its schedule (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ending {
    /// Healed and quiet, before the power loss: time for replication to catch up.
    pub settle_ms: u64,
    /// After the restart: time for the servers to recover and the verifiers to read.
    pub recover_ms: u64,
}

/// One step of the ending.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndingPhase {
    /// Clients were stopped for good.
    ClientsStopped,
    /// Everything was healed (not a schedule fault).
    Healed,
    /// Every server lost power at once.
    PowerLoss,
    /// Every server restarted and the verifiers started.
    Recovery,
    /// The run stops.
    End,
}

/// An ending step, as recorded (kind `sim.ending`, node `world`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndingStep {
    pub phase: EndingPhase,
    /// The nodes the step touched.
    pub nodes: Vec<String>,
    /// Unsynced bytes the step's power loss took, over all disks (0 for other steps).
    #[serde(default)]
    pub lost_bytes: u64,
}

impl Observation for EndingStep {
    const KIND: &'static str = "sim.ending";
}

/// What an engine does at a moment of the run.
#[derive(Clone, Debug)]
pub(crate) enum Action {
    Fault(Fault),
    Ending(EndingPhase),
}

/// Everything an engine does, in order, and when the run stops.
pub(crate) struct Timeline {
    pub actions: Vec<(u64, Action)>,
    pub end_ms: u64,
}

impl Plan {
    /// When the run stops: `duration_ms`, plus the ending's settle and recovery.
    pub fn end_ms(&self) -> u64 {
        match self.ending {
            Some(e) => self.duration_ms + e.settle_ms + e.recover_ms,
            None => self.duration_ms,
        }
    }

    /// The schedule's faults (ties in list order), then the ending's steps. With an ending,
    /// faults at or after `duration_ms` are dropped: the ending owns the world from then.
    pub(crate) fn timeline(&self) -> Timeline {
        assert!(
            self.verifiers.is_empty() || self.ending.is_some(),
            "a plan with verifiers needs an ending: verifiers start only when recovery starts"
        );
        let mut schedule: Vec<Scheduled> = self.schedule.clone();
        schedule.sort_by_key(|f| f.at_ms);
        let mut actions: Vec<(u64, Action)> = schedule
            .into_iter()
            .filter(|s| self.ending.is_none() || s.at_ms < self.duration_ms)
            .map(|s| (s.at_ms, Action::Fault(s.fault)))
            .collect();
        if let Some(e) = self.ending {
            let (stop, loss) = (self.duration_ms, self.duration_ms + e.settle_ms);
            actions.push((stop, Action::Ending(EndingPhase::ClientsStopped)));
            actions.push((stop, Action::Ending(EndingPhase::Healed)));
            actions.push((loss, Action::Ending(EndingPhase::PowerLoss)));
            actions.push((loss, Action::Ending(EndingPhase::Recovery)));
            actions.push((self.end_ms(), Action::Ending(EndingPhase::End)));
        }
        Timeline { actions, end_ms: self.end_ms() }
    }

    /// Nodes with a main that are neither clients nor verifiers: what the power loss hits.
    pub(crate) fn servers(&self) -> Vec<String> {
        self.mains.iter().map(|(n, _)| n.clone()).filter(|n| !self.clients.contains(n)).collect()
    }
}
