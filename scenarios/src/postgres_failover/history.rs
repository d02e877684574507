//! What the workload observes (each transaction it tried, with the `synchronous_commit` class it
//! asked for, and how it ended; each read a standby served), and the history a checker assembles
//! from the whole observation stream: those, plus the members' promotions, demotions, rewinds,
//! acknowledgements, first writes, synchronous standbys and flush positions over time.
//!
//! A history belongs to one cluster: observations from nodes outside it, and acknowledgements
//! naming a member outside it, are left out, so two clusters in one world are judged apart.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sim::observation::Observations;
use sim::{Fault, Observation};
use system::postgres::data::{SyncCommit, Table};
use system::postgres::observe::{Acknowledged, Demoted, FirstWrite, Flushed, Promoted, Rewound, SyncStandby};
use system::postgres::wal::Position;
use system::postgres::PgCluster;

/// What kind of application action a transaction was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    SignUp,
    Grant,
    Revoke,
    Profile,
    Tenant,
}

impl OpKind {
    pub fn name(self) -> &'static str {
        match self {
            OpKind::SignUp => "sign-up",
            OpKind::Grant => "permission grant",
            OpKind::Revoke => "permission revocation",
            OpKind::Profile => "profile update",
            OpKind::Tenant => "tenant creation",
        }
    }
}

/// One transaction of the workload: invoked, then settled one way or the other.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxnEvent {
    Invoked {
        txn: String,
        kind: OpKind,
        class: SyncCommit,
    },
    /// The store acknowledged it: member `node`, primary of `epoch`, wrote it at `index`.
    Committed {
        txn: String,
        kind: OpKind,
        /// The `synchronous_commit` the application asked for: what the acknowledgement promises.
        class: SyncCommit,
        tables: Vec<Table>,
        node: String,
        epoch: u64,
        index: u64,
    },
    /// Definitely not committed.
    Rejected {
        txn: String,
        reason: String,
    },
    /// Its fate is unknown.
    Indeterminate {
        txn: String,
        reason: String,
    },
}

impl Observation for TxnEvent {
    const KIND: &'static str = "pg.client.txn";
}

/// A read a standby served.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReplicaRead {
    pub node: String,
    pub applied: Position,
    /// `(key, epoch, index)` of each row returned.
    pub rows: Vec<(String, u64, u64)>,
    pub lag_ms: u64,
    pub lag_records: u64,
}

impl Observation for ReplicaRead {
    const KIND: &'static str = "pg.client.replica_read";
}

/// A commit the store acknowledged.
#[derive(Clone, Debug)]
pub struct Ack {
    pub txn: String,
    pub kind: OpKind,
    pub class: SyncCommit,
    pub node: String,
    pub epoch: u64,
    pub index: u64,
    pub at_ms: u64,
}

impl Ack {
    /// An `on` commit: it survives anything the cluster promises to survive, failovers included.
    pub fn must_survive(&self) -> bool {
        self.class == SyncCommit::On
    }
}

/// A commit a member acknowledged, as the member saw it (whether or not the answer arrived).
#[derive(Clone, Debug)]
pub struct ServerAck {
    pub txn: String,
    pub node: String,
    pub epoch: u64,
    pub index: u64,
    pub at_ms: u64,
}

/// A member's promotion.
#[derive(Clone, Debug)]
pub struct Promotion {
    pub node: String,
    pub epoch: u64,
    /// The index of its timeline's first record.
    pub index: u64,
    pub at_ms: u64,
}

/// A fault the world applied: when, what, and the nodes it touched.
#[derive(Clone, Debug)]
pub struct AppliedFault {
    pub at_ms: u64,
    pub fault: Fault,
    pub nodes: Vec<String>,
}

/// One cluster's history, assembled from a run's observations.
#[derive(Debug, Default)]
pub struct History {
    pub acks: Vec<Ack>,
    pub attempts: u64,
    pub rejected: u64,
    pub indeterminate: u64,
    /// Reads served by standbys: `(at_ms, read)`.
    pub reads: Vec<(u64, ReplicaRead)>,
    pub promotions: Vec<Promotion>,
    /// `(node, epoch, at_ms)`.
    pub demotions: Vec<(String, u64, u64)>,
    /// `(node, kept, discarded, at_ms)`.
    pub rewinds: Vec<(String, u64, u64, u64)>,
    /// Per epoch: `(at_ms, flushed index)` of its primary, increasing.
    pub flushed: BTreeMap<u64, Vec<(u64, u64)>>,
    /// Acknowledgements as the members gave them.
    pub server_acks: Vec<ServerAck>,
    /// Per epoch: `(node, at_ms)` of its primary's first client write.
    pub first_writes: BTreeMap<u64, (String, u64)>,
    /// `(epoch, synchronous standby or None, at_ms)`, in order.
    pub sync_standbys: Vec<(u64, Option<String>, u64)>,
    pub faults: Vec<AppliedFault>,
}

impl History {
    /// The history of cluster `pg` in observations `o`.
    pub fn read(o: &Observations, pg: &PgCluster) -> History {
        let mut h = History::default();
        h.read_members(o, pg);
        h.read_workload(o, pg);
        h.faults =
            o.faults().map(|f| AppliedFault { at_ms: f.t_ms, fault: f.value.fault, nodes: f.value.nodes }).collect();
        h
    }

    fn read_members(&mut self, o: &Observations, pg: &PgCluster) {
        for p in o.of::<Promoted>().filter(|s| pg.is_member(s.node)) {
            self.promotions.push(Promotion {
                node: p.node.into(),
                epoch: p.value.epoch,
                index: p.value.index,
                at_ms: p.t_ms,
            });
        }
        for d in o.of::<Demoted>().filter(|s| pg.is_member(s.node)) {
            self.demotions.push((d.node.into(), d.value.epoch, d.t_ms));
        }
        for r in o.of::<Rewound>().filter(|s| pg.is_member(s.node)) {
            self.rewinds.push((r.node.into(), r.value.kept, r.value.discarded, r.t_ms));
        }
        for a in o.of::<Acknowledged>().filter(|s| pg.is_member(s.node)) {
            let (epoch, index) = (a.value.epoch, a.value.index);
            self.server_acks.push(ServerAck { txn: a.value.txn, node: a.node.into(), epoch, index, at_ms: a.t_ms });
        }
        for w in o.of::<FirstWrite>().filter(|s| pg.is_member(s.node)) {
            self.first_writes.entry(w.value.epoch).or_insert((w.node.into(), w.t_ms));
        }
        for s in o.of::<SyncStandby>().filter(|s| pg.is_member(s.node)) {
            self.sync_standbys.push((s.value.epoch, s.value.standby, s.t_ms));
        }
        for f in o.of::<Flushed>().filter(|s| pg.is_member(s.node)) {
            let series = self.flushed.entry(f.value.epoch).or_default();
            if series.last().is_none_or(|(_, i)| f.value.index > *i) {
                series.push((f.t_ms, f.value.index));
            }
        }
    }

    fn read_workload(&mut self, o: &Observations, pg: &PgCluster) {
        let mut invoked: BTreeMap<String, (OpKind, SyncCommit)> = BTreeMap::new();
        for e in o.of::<TxnEvent>() {
            match e.value {
                TxnEvent::Invoked { txn, kind, class } => {
                    self.attempts += 1;
                    invoked.insert(txn, (kind, class));
                }
                TxnEvent::Committed { txn, kind, class, node, epoch, index, .. } if pg.is_member(&node) => {
                    self.acks.push(Ack { txn, kind, class, node, epoch, index, at_ms: e.t_ms });
                }
                TxnEvent::Committed { .. } => {}
                TxnEvent::Rejected { .. } => self.rejected += 1,
                TxnEvent::Indeterminate { .. } => self.indeterminate += 1,
            }
        }
        // A commit a member acknowledged whose answer never arrived (the member crashed, the
        // connection broke) promised as much as one that arrived: judged the same way.
        let heard: std::collections::BTreeSet<String> = self.acks.iter().map(|a| a.txn.clone()).collect();
        for a in self.server_acks.iter().filter(|a| !heard.contains(&a.txn)) {
            if let Some((kind, class)) = invoked.get(&a.txn) {
                self.acks.push(Ack {
                    txn: a.txn.clone(),
                    kind: *kind,
                    class: *class,
                    node: a.node.clone(),
                    epoch: a.epoch,
                    index: a.index,
                    at_ms: a.at_ms,
                });
            }
        }
        self.acks.sort_by_key(|a| a.at_ms);
        self.reads = o.of::<ReplicaRead>().filter(|r| pg.is_member(&r.value.node)).map(|r| (r.t_ms, r.value)).collect();
    }

    /// The highest index the primary of `epoch` had flushed at `at_ms`.
    pub fn flushed_by(&self, epoch: u64, at_ms: u64) -> u64 {
        let Some(series) = self.flushed.get(&epoch) else { return 0 };
        let upto = series.partition_point(|(t, _)| *t <= at_ms);
        if upto == 0 {
            0
        } else {
            series[upto - 1].1
        }
    }

    /// The members that were primary at `at_ms`, with their epochs: promoted by then, and not
    /// demoted, killed or restarted before it (a fault at `at_ms` itself finds them primary).
    pub fn primaries_at(&self, at_ms: u64) -> Vec<(&str, u64)> {
        self.promotions
            .iter()
            .filter(|p| p.at_ms <= at_ms && self.tenure_end_ms(p) >= at_ms)
            .map(|p| (p.node.as_str(), p.epoch))
            .collect()
    }

    /// When `p`'s time as primary ended (`u64::MAX`: it never did).
    fn tenure_end_ms(&self, p: &Promotion) -> u64 {
        let demoted =
            self.demotions.iter().filter(|(n, e, t)| *n == p.node && *e == p.epoch && *t >= p.at_ms).map(|d| d.2);
        let died = self
            .faults
            .iter()
            .filter(|f| {
                f.at_ms >= p.at_ms && matches!(f.fault, Fault::Kill(_) | Fault::Restart(_)) && f.nodes.contains(&p.node)
            })
            .map(|f| f.at_ms);
        demoted.chain(died).min().unwrap_or(u64::MAX)
    }
}
