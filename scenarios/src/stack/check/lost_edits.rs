//! No acknowledged edit lost: every (client, clock) range an editor was acknowledged (in any of
//! its sessions) is covered by the state vector of the document read back after the ending's
//! power loss and recovery, from MongoDB alone and through the front door. The acknowledgement
//! promised the edit was in the log with `acks=all`; the log's consumers owe it to MongoDB.
//!
//! Each range missing from MongoDB is also recorded as data lost (`edit`, at the time it was
//! acknowledged) for the availability report.

use sim::Outcome;

use crate::scenario::{Checker, Verdict};
use crate::stack::acked::RangeSet;

pub struct LostEditChecker;

impl Checker for LostEditChecker {
    fn check(&self, outcome: &Outcome, verdict: &mut Verdict) {
        let finals = super::finals_by_doc(outcome);
        let verified = super::verified_by_doc(outcome);
        let mut lost = Vec::new();
        let mut acked_total = 0;
        for (doc, fs) in &finals {
            let Some(v) = verified.get(doc) else { continue };
            for (node, f) in fs {
                let acked: RangeSet = f.acked.iter().copied().collect();
                acked_total += acked.len();
                for (what, read) in [("MongoDB", &v.mongo), ("front door", &v.front_door)] {
                    let Ok(state) = read else { continue };
                    let missing = acked.missing_from(&state.sv);
                    if !missing.is_empty() {
                        // Counted once, from MongoDB's read (the front door serves the same store).
                        if what == "MongoDB" {
                            for r in &missing {
                                let acked_at_ms = f.acked_time(r.client, r.start).unwrap_or(outcome.sim_time_ms);
                                verdict.data_lost("edit", acked_at_ms);
                            }
                        }
                        let n: u64 = missing.iter().map(|r| u64::from(r.end - r.start)).sum();
                        lost.push(format!("{doc}: {n} acknowledged clocks of {node} missing from {what}: {missing:?}"));
                    }
                }
            }
        }
        verdict.metric("acked_clocks", acked_total as f64);
        verdict.violations_upto("lost edit", lost, 10);
    }
}
