//! The zonal load balancers: one per zone, the stack's public front door on port 8080.
//!
//! TODO(shell): module doc completed with the shell.

pub mod breaker;
pub mod health;
pub mod observations;
pub mod rendezvous;
pub mod route;
pub mod sessions;
