//! The document service (placeholder docs, replaced below).

pub mod breaker;
pub mod cache;
pub mod rebuild;
pub mod snapshot;
pub mod store;
pub mod vector;

pub use store::{rebuild_from_mongo, DocStore, LoadError, StoredOp};
