//! Durability as a client sees it after the last crash: every document an acknowledged write
//! created, and the client relied on, is read back through a router at `readConcern:
//! "majority"` once the cluster recovered from the final power loss ([`super::verifier`]).
//!
//! A missing document is a `lost write`. A document the verifier never managed to read back
//! (no primary elected or no commit in the new term within the recovery time) is `liveness`:
//! the cluster did not come back. Runs without the ending (no recovery) are not judged here.

use std::collections::{BTreeMap, BTreeSet};

use sim::Outcome;
use system::mongo::{MongoCluster, WriteAcked};

use super::verifier::ReadBack;
use crate::scenario::{Checker, Verdict};

/// At most this many violations are listed per kind; a count says the rest.
const LIST_AT_MOST: usize = 5;

pub struct ReadBackChecker {
    pub cluster: MongoCluster,
}

impl Checker for ReadBackChecker {
    fn check(&self, outcome: &Outcome, verdict: &mut Verdict) {
        let sets = self.cluster.shard_sets();
        outcome.observations(|o| {
            let Some(recovery_ms) = o.recovery_started_ms() else { return };
            // (namespace, prefix) → the ids read back.
            let mut read: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
            for r in o.of::<ReadBack>().filter(|r| sets.contains(&r.value.set.as_str())) {
                read.entry((r.value.ns, r.value.prefix)).or_default().extend(r.value.ids);
            }
            let (mut lost, mut unread, mut checked) = (Vec::new(), BTreeSet::new(), 0);
            for a in o.of::<WriteAcked>().filter(|a| a.value.relied && sets.contains(&a.value.set.as_str())) {
                for (ns, id) in &a.value.created {
                    let found = read.iter().find(|((n, prefix), _)| n == ns && id.starts_with(prefix.as_str()));
                    match found {
                        None => {
                            unread.insert(format!("{ns} of {id}"));
                        }
                        Some((_, ids)) if !ids.contains(id) => lost.push(format!(
                            "{} acknowledged at {} by {} at {} (t={} ms) is not read back at majority after the recovery at {recovery_ms} ms",
                            a.value.what, a.value.concern, a.value.primary, a.value.optime, a.t_ms
                        )),
                        Some(_) => checked += 1,
                    }
                }
            }
            verdict.violations_upto("lost write", lost, LIST_AT_MOST);
            if !unread.is_empty() {
                let some: Vec<String> = unread.iter().take(LIST_AT_MOST).cloned().collect();
                verdict.violation(
                    "liveness",
                    format!("{} acknowledged documents were never read back after recovery: {}", unread.len(), some.join(", ")),
                );
            }
            verdict.metric("writes_read_back", checked as f64);
        });
    }
}
