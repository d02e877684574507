//! Distributed locks: a token belongs to one holder, and each shard accepts a lock's fenced
//! writes in token order, so two holders never both act on the shard out of turn.

use std::collections::BTreeMap;

use super::history::History;
use crate::scenario::Verdict;

pub fn tokens_decide_lock_order(h: &History, verdict: &mut Verdict) {
    let mut holders: BTreeMap<(&str, u64), &str> = BTreeMap::new();
    for g in &h.grants {
        let first = *holders.entry((g.lock.as_str(), g.token)).or_insert(g.holder.as_str());
        if first != g.holder {
            verdict.violation("split lock", format!("token {} of {} was granted to both {} and {}",
                g.token, g.lock, first, g.holder
            ));
        }
    }
    for set in super::SHARDS {
        let Some(primary) = h.final_primary(set) else { continue };
        let mut highest: BTreeMap<&str, (u64, usize)> = BTreeMap::new();
        for (i, (_, fence)) in h.oplog(set, &primary.member).iter().enumerate() {
            let Some(f) = fence else { continue };
            let seen = highest.entry(f.lock.as_str()).or_insert((f.token, i + 1));
            if f.token < seen.0 {
                verdict.violation("split lock", format!("{set} accepted a write of {} with token {} at ts {} after token {} at ts {}",
                    f.lock,
                    f.token,
                    i + 1,
                    seen.0,
                    seen.1
                ));
            } else {
                *seen = (f.token, i + 1);
            }
        }
    }
}
