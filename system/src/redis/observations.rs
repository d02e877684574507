//! What Redis nodes and Sentinels tell the checkers, through the context's one observation
//! stream ([`sim::NodeCtx::observe`]). A checker reads them back by type, so it works unchanged in
//! any scenario that runs these nodes, whatever their names.

use serde::{Deserialize, Serialize};
use sim::Observation;

/// A Redis node took a role: at start (from its configuration), on `REPLICAOF NO ONE`
/// (promotion), or on `REPLICAOF master` (demotion or re-pointing).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleChanged {
    /// None: the node is a master.
    pub replica_of: Option<String>,
    /// Its replication offset when it took the role.
    pub offset: u64,
}

impl RoleChanged {
    pub fn is_master(&self) -> bool {
        self.replica_of.is_none()
    }
}

impl Observation for RoleChanged {
    const KIND: &'static str = "redis.role";
}

/// What a Sentinel did about the master it monitors.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SentinelObserved {
    /// `+switch-master`: this Sentinel's configuration now names `to`, under `config_epoch`
    /// (after its own failover or a peer's hello). Clients asking it are sent to `to`.
    SwitchMaster { from: String, to: String, config_epoch: u64 },
    /// `+failover-end`: as the elected leader, this Sentinel saw `promoted` take the master role.
    FailoverEnd { promoted: String },
    /// `+convert-to-slave`: an instance reporting the wrong role is pointed at the master.
    ConvertToReplica { node: String },
    /// `+sdown` / `-sdown`: this Sentinel's own view of `master` (subjectively down or not).
    Sdown { master: String, down: bool },
    /// This Sentinel released its vote for `candidate` in `epoch` (to the candidate, or to its
    /// own count when it is the candidate): from here on others may act on it, so it must be
    /// on disk (a restart must not let it vote again in that epoch).
    Voted { candidate: String, epoch: u64 },
    /// `+elected-leader`: this Sentinel counted the votes of `voters` for itself in `epoch`
    /// and starts the failover as its leader.
    Elected { epoch: u64, voters: Vec<String> },
    /// The Sentinel failed to save `sentinel.conf` and stopped (fail-stop): it answers nothing
    /// and acts on nothing until restarted.
    Halted { error: String },
}

impl Observation for SentinelObserved {
    const KIND: &'static str = "redis.sentinel";
}
