//! The whole stack on the real runtime: the very service and store code of the simulations, on
//! tokio with real TCP on 127.0.0.1, real files under a data directory and the real clock, one
//! OS process per node, so a kill is a real kill.
//!
//! - [`layout`]: which nodes (the `steady` topology's servers, from the stack builder), their
//!   ports on one host, how each one's health is probed.
//! - [`node`]: one node in this process (`stack node <name>`, spawned by the supervisor).
//! - [`supervisor`]: `stack up`: starts every node, waits for health, takes commands.
//! - [`control`]: the supervisor's control channel (`stack status|kill|restart`).
//! - [`bench`]: `stack bench`: the collaboration server against the stock Node server.
//! - [`chaos`]: `stack chaos`: SIGKILLs of leaders and primaries under typing editors, judged
//!   from the documents read back from the store.
//! - [`data_dir`]: the data directory's files.
//! - [`stack_child`]: `stack up` as a child process, for the commands and tests that bring up
//!   a stack of their own.
#![cfg(not(madsim))]

pub mod bench;
pub mod chaos;
pub mod control;
pub mod data_dir;
pub mod layout;
pub mod node;
pub mod probe;
pub mod stack_child;
pub mod supervisor;
