//! Election safety (one primary per term and set) and the time a failover takes, from the
//! members' [`MemberEvent`] claims and the faults the world applied.
//!
//! A fault hit a primary when it was a kill, restart, partition, isolation or pause whose nodes
//! included a member that, by its own last claim before the fault, was primary then (it had
//! become primary and not stepped down or restarted since). So the metric follows whatever
//! schedule ran, and a run with no such fault simply measures none.

use std::collections::BTreeMap;

use sim::observation::{Observations, Seen};
use sim::{Fault, Outcome};
use system::mongo::{MemberEvent, MongoCluster};

use crate::scenario::{Checker, Verdict};

pub struct ElectionChecker {
    pub cluster: MongoCluster,
}

/// A member's claim (when, which member, what), of this cluster's sets only.
type Claim<'a> = Seen<'a, MemberEvent>;

impl Checker for ElectionChecker {
    fn check(&self, outcome: &Outcome, verdict: &mut Verdict) {
        outcome.observations(|o| {
            let sets = self.cluster.sets();
            let claims: Vec<Claim> = o.of::<MemberEvent>().filter(|c| sets.contains(&set_of(&c.value))).collect();
            no_two_primaries_in_a_term(&claims, verdict);
            election_time(o, &claims, verdict);
        });
    }
}

fn set_of(e: &MemberEvent) -> &str {
    match e {
        MemberEvent::Recovered { set, .. }
        | MemberEvent::BecamePrimary { set, .. }
        | MemberEvent::SteppedDown { set, .. }
        | MemberEvent::RolledBack { set, .. } => set,
    }
}

fn no_two_primaries_in_a_term(claims: &[Claim], verdict: &mut Verdict) {
    let mut by_term: BTreeMap<(&str, u64), &str> = BTreeMap::new();
    for c in claims {
        let MemberEvent::BecamePrimary { set, term, .. } = &c.value else { continue };
        let first = *by_term.entry((set.as_str(), *term)).or_insert(c.node);
        if first != c.node {
            let at = c.t_ms;
            verdict.violation(
                "split brain",
                format!("{first} and {} were both primary of {set} in term {term} (second at {at} ms)", c.node),
            );
        }
    }
}

/// `election_ms`: from the first fault that hit a primary to the next primary of its set,
/// which accepts writes as soon as it is elected. A split vote makes this one or two election
/// timeouts longer, as it would in MongoDB.
fn election_time(o: &Observations, claims: &[Claim], verdict: &mut Verdict) {
    let hit = o.faults().filter(|f| disrupts(&f.value.fault)).find_map(|f| {
        let set = f.value.nodes.iter().find_map(|n| primary_of_at(claims, n, f.t_ms))?;
        Some((f.t_ms, f.value.fault.kind(), set))
    });
    let Some((at_ms, kind, set)) = hit else { return };
    let elected = claims
        .iter()
        .find(|c| c.t_ms > at_ms && matches!(&c.value, MemberEvent::BecamePrimary { set: s, .. } if s == set));
    if let Some(c) = elected {
        verdict.metric("election_ms", (c.t_ms - at_ms) as f64);
        verdict.metric(&format!("election_after_{kind}_ms"), (c.t_ms - at_ms) as f64);
    }
}

/// Faults that take a primary away from its set.
fn disrupts(fault: &Fault) -> bool {
    matches!(
        fault,
        Fault::Kill(_)
            | Fault::Restart(_)
            | Fault::Partition { .. }
            | Fault::PartitionOneWay { .. }
            | Fault::Isolate(_)
            | Fault::Pause(_)
    )
}

/// The set `node` was primary of at `t_ms`, by its own last claim up to then.
fn primary_of_at<'a>(claims: &'a [Claim], node: &str, t_ms: u64) -> Option<&'a str> {
    let last = claims.iter().rev().find(|c| c.node == node && c.t_ms <= t_ms)?;
    match &last.value {
        MemberEvent::BecamePrimary { set, .. } => Some(set),
        // A rollback happens only on a secondary.
        _ => None,
    }
}
