//! Turns sweeps of runs into files people and CI read: `summary.json` (one entry per run, for
//! tools), and the availability report (`report`): `report.json`, `report.md`, `report.html` with
//! inline charts, and `junit.xml`. Shards of a sweep are joined by `shard::merge`.

pub mod catalog;
pub mod chart;
pub mod html;
pub mod probes;
pub mod render;
pub mod report;
pub mod shard;
pub mod summary;

pub use summary::Summary;
