//! The engines that run a [`Plan`]: madsim (the `--cfg madsim` build) and turmoil (plain build).
//!
//! Exactly one simulation engine exists per build: madsim replaces tokio itself, so the plain
//! build cannot run it, and turmoil runs on real tokio, which madsim's build does not simulate.

use serde::Serialize;

use crate::plan::{Outcome, Plan, RunOptions};

#[cfg(madsim)]
mod madsim_engine;
#[cfg(not(madsim))]
mod turmoil_engine;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    Madsim,
    Turmoil,
}

impl Engine {
    /// The simulation engine this build carries.
    pub fn of_this_build() -> Engine {
        if cfg!(madsim) {
            Engine::Madsim
        } else {
            Engine::Turmoil
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Engine::Madsim => "madsim",
            Engine::Turmoil => "turmoil",
        }
    }
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Runs `plan` on this build's engine, on the calling thread.
///
/// Call it on a fresh OS thread per run: dependencies keep thread-local RNGs seeded once per
/// thread (rand's, used by tungstenite), which would otherwise carry state from run to run.
pub fn run(plan: Plan, options: RunOptions) -> Outcome {
    #[cfg(madsim)]
    return madsim_engine::run(plan, options);
    #[cfg(not(madsim))]
    return turmoil_engine::run(plan, options);
}

/// The IP a node gets in the simulated network: 10.region.zone.n, unique per node.
#[cfg_attr(not(madsim), allow(dead_code))]
pub(crate) fn sim_ip(topology: &crate::topology::Topology, name: &str) -> std::net::IpAddr {
    let i = topology.index_of(name).expect("node in topology");
    let (hi, lo) = ((i / 250) as u8, (i % 250) as u8 + 1);
    std::net::IpAddr::from([10, 0, hi, lo])
}
