//! Commands from routers and drivers: `hello`, writes by write concern, reads by read concern,
//! and (on config servers) the distributed lock.

use serde_json::json;
use tokio::sync::oneshot;

use super::{ClusterRole, Flaw, Mongod, Waiter};
use crate::mongo::locks::{self, Decision};
use crate::mongo::oplog::{Fence, Op, OpTime};
use crate::mongo::protocol::{Command, FoundDoc, ReadConcern, Reply, WriteConcern, WriteOp};
use crate::mongo::writes;

/// How long a lock grant waits for a majority before the caller is told it failed.
const LOCK_WTIMEOUT_MS: u64 = 5_000;
/// Longest lease a holder may ask for.
const MAX_LEASE_MS: u64 = 600_000;
/// Most documents one find returns.
const MAX_FOUND: usize = 10_000;

impl Mongod {
    pub(super) async fn command(&mut self, cmd: Command, reply: oneshot::Sender<Reply>) {
        match cmd {
            Command::Hello => {
                let _ = reply.send(self.hello());
            }
            Command::Write { writes, concern, wtimeout_ms, fence } => {
                self.write(&writes, concern, wtimeout_ms, fence, reply).await
            }
            Command::Find { ns, prefix, read, after } => {
                let _ = reply.send(self.find(&ns, &prefix, read, after));
            }
            Command::AcquireLock { name, holder, lease_ms } => self.acquire_lock(&name, &holder, lease_ms, reply).await,
            Command::ReleaseLock { name, holder, token } => self.release_lock(&name, &holder, token, reply).await,
        }
    }

    fn hello(&self) -> Reply {
        Reply::Hello {
            set: self.config.set.name.clone(),
            me: self.config.host().to_string(),
            is_primary: self.core.is_primary(),
            primary: self.primary_host(),
            term: self.core.term(),
        }
    }

    fn primary_host(&self) -> Option<String> {
        self.core.primary_hint().map(|i| self.config.set.members[i].host.clone())
    }

    fn not_primary(&self) -> Reply {
        Reply::NotPrimary { primary: self.primary_host() }
    }

    async fn write(
        &mut self,
        batch: &[WriteOp],
        concern: WriteConcern,
        wtimeout_ms: u64,
        fence: Option<Fence>,
        reply: oneshot::Sender<Reply>,
    ) {
        if !self.core.is_primary() {
            let _ = reply.send(self.not_primary());
            return;
        }
        // The planted bug: the fence is recorded but never compared.
        let checked = fence.as_ref().filter(|_| self.config.flaw != Some(Flaw::IgnoreFence));
        let prepared = match writes::prepare(&self.store, batch, checked) {
            Ok(p) => p,
            Err(rejected) => {
                if let Reply::StaleFence { lock, token, highest } = &rejected {
                    self.ctx.trace("mongo.fence_rejected", json!({ "lock": lock, "token": token, "highest": highest }));
                    self.ctx.sometimes("mongo.fence_rejected_stale");
                }
                let _ = reply.send(rejected);
                return;
            }
        };
        let (inserted, duplicates) = (prepared.inserted, prepared.duplicates);
        let ok = move |optime| Reply::Written { optime, inserted, duplicates };
        self.submit(prepared.ops, fence, concern, wtimeout_ms, ok, reply).await;
    }

    /// Appends `ops` (nothing for an all-duplicate batch: it then waits on the last optime, as
    /// MongoDB does for no-op writes) and answers by the write concern.
    async fn submit(
        &mut self,
        ops: Vec<Op>,
        fence: Option<Fence>,
        concern: WriteConcern,
        wtimeout_ms: u64,
        ok: impl FnOnce(OpTime) -> Reply,
        reply: oneshot::Sender<Reply>,
    ) {
        let optime = if ops.is_empty() {
            self.core.last_applied()
        } else {
            match self.core.write(self.now(), ops, fence) {
                Ok((optime, actions)) => {
                    self.execute(actions).await;
                    if self.fatal.is_some() {
                        // The append failed: the member stops and acknowledges nothing.
                        return;
                    }
                    optime
                }
                Err(_) => {
                    let _ = reply.send(self.not_primary());
                    return;
                }
            }
        };
        let committed = self.core.oplog().contains(optime) && optime.ts <= self.core.commit_point().ts;
        if concern == WriteConcern::W1 || committed {
            let _ = reply.send(ok(optime));
        } else {
            let deadline_ms = self.ctx.clock.now_ms() + wtimeout_ms.max(1);
            self.waiters.push(Waiter { optime, deadline_ms, ok: ok(optime), reply });
        }
    }

    fn find(&self, ns: &str, prefix: &str, read: ReadConcern, after: u64) -> Reply {
        if !self.core.is_primary() {
            return self.not_primary();
        }
        let at = match read {
            ReadConcern::Local => None,
            // A new primary (or one just restarted, which forgot the commit point) serves no
            // majority read until it has committed an entry of its own term: before that its
            // commit point may lag what the set committed (MongoDB's
            // `ReadConcernMajorityNotAvailableYet`).
            ReadConcern::Majority if self.core.commit_point().term != self.core.term() => {
                return Reply::Error { reason: "ReadConcernMajorityNotAvailableYet".into() };
            }
            ReadConcern::Majority => Some(self.core.commit_point().ts),
        };
        let oplog = self.core.oplog();
        let docs = self
            .store
            .scan_after(ns, prefix, at, after)
            .into_iter()
            .take(MAX_FOUND)
            .map(|f| FoundDoc { optime: OpTime::new(oplog.term_at(f.ts).unwrap_or(0), f.ts), id: f.id, doc: f.doc })
            .collect();
        Reply::Found { docs }
    }

    /// Checks a lock request can be served here; the reply to send when it cannot.
    fn lock_refusal(&self, name: &str, holder: &str) -> Option<Reply> {
        if !matches!(self.config.cluster_role, ClusterRole::ConfigServer { .. }) {
            return Some(Reply::Error { reason: "locks live on the config servers".into() });
        }
        if name.is_empty() || holder.is_empty() || name.len() > 512 || holder.len() > 512 {
            return Some(Reply::Error { reason: "invalid lock name or holder".into() });
        }
        (!self.core.is_primary()).then(|| self.not_primary())
    }

    async fn acquire_lock(&mut self, name: &str, holder: &str, lease_ms: u64, reply: oneshot::Sender<Reply>) {
        if let Some(refusal) = self.lock_refusal(name, holder) {
            let _ = reply.send(refusal);
            return;
        }
        let now_wall_ms = self.ctx.clock.wall_ms();
        match locks::acquire(&self.store, name, holder, lease_ms.min(MAX_LEASE_MS), now_wall_ms) {
            Decision::Busy { holder, expires_wall_ms } => {
                self.ctx.sometimes("mongo.lock_busy");
                let _ = reply.send(Reply::LockBusy { holder, expires_wall_ms });
            }
            Decision::Granted { ops, token, expires_wall_ms } => {
                let ok = move |optime| Reply::Locked { token, expires_wall_ms, optime };
                self.submit(ops, None, WriteConcern::Majority, LOCK_WTIMEOUT_MS, ok, reply).await;
            }
        }
    }

    async fn release_lock(&mut self, name: &str, holder: &str, token: u64, reply: oneshot::Sender<Reply>) {
        if let Some(refusal) = self.lock_refusal(name, holder) {
            let _ = reply.send(refusal);
            return;
        }
        match locks::release(&self.store, name, holder, token) {
            None => {
                let _ = reply.send(Reply::Released);
            }
            Some(ops) => {
                self.submit(ops, None, WriteConcern::Majority, LOCK_WTIMEOUT_MS, |_| Reply::Released, reply).await
            }
        }
    }
}
