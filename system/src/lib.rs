//! The stack under test: replicated stores and services, written only against the `sim` seams,
//! so the same code runs under madsim, under turmoil and on a real runtime.

pub mod auth;
pub mod balancer;
pub mod byte_queue;
pub mod collab;
pub mod consensus;
pub mod doc_update;
pub mod docs;
pub mod http;
pub mod kafka;
pub mod log_consumer;
pub mod mongo;
pub mod objstore;
pub mod postgres;
pub mod raft;
pub mod redis;
pub mod rpc;
pub mod v1_update;
pub mod wire;
