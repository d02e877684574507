//! Faults as data: what a scenario's schedule says to do to the world, and when.
//!
//! Faults name their targets by topology (node, zone, region) or by role (resolved when the fault
//! fires, from what nodes currently claim: "the primary" is whoever is primary at that moment).
//! Shrinking a failing run edits a schedule; it never edits code.
//!
//! # Process, machine and disk faults
//! Three ways for a node to die, ordered by what its disk keeps (see [`crate::disk`]):
//! - [`Fault::Crash`]: the process dies (SIGKILL, OOM kill, a panic), the machine stays up, so
//!   the page cache survives: a restart reads back even what was never synced. A power loss
//!   (`Kill`, or the run's ending) before or after that restart still takes the unsynced part.
//! - [`Fault::Kill`]: power loss: the process dies and every unsynced write is lost (torn, when
//!   the disk's `torn_writes` is on).
//! - [`Fault::Wipe`]: power loss, and the disk is replaced by an empty one (a node rebuilt from
//!   scratch): it comes back with no files at all, and must be repaired from its peers.
//!
//! Each needs a `Restart` (or `HealAll`) to come back. Damage to a running node's disk:
//! - [`Fault::Corrupt`]: latent damage to one 512-byte block of a synced file (every bit
//!   flipped, in the page cache and on the platter): a store must find it by checksum.
//! - [`Fault::Disk`] sets the disk's injected faults until the next `HealAll`: `io_error` (each
//!   operation — read, write, append, fsync, rename — fails with that chance and changes
//!   nothing), `read_corruption`, `torn_writes`.

use serde::{Deserialize, Serialize};

use crate::disk::DiskFaults;
use crate::link::LinkShape;

/// A set of nodes, resolved when the fault fires.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    Node(String),
    Nodes(Vec<String>),
    Zone(String),
    Region(String),
    /// Nodes currently claiming this role (see `NodeCtx::set_role`).
    Role(String),
    /// Every node of the topology.
    All,
}

impl Target {
    pub fn node(name: &str) -> Self {
        Target::Node(name.into())
    }
    pub fn zone(name: &str) -> Self {
        Target::Zone(name.into())
    }
    pub fn role(name: &str) -> Self {
        Target::Role(name.into())
    }
}

/// One fault. Kinds are ordered roughly by damage, as FoundationDB orders its kill kinds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// Skew the targets' wall clocks to `offset_ms` from true time (NTP drift).
    ClockSkew {
        target: Target,
        offset_ms: i64,
    },
    /// Step the targets' wall clocks by `delta_ms` (an operator or a bad NTP server).
    ClockStep {
        target: Target,
        delta_ms: i64,
    },
    /// Shape both directions between every node of `a` and every node of `b`.
    Link {
        a: Target,
        b: Target,
        shape: LinkShape,
    },
    /// Set disk faults (I/O errors, torn writes, corruption) on the targets.
    Disk {
        target: Target,
        faults: DiskFaults,
    },
    /// Damage one block of a synced file on each target's disk (see the module doc). Unset
    /// fields are drawn from the seed when the fault fires: the file among the synced files
    /// (those named with `file_prefix`, if set), the block among its synced blocks.
    Corrupt {
        target: Target,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        file: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        file_prefix: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        block: Option<u64>,
    },
    /// Freeze the targets (a long GC pause, SIGSTOP): alive, but silent.
    Pause(Target),
    Resume(Target),
    /// Cut `a` from `b` both ways.
    Partition {
        a: Target,
        b: Target,
    },
    /// Cut traffic from `from` to `to` only.
    PartitionOneWay {
        from: Target,
        to: Target,
    },
    /// Cut the targets from every other node.
    Isolate(Target),
    /// Remove every partition.
    HealNetwork,
    /// The process dies; the page cache survives (see the module doc). Needs a restart.
    Crash(Target),
    /// Power loss: the process dies and unsynced writes are lost (maybe torn).
    Kill(Target),
    /// Power loss, and the disk is replaced by an empty one. Needs a restart.
    Wipe(Target),
    /// Start dead targets again; live ones are killed first (a crash-restart).
    Restart(Target),
    /// Heal everything: network, link shapes, pauses, disk faults, clocks; restart the dead.
    HealAll,
}

impl Fault {
    /// The short name used in "sometimes" records and reports.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::ClockSkew { .. } => "clock_skew",
            Fault::ClockStep { .. } => "clock_step",
            Fault::Link { .. } => "link",
            Fault::Disk { .. } => "disk",
            Fault::Corrupt { .. } => "corrupt",
            Fault::Pause(_) => "pause",
            Fault::Resume(_) => "resume",
            Fault::Partition { .. } => "partition",
            Fault::PartitionOneWay { .. } => "partition_one_way",
            Fault::Isolate(_) => "isolate",
            Fault::HealNetwork => "heal_network",
            Fault::Crash(_) => "crash",
            Fault::Kill(_) => "kill",
            Fault::Wipe(_) => "wipe",
            Fault::Restart(_) => "restart",
            Fault::HealAll => "heal_all",
        }
    }
}

impl Target {
    /// The scope the target names: "node", "zone", "region", "role" or "all".
    pub fn scope(&self) -> &'static str {
        match self {
            Target::Node(_) | Target::Nodes(_) => "node",
            Target::Zone(_) => "zone",
            Target::Region(_) => "region",
            Target::Role(_) => "role",
            Target::All => "all",
        }
    }
}

impl Fault {
    /// The scope of a single-target fault (kill a zone, pause a node...), for sometimes records.
    pub fn target_scope(&self) -> Option<&'static str> {
        match self {
            Fault::Kill(t)
            | Fault::Crash(t)
            | Fault::Wipe(t)
            | Fault::Restart(t)
            | Fault::Pause(t)
            | Fault::Isolate(t) => Some(t.scope()),
            _ => None,
        }
    }
}

/// A fault at a simulated time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scheduled {
    pub at_ms: u64,
    pub fault: Fault,
}
