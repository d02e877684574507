//! Durability: what the stack was told is stored survives, and majority reads only return
//! data that was never rolled back.

use super::history::{holds, Ack, History};
use crate::scenario::Verdict;

/// At most this many violations are listed per kind; a count says the rest.
const LIST_AT_MOST: usize = 5;

/// Every acknowledged write the stack relies on is in the oplog of its set's final primary
/// (the member elected in the highest term, which holds every majority-committed entry).
/// Unrelied writes (consumer positions at w:1) may be lost: they are counted, not flagged.
pub fn acknowledged_writes_survive(h: &History, verdict: &mut Verdict) {
    let mut lost: Vec<&Ack> = Vec::new();
    let mut unrelied_lost = 0;
    for ack in &h.acks {
        let Some(primary) = h.final_primary(&ack.set) else {
            verdict.violation("liveness", format!("{} never elected a primary", ack.set));
            return;
        };
        if holds(h.oplog(&ack.set, &primary.member), ack.optime) {
            continue;
        }
        if ack.relied {
            lost.push(ack);
        } else {
            unrelied_lost += 1;
        }
    }
    for ack in lost.iter().take(LIST_AT_MOST) {
        let p = h.final_primary(&ack.set).expect("checked above");
        verdict.violation("lost write", format!("{} acknowledged at {} by {} at optime {} (t={} ms) is missing from {}'s final primary {} (term {})",
            ack.what, ack.concern, ack.primary, ack.optime, ack.t_ms, ack.set, p.member, p.term
        ));
    }
    if lost.len() > LIST_AT_MOST {
        verdict.violation("lost write", format!("{} more acknowledged writes lost", lost.len() - LIST_AT_MOST));
    }
    verdict.metric("unrelied_w1_writes_lost", unrelied_lost as f64);
}

/// `readConcern: majority` returns only majority-committed data, which no rollback undoes.
pub fn majority_reads_never_roll_back(h: &History, verdict: &mut Verdict) {
    let mut listed = 0;
    for read in &h.reads {
        let Some(primary) = h.final_primary(&read.set) else { continue };
        let log = h.oplog(&read.set, &primary.member);
        if let Some(gone) = read.seen.iter().find(|o| !holds(log, **o)) {
            listed += 1;
            if listed <= LIST_AT_MOST {
                verdict.violation("dirty read", format!("{}'s majority read of {} on {} at {} ms returned a version written at {} that was rolled back",
                    read.app, read.doc, read.set, read.t_ms, gone
                ));
            }
        }
    }
}
