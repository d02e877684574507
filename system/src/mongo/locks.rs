//! Distributed locks held in the config servers: a lease plus a fencing token.
//!
//! Modelled on MongoDB's config-server distributed lock (`config.locks`: `_id` the lock name,
//! `state` 0 free / 2 taken, `who` the holder, `ts` the lock session), with two changes the
//! stack needs: the lease expires on the config primary's wall clock (instead of being kept
//! alive by a lock pinger, `config.lockpings`), and `ts` is a token that grows with every grant
//! of the lock, which shards check (see [`super::writes`]) so that a holder whose lease ran out
//! while it was paused cannot overwrite the next holder's work.
//!
//! Grants are written at `w:majority`, so an acknowledged token is never rolled back and the
//! next primary continues counting above it. Leases alone do not exclude two holders (a skewed
//! or failed-over clock can expire a lease early); the token does.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::oplog::Op;
use super::store::Store;

/// The lock collection on the config servers.
pub const LOCKS_NS: &str = "config.locks";

/// One lock's document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockDoc {
    /// 0 free, 2 taken (MongoDB's `state`).
    pub state: u8,
    /// `who`.
    pub holder: String,
    /// `ts`: the fencing token of the latest grant.
    pub token: u64,
    pub expires_wall_ms: u64,
}

/// What the config primary decides for an acquire.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    Granted { ops: Vec<Op>, token: u64, expires_wall_ms: u64 },
    Busy { holder: String, expires_wall_ms: u64 },
}

fn read(store: &Store, name: &str) -> Option<LockDoc> {
    store.get(LOCKS_NS, name, None).and_then(|d| LockDoc::deserialize(d.value()).ok())
}

fn put(name: &str, doc: &LockDoc) -> Op {
    let value: Value = serde_json::to_value(doc).expect("lock docs serialize");
    Op::Put { ns: LOCKS_NS.into(), id: name.into(), doc: value.into() }
}

/// Take the lock if it is free or its lease ran out, or renew it for its current holder (same
/// token). `now_wall_ms` is the config primary's wall clock.
pub fn acquire(store: &Store, name: &str, holder: &str, lease_ms: u64, now_wall_ms: u64) -> Decision {
    let current = read(store, name);
    let expires_wall_ms = now_wall_ms + lease_ms;
    let token = match &current {
        Some(d) if d.state == 2 && d.expires_wall_ms > now_wall_ms && d.holder != holder => {
            return Decision::Busy { holder: d.holder.clone(), expires_wall_ms: d.expires_wall_ms };
        }
        Some(d) if d.state == 2 && d.expires_wall_ms > now_wall_ms => d.token,
        Some(d) => d.token + 1,
        None => 1,
    };
    let doc = LockDoc { state: 2, holder: holder.into(), token, expires_wall_ms };
    Decision::Granted { ops: vec![put(name, &doc)], token, expires_wall_ms }
}

/// Free the lock if `holder` still holds it under `token`; None when there is nothing to do.
pub fn release(store: &Store, name: &str, holder: &str, token: u64) -> Option<Vec<Op>> {
    let mut doc = read(store, name)?;
    if doc.state != 2 || doc.holder != holder || doc.token != token {
        return None;
    }
    doc.state = 0;
    Some(vec![put(name, &doc)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mongo::oplog::{OpTime, OplogEntry};

    fn apply(store: &mut Store, ts: u64, ops: Vec<Op>) {
        store.apply(&OplogEntry { optime: OpTime::new(1, ts), wall_ms: 0, ops, fence: None });
    }

    #[test]
    fn tokens_grow_with_each_grant_and_leases_exclude_until_they_expire() {
        let mut s = Store::default();
        let Decision::Granted { ops, token: 1, .. } = acquire(&s, "l", "a", 1_000, 10_000) else { panic!("free lock") };
        apply(&mut s, 1, ops);
        assert!(matches!(acquire(&s, "l", "b", 1_000, 10_500), Decision::Busy { .. }));
        let Decision::Granted { ops, token: 1, .. } = acquire(&s, "l", "a", 1_000, 10_500) else { panic!("renewal") };
        apply(&mut s, 2, ops);
        let Decision::Granted { ops, token: 2, .. } = acquire(&s, "l", "b", 1_000, 11_600) else { panic!("expired") };
        apply(&mut s, 3, ops);
        assert_eq!(release(&s, "l", "a", 1), None, "a stale holder cannot release");
        let ops = release(&s, "l", "b", 2).expect("holder releases");
        apply(&mut s, 4, ops);
        let Decision::Granted { token: 3, .. } = acquire(&s, "l", "a", 1_000, 11_700) else { panic!("released") };
    }
}
