//! Turns sweeps of runs into files people read: `summary.json` (one entry per run, for tools)
//! and `report.md` with an SVG chart (for people).

pub mod chart;
pub mod probes;
pub mod summary;

pub use summary::Summary;
