//! What survives of each replica set: every member's oplog read back from its disk at the end of
//! the run (with the member's own on-disk reader), and the set's final history.
//!
//! The final history is the oplog of the member whose last optime is newest (term first, then
//! position). It is the history the set goes on with: voters refuse a candidate whose oplog is
//! behind theirs, so whoever is elected next holds it, and every other member either already
//! agrees with it or rolls back to it. What a member said it wrote is not consulted: only its
//! disk is evidence.

use sim::Outcome;
use system::mongo::cluster::MemberOplog;
use system::mongo::{MongoCluster, OpTime};

use crate::scenario::Verdict;

/// One replica set's members as their disks left them.
pub struct SetOnDisk {
    pub set: String,
    pub members: Vec<MemberOplog>,
}

impl SetOnDisk {
    /// Every set of `cluster`, read from the outcome's disks. A member whose oplog cannot be read
    /// is reported (it would hide a loss), and counted as holding nothing.
    pub fn read_all(cluster: &MongoCluster, outcome: &Outcome, verdict: &mut Verdict) -> Vec<SetOnDisk> {
        let disks = &outcome.world.disks;
        let sets: Vec<SetOnDisk> = cluster
            .sets()
            .into_iter()
            .map(|set| SetOnDisk { set: set.to_string(), members: cluster.oplogs_on_disk(disks, set) })
            .collect();
        for m in sets.iter().flat_map(|s| &s.members) {
            if let Some(error) = &m.unreadable {
                verdict.violation("unreadable oplog", format!("{}'s oplog could not be read: {error}", m.host));
            }
        }
        sets
    }

    /// The member holding the final history; None if no member holds any entry.
    pub fn final_history(&self) -> Option<&MemberOplog> {
        self.members.iter().filter(|m| !m.oplog.entries().is_empty()).max_by_key(|m| m.oplog.last())
    }

    /// Whether the final history holds exactly `optime`.
    pub fn survives(&self, optime: OpTime) -> bool {
        self.final_history().is_some_and(|m| m.oplog.contains(optime))
    }

    /// How many members' disks hold exactly `optime`.
    pub fn holders(&self, optime: OpTime) -> usize {
        self.members.iter().filter(|m| m.oplog.contains(optime)).count()
    }

    /// For messages: where the final history is and how far it reaches.
    pub fn describe_final(&self) -> String {
        match self.final_history() {
            Some(m) => format!("{}'s final history ({} up to {})", self.set, m.host, m.oplog.last()),
            None => format!("{}, whose members' disks hold no oplog at all", self.set),
        }
    }
}
