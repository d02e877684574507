//! `tracing` output stamped with simulated time.
//!
//! Engines register their world with [`enter`] for the run's thread; the timer below then prints
//! simulated milliseconds instead of the wall clock. Node names come from the engines' spans
//! (madsim and turmoil both open a `node` span named after the node around its tasks), and lines
//! logged by the fault driver carry `node="world"` themselves.

use std::cell::RefCell;
use std::fmt;
use std::sync::{Arc, Weak};

use crate::world::WorldState;

thread_local! {
    static CURRENT: RefCell<Weak<WorldState>> = const { RefCell::new(Weak::new()) };
}

/// Makes `world` the one whose time this thread's log lines show.
pub fn enter(world: &Arc<WorldState>) {
    CURRENT.with(|c| *c.borrow_mut() = Arc::downgrade(world));
}

/// Simulated time of the current thread's world, if one is running.
pub fn sim_now_ms() -> Option<u64> {
    CURRENT.with(|c| c.borrow().upgrade().map(|w| w.now_ms()))
}

/// Writes `t=12.345s` of simulated time; the CLI's `tracing-subscriber` timer calls it.
#[derive(Clone, Copy, Debug, Default)]
pub struct SimTime;

impl SimTime {
    pub fn write(w: &mut impl fmt::Write) -> fmt::Result {
        match sim_now_ms() {
            Some(ms) => write!(w, "t={}.{:03}s", ms / 1000, ms % 1000),
            None => write!(w, "t=-"),
        }
    }
}
