//! Single-key register histories, shared by the stores' register workloads
//! (`postgres_failover::registers`, `mongo_failover::registers`): what a register client records
//! (each operation's invocation and how it completed, as typed observations) and the checker that
//! judges the history for linearizability ([`consistency::linearizable`]).
//!
//! The invocation and completion times are the observations' simulated times, so the real-time
//! order the checker demands is the one the client saw. An operation invoked but never completed
//! (the client stopped, or its node died) is of unknown outcome, as is one that timed out.

use std::collections::BTreeMap;

use consistency::linearizable::{self, Op, RegisterOp};
use consistency::{Outcome as Told, Verdict as Judged};
use serde::{Deserialize, Serialize};
use sim::{NodeCtx, Observation, Outcome};

use crate::scenario::{Checker, Verdict};

/// At most this many non-linearizable keys are listed.
const LIST_AT_MOST: usize = 3;

/// What a register operation asked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Call {
    Read,
    /// A value unique within the key's history.
    Write(String),
}

/// How it ended, as the client was told.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Completion {
    /// Done; a read returned this value (`None`: the key was absent). `by` names the member
    /// that served or acknowledged it.
    Ok { read: Option<String>, by: String },
    /// Definitely not done (or a read that was not served).
    Fail { reason: String },
    /// May or may not have taken effect.
    Unknown { reason: String },
}

/// One event of a register history. `store` names the cluster (its prefix), so two stores'
/// histories in one world are judged apart.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegisterEvent {
    Invoked { store: String, op: String, process: String, key: String, call: Call },
    Completed { store: String, op: String, completion: Completion },
}

impl Observation for RegisterEvent {
    const KIND: &'static str = "client.register";
}

/// Records one client's operations on one store.
pub struct Recorder {
    pub store: String,
    /// The client session; a new one after an unknown outcome (its operation may still be
    /// pending, as Jepsen gives a crashed process's thread a new process id).
    pub process: String,
    next: u64,
    session: u64,
    base: String,
}

impl Recorder {
    pub fn new(ctx: &NodeCtx, store: &str, session: usize) -> Self {
        let base = format!("{}.{}/s{session}", ctx.name, ctx.incarnation);
        Recorder { store: store.into(), process: format!("{base}.0"), next: 0, session: 0, base }
    }

    /// Records the invocation; returns the operation's id.
    pub fn invoke(&mut self, ctx: &NodeCtx, key: &str, call: Call) -> String {
        self.next += 1;
        let op = format!("{}#{}", self.base, self.next);
        let (store, process, key) = (self.store.clone(), self.process.clone(), key.to_string());
        ctx.observe(&RegisterEvent::Invoked { store, op: op.clone(), process, key, call });
        op
    }

    pub fn complete(&mut self, ctx: &NodeCtx, op: String, completion: Completion) {
        if matches!(completion, Completion::Unknown { .. }) {
            self.session += 1;
            self.process = format!("{}.{}", self.base, self.session);
        }
        ctx.observe(&RegisterEvent::Completed { store: self.store.clone(), op, completion });
    }

    /// A value no other operation of any client writes.
    pub fn unique_value(&self) -> String {
        format!("{}#{}", self.base, self.next + 1)
    }
}

/// Linearizability of every register the store's clients used, key by key. A key the search
/// could not decide within `max_states` is counted (`linearizability_unknown_keys`), not failed.
pub struct LinearizabilityChecker {
    pub store: String,
    pub max_states: u64,
}

impl Checker for LinearizabilityChecker {
    fn check(&self, outcome: &Outcome, v: &mut Verdict) {
        let history =
            outcome.observations(|o| history(o.of::<RegisterEvent>().map(|s| (s.t_ms, s.value)), &self.store));
        let report = linearizable::check(&history, self.max_states);
        let failures: Vec<String> = report.failures().map(|(_, m)| m.to_string()).collect();
        v.violations_upto("not linearizable", failures, LIST_AT_MOST);
        let count = |o: Told| history.iter().filter(|op| op.outcome == o).count() as f64;
        v.metric("register_ops_ok", count(Told::Ok));
        v.metric("register_ops_unknown", count(Told::Unknown));
        v.metric("register_keys", report.keys.len() as f64);
        v.metric("linearizability_unknown_keys", report.unknown() as f64);
        v.metric("linearizability_states", report.explored() as f64);
        if let Judged::Unknown(_) = report.verdict() {
            v.metric("linearizability_gave_up", 1.0);
        }
    }
}

/// The operations of `store`, from its clients' events (with their simulated times).
pub fn history(events: impl Iterator<Item = (u64, RegisterEvent)>, store: &str) -> Vec<Op<String>> {
    let mut processes: BTreeMap<String, u64> = BTreeMap::new();
    let mut ops: Vec<Op<String>> = Vec::new();
    let mut by_id: BTreeMap<String, usize> = BTreeMap::new();
    for (t_ms, event) in events {
        match event {
            RegisterEvent::Invoked { store: s, op, process, key, call } if s == store => {
                let n = processes.len() as u64;
                let process = *processes.entry(process).or_insert(n);
                let op_kind = match call {
                    Call::Read => RegisterOp::Read(None),
                    Call::Write(v) => RegisterOp::Write(v),
                };
                by_id.insert(op, ops.len());
                let id = ops.len() as u64;
                ops.push(Op {
                    id,
                    process,
                    key,
                    op: op_kind,
                    invoke_ms: t_ms,
                    complete_ms: None,
                    outcome: Told::Unknown,
                });
            }
            RegisterEvent::Completed { store: s, op, completion } if s == store => {
                let Some(&i) = by_id.get(&op) else { continue };
                let op = &mut ops[i];
                match completion {
                    Completion::Ok { read, .. } => {
                        op.outcome = Told::Ok;
                        op.complete_ms = Some(t_ms);
                        if let RegisterOp::Read(v) = &mut op.op {
                            *v = read;
                        }
                    }
                    Completion::Fail { .. } => {
                        op.outcome = Told::Fail;
                        op.complete_ms = Some(t_ms);
                    }
                    Completion::Unknown { .. } => {}
                }
            }
            _ => {}
        }
    }
    ops
}
