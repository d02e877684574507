//! Multi-key transaction histories, for stores that offer transactions: what a transaction
//! client records (each transaction's invocation with its writes and reads, and how it ended, as
//! typed observations) and the Elle-style checker ([`consistency::elle`]) that looks for
//! dependency cycles and aborted or intermediate reads. Each anomaly is a violation whose kind is
//! the anomaly's name (`G1a`, `G-single-realtime`, ...) and whose message names the transactions.
//!
//! Only PostgreSQL's model has transactions to judge (see `postgres_failover::transactions`):
//! MongoDB's model has batched writes on one shard but no multi-document transactions and no
//! reads inside a batch, and Kafka's has no transactions, so neither is judged here.
//!
//! Values written are unique per key. A transaction invoked but never completed is of unknown
//! outcome: its writes may have happened, its reads are not known.

use std::collections::BTreeMap;

use consistency::elle::{self, Mop, Options, Txn};
use consistency::Outcome as Told;
use serde::{Deserialize, Serialize};
use sim::{NodeCtx, Observation, Outcome};

use crate::scenario::{Checker, Verdict};

/// At most this many anomalies of one kind are listed.
const LIST_AT_MOST: usize = 3;

/// One step of a transaction as invoked: a read's value comes with the completion.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Read { key: String },
    Write { key: String, value: String },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxnCompletion {
    /// Committed; each read step's value in order (`None`: absent).
    Ok {
        reads: Vec<Option<String>>,
    },
    Fail {
        reason: String,
    },
    Unknown {
        reason: String,
    },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxnHistoryEvent {
    Invoked { store: String, op: String, process: String, steps: Vec<Step> },
    Completed { store: String, op: String, completion: TxnCompletion },
}

impl Observation for TxnHistoryEvent {
    const KIND: &'static str = "client.txn";
}

/// Records one session's transactions on one store.
pub struct TxnRecorder {
    store: String,
    process: String,
    base: String,
    next: u64,
    session: u64,
}

impl TxnRecorder {
    pub fn new(ctx: &NodeCtx, store: &str, session: usize) -> Self {
        let base = format!("{}.{}/t{session}", ctx.name, ctx.incarnation);
        TxnRecorder { store: store.into(), process: format!("{base}.0"), base, next: 0, session: 0 }
    }

    /// A value no other transaction writes.
    pub fn unique_value(&self, n: usize) -> String {
        format!("{}#{}.{n}", self.base, self.next + 1)
    }

    pub fn invoke(&mut self, ctx: &NodeCtx, steps: Vec<Step>) -> String {
        self.next += 1;
        let op = format!("{}#{}", self.base, self.next);
        let (store, process) = (self.store.clone(), self.process.clone());
        ctx.observe(&TxnHistoryEvent::Invoked { store, op: op.clone(), process, steps });
        op
    }

    pub fn complete(&mut self, ctx: &NodeCtx, op: String, completion: TxnCompletion) {
        if matches!(completion, TxnCompletion::Unknown { .. }) {
            self.session += 1;
            self.process = format!("{}.{}", self.base, self.session);
        }
        ctx.observe(&TxnHistoryEvent::Completed { store: self.store.clone(), op, completion });
    }
}

/// Elle-style anomalies in the store's transaction histories; `realtime` for a store that
/// promises strict serializability (a single primary committing in WAL order).
pub struct ElleChecker {
    pub store: String,
    pub realtime: bool,
}

impl Checker for ElleChecker {
    fn check(&self, outcome: &Outcome, v: &mut Verdict) {
        let history =
            outcome.observations(|o| history(o.of::<TxnHistoryEvent>().map(|s| (s.t_ms, s.value)), &self.store));
        let anomalies = elle::check(&history, Options { realtime: self.realtime });
        let mut by_kind: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for a in anomalies {
            by_kind.entry(a.kind).or_default().push(a.explanation);
        }
        for (kind, messages) in by_kind {
            v.violations_upto(&kind, messages, LIST_AT_MOST);
        }
        v.metric("txns_ok", history.iter().filter(|t| t.outcome == Told::Ok).count() as f64);
        v.metric("txns_unknown", history.iter().filter(|t| t.outcome == Told::Unknown).count() as f64);
    }
}

/// The transactions of `store`, from its clients' events (with their simulated times).
pub fn history(events: impl Iterator<Item = (u64, TxnHistoryEvent)>, store: &str) -> Vec<Txn<String>> {
    let mut processes: BTreeMap<String, u64> = BTreeMap::new();
    let mut txns: Vec<(Txn<String>, Vec<Step>)> = Vec::new();
    let mut by_id: BTreeMap<String, usize> = BTreeMap::new();
    for (t_ms, event) in events {
        match event {
            TxnHistoryEvent::Invoked { store: s, op, process, steps } if s == store => {
                let n = processes.len() as u64;
                let process = *processes.entry(process).or_insert(n);
                by_id.insert(op, txns.len());
                let id = txns.len() as u64;
                let txn = Txn { id, process, invoke_ms: t_ms, complete_ms: None, outcome: Told::Unknown, mops: vec![] };
                txns.push((txn, steps));
            }
            TxnHistoryEvent::Completed { store: s, op, completion } if s == store => {
                let Some(&i) = by_id.get(&op) else { continue };
                let (txn, steps) = &mut txns[i];
                match completion {
                    TxnCompletion::Ok { reads } => {
                        txn.outcome = Told::Ok;
                        txn.complete_ms = Some(t_ms);
                        let mut reads = reads.into_iter();
                        txn.mops = steps
                            .iter()
                            .map(|step| match step {
                                Step::Read { key } => Mop::Read { key: key.clone(), value: reads.next().flatten() },
                                Step::Write { key, value } => Mop::Write { key: key.clone(), value: value.clone() },
                            })
                            .collect();
                    }
                    TxnCompletion::Fail { .. } => {
                        txn.outcome = Told::Fail;
                        txn.complete_ms = Some(t_ms);
                    }
                    TxnCompletion::Unknown { .. } => {}
                }
            }
            _ => {}
        }
    }
    txns.into_iter()
        .map(|(mut txn, steps)| {
            if txn.mops.is_empty() {
                // Not committed (or not known to be): its writes, no reads.
                txn.mops = steps
                    .into_iter()
                    .filter_map(|step| match step {
                        Step::Write { key, value } => Some(Mop::Write { key, value }),
                        Step::Read { .. } => None,
                    })
                    .collect();
            }
            txn
        })
        .collect()
}
