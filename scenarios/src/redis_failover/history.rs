//! What the cache workload and the Redis nodes and Sentinels leave for the checker.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use system::redis::Observer;

/// A `SET` the cache acknowledged.
#[derive(Clone, Debug)]
pub struct WriteAck {
    pub key: String,
    pub node: String,
    pub at_ms: u64,
}

#[derive(Debug, Default)]
pub struct History {
    pub writes: Vec<WriteAck>,
    pub write_errors: u64,
    pub hits: u64,
    pub misses: u64,
    /// Reads that returned what the cache must never return (wrong content, an expired key).
    pub bad_reads: Vec<String>,
    /// Expiry checks done (a short-lived key read after its TTL).
    pub expiry_checks: u64,
    /// `(node, is master, at_ms)`.
    pub roles: Vec<(String, bool, u64)>,
    /// `(sentinel, from, to, config epoch, at_ms)`.
    pub switches: Vec<(String, String, String, u64, u64)>,
    /// The final read-back: the master asked, when, and the document keys it held.
    pub readback: Option<(String, u64, BTreeSet<String>)>,
}

impl History {
    /// The master the Sentinels' newest configuration named at `at_ms`.
    pub fn master_at(&self, initial: &str, at_ms: u64) -> String {
        self.switches
            .iter()
            .filter(|s| s.4 <= at_ms)
            .max_by_key(|s| (s.3, s.4))
            .map_or_else(|| initial.to_string(), |s| s.2.clone())
    }
}

/// The stores' observer hook, writing into the shared history.
pub struct Recorder(pub Arc<Mutex<History>>);

impl Observer for Recorder {
    fn role_changed(&self, node: &str, master: bool, at_ms: u64) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).roles.push((node.into(), master, at_ms));
    }
    fn switched_master(&self, sentinel: &str, from: &str, to: &str, config_epoch: u64, at_ms: u64) {
        let mut h = self.0.lock().unwrap_or_else(|e| e.into_inner());
        h.switches.push((sentinel.into(), from.into(), to.into(), config_epoch, at_ms));
    }
}
