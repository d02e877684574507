//! The clock seam.
//!
//! Monotonic time is `tokio::time` (simulated under madsim and turmoil, real otherwise): node
//! code uses its `Instant`s directly, and its timers through [`crate::timer`] (sleeps that cost
//! madsim one timer entry per deadline). Wall-clock timestamps (what a node would
//! read from `SystemTime::now`: lease expiry stamps, token `exp`, log times) come from
//! [`Clock::wall_ms`], which adds the node's skew so scenarios can skew or step one node's clock
//! while simulated time itself runs on for everyone.

use std::sync::Arc;

use crate::world::WorldState;

/// Unix time of simulated time zero: 2026-01-01T00:00:00Z, so timestamps look like real ones.
pub const SIM_EPOCH_UNIX_MS: u64 = 1_767_225_600_000;

#[derive(Clone)]
pub enum Clock {
    Sim { world: Arc<WorldState>, node: String },
    Real,
}

impl Clock {
    /// Milliseconds of simulated (or, in the real build, process) time since the run began.
    pub fn now_ms(&self) -> u64 {
        match self {
            Clock::Sim { world, .. } => world.now_ms(),
            Clock::Real => real_now_unix_ms().saturating_sub(process_start_unix_ms()),
        }
    }

    /// The node's wall clock in Unix milliseconds, including any skew a scenario applied.
    pub fn wall_ms(&self) -> u64 {
        match self {
            Clock::Sim { world, node } => {
                let t = SIM_EPOCH_UNIX_MS + world.now_ms();
                t.saturating_add_signed(world.clock_skew_ms(node))
            }
            Clock::Real => real_now_unix_ms(),
        }
    }
}

#[allow(clippy::disallowed_methods, reason = "the real build reads the real clock by design")]
fn real_now_unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn process_start_unix_ms() -> u64 {
    static START: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *START.get_or_init(real_now_unix_ms)
}
