//! The node context: the only way node code touches the world.

use std::sync::Arc;

use rand_chacha::ChaCha8Rng;
use serde_json::Value;

use crate::clock::Clock;
use crate::disk::Disk;
use crate::net::Net;
use crate::world::WorldState;

/// Everything a node may use: its name and place, and the four seams.
pub struct NodeCtx {
    pub name: String,
    pub zone: String,
    pub region: String,
    /// 1 for the first life of this node, 2 after its first restart, ...
    pub incarnation: u64,
    pub net: Net,
    pub disk: Disk,
    pub clock: Clock,
    pub rng: ChaCha8Rng,
    world: Option<Arc<WorldState>>,
}

impl NodeCtx {
    /// A context for a new life of `name` in a simulated world.
    pub fn sim(world: &Arc<WorldState>, net: Net, name: &str) -> Self {
        let spec = world.topology.get(name).unwrap_or_else(|| panic!("node {name} not in topology"));
        let incarnation = world.next_incarnation(name);
        world.record(name, "start", serde_json::json!({ "incarnation": incarnation }));
        NodeCtx {
            name: name.into(),
            zone: spec.zone.clone(),
            region: spec.region.clone(),
            incarnation,
            net,
            disk: crate::disk::Disk::Sim(world.disks.disk(name)),
            clock: Clock::Sim { world: world.clone(), node: name.into() },
            rng: crate::rng::derive(world.seed, name, incarnation),
            world: Some(world.clone()),
        }
    }

    /// A context for the real runtime: real TCP, files under a data dir, the real clock.
    pub fn real(name: &str, zone: &str, region: &str, net: Net, disk: Disk, seed: u64) -> Self {
        NodeCtx {
            name: name.into(),
            zone: zone.into(),
            region: region.into(),
            incarnation: 1,
            net,
            disk,
            clock: Clock::Real,
            rng: crate::rng::derive(seed, name, 1),
            world: None,
        }
    }

    /// A context for a task of this node: same name, seams and world, its own rng stream
    /// (seeded from this one, so the fork is as deterministic as the parent).
    pub fn fork(&mut self) -> NodeCtx {
        use rand::SeedableRng;
        NodeCtx {
            name: self.name.clone(),
            zone: self.zone.clone(),
            region: self.region.clone(),
            incarnation: self.incarnation,
            net: self.net.clone(),
            disk: self.disk.clone(),
            clock: self.clock.clone(),
            rng: ChaCha8Rng::from_rng(&mut self.rng).expect("chacha never fails"),
            world: self.world.clone(),
        }
    }

    /// Records a trace event from this node (in the real build, a log line).
    pub fn trace(&self, kind: &str, fields: Value) {
        match &self.world {
            Some(w) => w.record(&self.name, kind, fields),
            None => tracing::info!(node = %self.name, kind, %fields),
        }
    }

    /// Records a typed observation for the checkers (in the real build, a log line).
    pub fn observe<T: crate::observation::Observation>(&self, value: &T) {
        match &self.world {
            Some(w) => w.observe(&self.name, value),
            None => {
                let fields = serde_json::to_value(value).expect("observations serialize");
                tracing::info!(node = %self.name, kind = T::KIND, %fields);
            }
        }
    }

    /// Marks that this node reached a rare state worth proving a sweep reaches.
    pub fn sometimes(&self, what: &str) {
        if let Some(w) = &self.world {
            w.sometimes(what);
        }
    }

    /// Claims or drops a role ("leader", "primary"), so faults can target it by role.
    pub fn set_role(&self, role: &str, holds: bool) {
        if let Some(w) = &self.world {
            w.set_role(&self.name, role, holds);
        }
    }

    /// The simulated world, for code that must publish state to checkers.
    pub fn world(&self) -> Option<&Arc<WorldState>> {
        self.world.as_ref()
    }
}
