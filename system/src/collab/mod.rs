//! The real-time collaboration service (see `run`).

pub mod protocol;
pub mod room;
