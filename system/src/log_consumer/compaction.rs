//! Compaction: folding a document's operations into its next immutable snapshot, under a
//! distributed lock with a fencing token.
//!
//! When a consumer has stored more than `threshold_ops` operations of a document since its last
//! snapshot, it spawns one compaction of that document (at most one at a time per document
//! per consumer): take the lock `compact/<doc>` in the config servers (a lease plus a token that
//! grows with every grant, [`crate::mongo::locks`]), read the latest snapshot and every
//! operation at majority, build snapshot `n + 1` ([`crate::docs::snapshot::next`]), and insert
//! it carrying the token. The shard refuses a token lower than one it has accepted for that
//! lock, so a holder whose lease ran out while it worked (a pause, a partition) cannot write
//! after the next holder; and the insert never replaces an existing version, so two holders
//! that built the same version leave the first one's bytes in place. Either way a snapshot,
//! once written, never changes.
//!
//! Left out: deleting compacted operations (they stay, so a checker can count each stored once
//! and a rebuild can always start from scratch), and compaction on a timer (only the count
//! triggers it).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use serde_json::json;
use sim::NodeCtx;

use super::observe::{SnapshotFenced, SnapshotWritten};
use crate::docs::rebuild::OpBytes;
use crate::docs::snapshot;
use crate::docs::store::{lock_name, DocStore, LoadError, SnapshotOutcome, StoredOp};
use crate::docs::vector::digest;
use crate::mongo::{Fence, RouteError};

#[derive(Clone, Debug)]
pub struct CompactionSettings {
    /// Compact a document once more than this many operations were stored since its last
    /// snapshot.
    pub threshold_ops: u64,
    /// The lock's lease.
    pub lease_ms: u64,
    /// UNSAFE: rewrite the latest snapshot in place instead of writing the next version.
    pub unsafe_overwrite: bool,
}

impl Default for CompactionSettings {
    fn default() -> Self {
        CompactionSettings { threshold_ops: 200, lease_ms: 10_000, unsafe_overwrite: false }
    }
}

/// How one compaction ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Compacted {
    Written {
        version: u64,
        token: u64,
    },
    /// Someone else wrote that version first.
    Exists {
        version: u64,
    },
    /// Nothing new to fold, or a gap in the operations.
    Nothing,
    Busy,
    Fenced {
        version: u64,
        token: u64,
        highest: u64,
    },
    Failed(String),
}

/// Spawns compactions; clones share the set of documents in progress.
#[derive(Clone)]
pub struct Compactor {
    ctx: Arc<Mutex<NodeCtx>>,
    store: DocStore,
    settings: CompactionSettings,
    holder: String,
    running: Arc<Mutex<BTreeSet<String>>>,
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Compactor {
    pub fn new(ctx: NodeCtx, store: DocStore, settings: CompactionSettings) -> Self {
        // A restarted consumer is a new lock holder.
        let holder = format!("{}.{}", ctx.name, ctx.incarnation);
        Compactor { ctx: Arc::new(Mutex::new(ctx)), store, settings, holder, running: Arc::default() }
    }

    pub fn settings(&self) -> &CompactionSettings {
        &self.settings
    }

    /// Compacts `doc` in the background unless a compaction of it is already running here.
    pub fn spawn(&self, doc: String) {
        if !locked(&self.running).insert(doc.clone()) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            let outcome = this.compact(&doc).await;
            locked(&this.ctx).trace("durable.compaction", json!({ "doc": doc, "outcome": format!("{outcome:?}") }));
            locked(&this.running).remove(&doc);
        });
    }

    /// One compaction of `doc`, start to end.
    pub async fn compact(&self, doc: &str) -> Compacted {
        let lock = lock_name(doc);
        let router = self.store.router();
        let grant = match router.acquire_lock(&lock, &self.holder, self.settings.lease_ms).await {
            Ok(g) => g,
            Err(RouteError::LockBusy { .. }) => return Compacted::Busy,
            Err(e) => return Compacted::Failed(e.to_string()),
        };
        let outcome = self.build_and_write(doc, &lock, grant.token).await;
        let _ = router.release_lock(&lock, &self.holder, grant.token).await;
        outcome
    }

    async fn build_and_write(&self, doc: &str, lock: &str, token: u64) -> Compacted {
        let (previous, ops, through) = match self.store.load(doc).await {
            Ok(l) => (l.snapshot, l.ops, l.through),
            Err(e) => return Compacted::Failed(e.to_string()),
        };
        let bytes: Vec<OpBytes> = ops.iter().map(StoredOp::bytes).collect();
        let now = locked(&self.ctx).clock.wall_ms();
        let mut next = match snapshot::next(doc, previous.as_ref(), &bytes, through, token, now) {
            Ok(Some(s)) => s,
            Ok(None) => return Compacted::Nothing,
            Err(e) => return Compacted::Failed(LoadError::from(e).to_string()),
        };
        let fence = Fence { lock: lock.into(), token };
        let written = if self.settings.unsafe_overwrite {
            next.version = previous.as_ref().map_or(1, |p| p.version);
            self.store.overwrite_snapshot(&next, fence).await
        } else {
            self.store.write_snapshot(&next, fence).await
        };
        let version = next.version;
        match written {
            Ok(SnapshotOutcome::Written(_)) => {
                let ctx = locked(&self.ctx);
                ctx.observe(&SnapshotWritten {
                    doc: doc.into(),
                    version,
                    token,
                    digest: digest(&next.state),
                    state_vector: next.vector.to_hex(),
                    ops_seen: next.ops_seen,
                });
                ctx.sometimes("durable.snapshot_compacted");
                Compacted::Written { version, token }
            }
            Ok(SnapshotOutcome::Exists) => Compacted::Exists { version },
            Err(RouteError::StaleFence { token, highest, .. }) => {
                let ctx = locked(&self.ctx);
                ctx.observe(&SnapshotFenced { doc: doc.into(), version, token, highest });
                ctx.sometimes("durable.snapshot_fenced");
                Compacted::Fenced { version, token, highest }
            }
            Err(e) => Compacted::Failed(e.to_string()),
        }
    }
}
