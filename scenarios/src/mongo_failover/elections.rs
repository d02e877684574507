//! Election safety (one primary per term and set) and the time a failover takes.

use std::collections::BTreeMap;

use super::history::History;
use crate::scenario::Verdict;

pub fn no_two_primaries_in_a_term(h: &History, verdict: &mut Verdict) {
    let mut by_term: BTreeMap<(&str, u64), &str> = BTreeMap::new();
    for e in &h.elections {
        let first = *by_term.entry((e.set.as_str(), e.term)).or_insert(e.member.as_str());
        if first != e.member {
            verdict.violation("split brain", format!("{} and {} were both primary of {} in term {} (second at {} ms)",
                first, e.member, e.set, e.term, e.t_ms
            ));
        }
    }
}

/// `election_ms`: from the first fault on a primary (which always outlasts the election
/// timeout) to the next primary of that set, which accepts writes as soon as it is elected.
/// A split vote makes this one or two election timeouts longer, as it would in MongoDB.
pub fn election_time(h: &History, verdict: &mut Verdict) {
    let Some(f) = h.faults.first() else { return };
    let elected = h.elections.iter().filter(|e| e.set == f.set && e.t_ms > f.at_ms).map(|e| e.t_ms).min();
    if let Some(t) = elected {
        verdict.metric("election_ms", (t - f.at_ms) as f64);
        verdict.metric(&format!("election_after_{}_ms", f.kind), (t - f.at_ms) as f64);
    }
}
