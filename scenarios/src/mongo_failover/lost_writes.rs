//! Durability, judged from what the members' disks hold at the end ([`super::on_disk`]), not
//! from what any member said it appended:
//! - every acknowledged write a client relied on is in its set's final history (`lost write`);
//! - every `w:majority` acknowledgement is on the disks of a majority of its set's members, the
//!   promise of that class (`lost write` too: one more failure would lose it);
//! - a `readConcern: "majority"` read returned only versions the final history still holds
//!   (`dirty read`);
//! - no member ever rolled back an entry that was majority-committed (`rollback past majority`):
//!   one acknowledged at `w:majority`, returned by a majority read, or that the member itself
//!   had learned was committed (MongoDB's fatal rollback case).
//!
//! A rolled-back `w:1` acknowledgement is what `w:1` allows: it is counted
//! (`w1_acked_rolled_back`) and marks the run as having reached that window
//! (`mongo.w1_acked_rolled_back`), not flagged.
//!
//! Every set is judged, and every loss reported (up to a listing bound per kind, with a count of
//! the rest). Writes a client did not rely on (progress markers at `w:1`) are counted, not
//! flagged. Observations from another cluster's sets are ignored, so two clusters in one world
//! each get their own checker.

use std::collections::BTreeMap;

use sim::observation::Observations;
use sim::{Outcome, WorldState};
use system::mongo::{MajorityRead, MemberEvent, MongoCluster, OpTime, WriteAcked, WriteConcern};

use super::on_disk::SetOnDisk;
use crate::scenario::{Checker, Verdict};

/// At most this many violations are listed per kind; a count says the rest.
const LIST_AT_MOST: usize = 5;

pub struct DurabilityChecker {
    pub cluster: MongoCluster,
}

/// The sets of one cluster as their members' disks left them, by name.
type Sets<'a> = BTreeMap<&'a str, &'a SetOnDisk>;

impl Checker for DurabilityChecker {
    fn check(&self, outcome: &Outcome, verdict: &mut Verdict) {
        let sets = SetOnDisk::read_all(&self.cluster, outcome, verdict);
        let sets: Sets = sets.iter().map(|s| (s.set.as_str(), s)).collect();
        outcome.observations(|o| {
            let acks: Vec<(u64, WriteAcked)> = o
                .of::<WriteAcked>()
                .filter(|a| sets.contains_key(a.value.set.as_str()))
                .map(|a| (a.t_ms, a.value))
                .collect();
            acknowledged_writes_survive(&sets, &acks, verdict);
            majority_reads_never_roll_back(&sets, o, verdict);
            let sim_s = outcome.sim_time_ms as f64 / 1000.0;
            verdict.metric("acked_writes_per_sim_s", acks.len() as f64 / sim_s);
            rollbacks(&sets, o, &outcome.world, verdict);
        });
    }
}

fn majority_reads_never_roll_back(sets: &Sets, o: &Observations, verdict: &mut Verdict) {
    let reads = o.of::<MajorityRead>().filter(|r| sets.contains_key(r.value.set.as_str()));
    let dirty: Vec<String> = reads
        .filter_map(|r| {
            let set = sets[r.value.set.as_str()];
            let gone = r.value.seen.iter().find(|at| !set.survives(**at))?;
            let (who, what, at, history) = (r.node, &r.value.what, r.t_ms, set.describe_final());
            Some(format!(
                "{who}'s majority read of {what} at {at} ms returned a version written at {gone}, not in {history}"
            ))
        })
        .collect();
    verdict.violations_upto("dirty read", dirty, LIST_AT_MOST);
}

/// Every rollback a member reports, judged against what clients were promised: undoing a
/// majority-committed entry is a violation, undoing an acknowledged `w:1` write is counted.
fn rollbacks(sets: &Sets, o: &Observations, world: &WorldState, verdict: &mut Verdict) {
    let acked: BTreeMap<(String, OpTime), WriteAcked> =
        o.of::<WriteAcked>().map(|a| ((a.value.set.clone(), a.value.optime), a.value)).collect();
    let mut read: BTreeMap<(String, OpTime), &str> = BTreeMap::new();
    for r in o.of::<MajorityRead>() {
        for at in r.value.seen {
            read.entry((r.value.set.clone(), at)).or_insert(r.node);
        }
    }
    let (mut count, mut entries, mut w1_lost) = (0, 0, 0);
    let mut past_majority = Vec::new();
    for e in o.of::<MemberEvent>() {
        let MemberEvent::RolledBack { set, common, removed, past_commit } = &e.value else { continue };
        if !sets.contains_key(set.as_str()) {
            continue;
        }
        count += 1;
        entries += removed.len();
        let (who, at) = (e.node, e.t_ms);
        if *past_commit {
            past_majority
                .push(format!("{who} rolled back {set} to {common} at {at} ms past the commit point it had learned"));
        }
        for optime in removed {
            let key = (set.clone(), *optime);
            match acked.get(&key) {
                Some(a) if a.concern == WriteConcern::Majority => past_majority
                    .push(format!("{who} rolled back {} (acknowledged at w:majority at {optime}) at {at} ms", a.what)),
                Some(_) => w1_lost += 1,
                None => {}
            }
            if let Some(reader) = read.get(&key) {
                past_majority
                    .push(format!("{who} rolled back {optime} of {set} at {at} ms, which {reader} read at majority"));
            }
        }
    }
    verdict.violations_upto("rollback past majority", past_majority, LIST_AT_MOST);
    verdict.metric("rollbacks", count as f64);
    verdict.metric("rolled_back_entries", entries as f64);
    verdict.metric("w1_acked_rolled_back", w1_lost as f64);
    if w1_lost > 0 {
        world.sometimes(W1_ROLLED_BACK);
    }
}

/// The window probe: an acknowledged `w:1` write was rolled back.
pub const W1_ROLLED_BACK: &str = "mongo.w1_acked_rolled_back";

fn acknowledged_writes_survive(sets: &Sets, acks: &[(u64, WriteAcked)], verdict: &mut Verdict) {
    let mut lost = Vec::new();
    let mut unrelied_lost = 0;
    for (t_ms, ack) in acks {
        let set = sets[ack.set.as_str()];
        let said = |why: String| {
            format!(
                "{} acknowledged at {} by {} at optime {} (t={t_ms} ms) {why}",
                ack.what, ack.concern, ack.primary, ack.optime
            )
        };
        if !set.survives(ack.optime) {
            if ack.relied {
                lost.push(said(format!("is missing from {}", set.describe_final())));
            } else {
                unrelied_lost += 1;
            }
            continue;
        }
        let holders = set.holders(ack.optime);
        let majority = set.members.len() / 2 + 1;
        if ack.concern == WriteConcern::Majority && holders < majority {
            lost.push(said(format!("is on {holders} of {} members' disks of {}", set.members.len(), set.set)));
        }
    }
    verdict.violations_upto("lost write", lost, LIST_AT_MOST);
    verdict.metric("unrelied_w1_writes_lost", unrelied_lost as f64);
}
