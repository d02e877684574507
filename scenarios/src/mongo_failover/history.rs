//! What the stack and the workload leave behind for the checkers: elections, each member's
//! oplog (term and fence per position), rollbacks, and every acknowledgement the apps received.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use system::mongo::{Fence, Observer, OpTime, OplogEntry, WriteConcern};

/// A write an app was told succeeded.
#[derive(Clone, Debug)]
pub struct Ack {
    pub app: String,
    pub set: String,
    pub primary: String,
    /// What was written, for the violation message.
    pub what: String,
    pub concern: WriteConcern,
    /// The stack treats this acknowledgement as durable (CRDT operations, snapshots); progress
    /// markers it can afford to lose (consumer positions at w:1) are not relied on.
    pub relied: bool,
    pub optime: OpTime,
    pub t_ms: u64,
}

/// A `readConcern: majority` read and the optimes of the versions it returned.
#[derive(Clone, Debug)]
pub struct MajorityRead {
    pub app: String,
    pub set: String,
    pub doc: String,
    pub t_ms: u64,
    pub seen: Vec<OpTime>,
}

#[derive(Clone, Debug)]
pub struct Election {
    pub set: String,
    pub member: String,
    pub term: u64,
    pub t_ms: u64,
}

#[derive(Clone, Debug)]
pub struct Grant {
    pub lock: String,
    pub holder: String,
    pub token: u64,
    pub t_ms: u64,
}

/// A fault the schedule aimed at a replica set's primary.
#[derive(Clone, Debug)]
pub struct PrimaryFault {
    pub set: String,
    pub kind: &'static str,
    pub at_ms: u64,
}

/// One position of a member's oplog: the entry's term and the fence it carried.
pub type Slot = (u64, Option<Fence>);

#[derive(Debug, Default)]
pub struct History {
    pub acks: Vec<Ack>,
    pub reads: Vec<MajorityRead>,
    pub grants: Vec<Grant>,
    pub stale_fence_rejections: u64,
    pub failed_attempts: u64,
    pub elections: Vec<Election>,
    /// (set, member, term, t_ms) of every step-down.
    pub stepdowns: Vec<(String, String, u64, u64)>,
    /// (set, member) → the member's current oplog.
    pub oplogs: BTreeMap<(String, String), Vec<Slot>>,
    /// (set, member, common, entries removed, t_ms).
    pub rollbacks: Vec<(String, String, OpTime, usize, u64)>,
    pub faults: Vec<PrimaryFault>,
}

impl History {
    /// The member elected in the highest term of `set`, if any.
    pub fn final_primary(&self, set: &str) -> Option<&Election> {
        self.elections.iter().filter(|e| e.set == set).max_by_key(|e| e.term)
    }

    pub fn oplog(&self, set: &str, member: &str) -> &[Slot] {
        self.oplogs.get(&(set.to_string(), member.to_string())).map(Vec::as_slice).unwrap_or_default()
    }
}

/// Whether `log` holds exactly `optime`.
pub fn holds(log: &[Slot], optime: OpTime) -> bool {
    optime.ts == 0 || log.get(optime.ts as usize - 1).is_some_and(|(t, _)| *t == optime.term)
}

/// The history shared by every node of a run.
#[derive(Clone, Default)]
pub struct Shared(pub Arc<Mutex<History>>);

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, History> {
        // A panicking node already fails the run; keep the history readable for the checker.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn slots(entries: &[OplogEntry]) -> impl Iterator<Item = Slot> + '_ {
    entries.iter().map(|e| (e.optime.term, e.fence.clone()))
}

impl Observer for Shared {
    fn became_primary(&self, set: &str, member: &str, term: u64, t_ms: u64) {
        self.lock().elections.push(Election { set: set.into(), member: member.into(), term, t_ms });
    }

    fn stepped_down(&self, set: &str, member: &str, term: u64, t_ms: u64) {
        self.lock().stepdowns.push((set.into(), member.into(), term, t_ms));
    }

    fn recovered(&self, set: &str, member: &str, entries: &[OplogEntry]) {
        self.lock().oplogs.insert((set.into(), member.into()), slots(entries).collect());
    }

    fn appended(&self, set: &str, member: &str, entries: &[OplogEntry]) {
        let mut h = self.lock();
        let log = h.oplogs.entry((set.into(), member.into())).or_default();
        if let Some(first) = entries.first() {
            // Positions are the oplog's `ts`; keep them aligned even if a report were missed.
            log.truncate(first.optime.ts.saturating_sub(1) as usize);
        }
        log.extend(slots(entries));
    }

    fn rolled_back(&self, set: &str, member: &str, common: OpTime, removed: &[OplogEntry], t_ms: u64) {
        let mut h = self.lock();
        h.oplogs.entry((set.into(), member.into())).or_default().truncate(common.ts as usize);
        h.rollbacks.push((set.into(), member.into(), common, removed.len(), t_ms));
    }
}
