//! Durability as a client sees it after the last crash: every document an acknowledged write
//! created, and the client relied on, is read back through a router at `readConcern:
//! "majority"` once the cluster recovered from the final power loss ([`super::verifier`]).
//!
//! A missing document is a `lost write`, and data lost (`write`, at its acknowledgement). A document the verifier never managed to read back
//! (no primary elected or no commit in the new term within the recovery time) is `liveness`:
//! the cluster did not come back. Runs without the ending (no recovery) are not judged here.

use std::collections::{BTreeMap, BTreeSet};

use sim::{Observations, Outcome};
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
        outcome.observations(|o| self.judge(o, verdict));
    }
}

impl ReadBackChecker {
    fn judge(&self, o: &Observations, verdict: &mut Verdict) {
        let sets = self.cluster.shard_sets();
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
                    Some((_, ids)) if !ids.contains(id) => {
                        verdict.data_lost("write", a.t_ms);
                        lost.push(format!(
                            "{} acknowledged at {} by {} at {} (t={} ms) is not read back at majority after the recovery at {recovery_ms} ms",
                            a.value.what, a.value.concern, a.value.primary, a.value.optime, a.t_ms
                        ))
                    }
                    Some(_) => checked += 1,
                }
            }
        }
        verdict.violations_upto("lost write", lost, LIST_AT_MOST);
        if !unread.is_empty() {
            let some: Vec<String> = unread.iter().take(LIST_AT_MOST).cloned().collect();
            verdict.violation(
                "liveness",
                format!(
                    "{} acknowledged documents were never read back after recovery: {}",
                    unread.len(),
                    some.join(", ")
                ),
            );
        }
        verdict.metric("writes_read_back", checked as f64);
    }
}

#[cfg(test)]
mod tests {
    use sim::{EndingPhase, EndingStep, Observation};
    use system::mongo::{OpTime, WriteConcern};

    use super::*;
    use crate::scenario::Lost;

    fn push<T: Observation>(o: &mut Observations, t_ms: u64, value: &T) {
        o.push(t_ms, "app-1", T::KIND, serde_json::to_value(value).expect("serializes"));
    }

    /// One acknowledged insert of `id` on `set` at 1 s, then a recovery and a read-back of `read`.
    fn lost(set: &str, id: &str, read: &[&str]) -> Vec<Lost> {
        let mut o = Observations::default();
        let created = vec![("crdt_ops".to_string(), id.to_string())];
        let ack = WriteAcked {
            set: set.into(),
            primary: format!("{set}-1"),
            what: format!("crdt op {id}"),
            concern: WriteConcern::Majority,
            relied: true,
            optime: OpTime::default(),
            created,
        };
        push(&mut o, 1_000, &ack);
        push(&mut o, 60_000, &EndingStep { phase: EndingPhase::Recovery, nodes: vec![], lost_bytes: 0 });
        let ids = read.iter().map(|s| s.to_string()).collect();
        let back = ReadBack { set: set.into(), ns: "crdt_ops".into(), prefix: "doc-0/".into(), ids };
        push(&mut o, 70_000, &back);
        let mut v = Verdict::default();
        ReadBackChecker { cluster: crate::mongo_failover::spec(None).handle() }.judge(&o, &mut v);
        v.lost
    }

    #[test]
    fn an_acknowledged_document_not_read_back_after_recovery_is_data_lost() {
        let set = crate::mongo_failover::spec(None).handle().shard_sets()[0].to_string();
        assert!(lost(&set, "doc-0/a", &["doc-0/a"]).is_empty());
        assert_eq!(lost(&set, "doc-0/a", &["doc-0/b"]), vec![Lost { what: "write".into(), acked_at_ms: 1_000 }]);
    }
}
