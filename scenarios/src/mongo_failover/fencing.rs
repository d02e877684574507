//! Distributed locks: a token belongs to one holder (from the grants the clients observed), and
//! each shard's surviving oplog ([`super::on_disk`]) holds a lock's fenced writes in token order,
//! so two holders never both acted on a shard out of turn.

use std::collections::BTreeMap;

use sim::Outcome;
use system::mongo::{FencedOut, LockGranted, MongoCluster};

use super::on_disk::SetOnDisk;
use crate::scenario::{Checker, Verdict};

/// At most this many violations are listed per kind; a count says the rest.
const LIST_AT_MOST: usize = 5;

pub struct FencingChecker {
    pub cluster: MongoCluster,
}

impl Checker for FencingChecker {
    fn check(&self, outcome: &Outcome, verdict: &mut Verdict) {
        let config_set = self.cluster.config_set();
        let shards = self.cluster.shard_sets();
        let (grants, rejections) = outcome.observations(|o| {
            let grants: Vec<LockGranted> =
                o.of::<LockGranted>().map(|g| g.value).filter(|g| g.set == config_set).collect();
            (grants, o.of::<FencedOut>().filter(|f| shards.contains(&f.value.set.as_str())).count())
        });
        one_holder_per_token(&grants, verdict);
        let sets = SetOnDisk::read_all(&self.cluster, outcome, verdict);
        let mut out_of_order = Vec::new();
        for set in sets.iter().filter(|s| shards.contains(&s.set.as_str())) {
            out_of_order.extend(fenced_writes_out_of_order(set));
        }
        verdict.violations_upto("split lock", out_of_order, LIST_AT_MOST);
        verdict.metric("lock_grants", grants.len() as f64);
        verdict.metric("fence_rejections", rejections as f64);
    }
}

fn one_holder_per_token(grants: &[LockGranted], verdict: &mut Verdict) {
    let mut holders: BTreeMap<(&str, u64), &str> = BTreeMap::new();
    let mut split = Vec::new();
    for g in grants {
        let first = *holders.entry((g.lock.as_str(), g.token)).or_insert(g.holder.as_str());
        if first != g.holder {
            split.push(format!("token {} of {} was granted to both {first} and {}", g.token, g.lock, g.holder));
        }
    }
    verdict.violations_upto("split lock", split, LIST_AT_MOST);
}

/// Each fenced write in the set's final history whose token is below one the shard had already
/// accepted for the same lock.
fn fenced_writes_out_of_order(set: &SetOnDisk) -> Vec<String> {
    let Some(history) = set.final_history() else { return Vec::new() };
    let mut highest: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    let mut found = Vec::new();
    for e in history.oplog.entries() {
        let Some(f) = &e.fence else { continue };
        let ts = e.optime.ts;
        let seen = highest.entry(f.lock.as_str()).or_insert((f.token, ts));
        if f.token < seen.0 {
            found.push(format!(
                "{} accepted a write of {} with token {} at ts {ts} after token {} at ts {} ({})",
                set.set, f.lock, f.token, seen.0, seen.1, history.host
            ));
        } else {
            *seen = (f.token, ts);
        }
    }
    found
}
