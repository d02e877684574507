//! Elle-style anomaly detection over multi-key transactions (Kingsbury & Alvaro, "Elle:
//! Inferring Isolation Anomalies from Experimental Observations").
//!
//! Every written value is unique per key, so a read names the transaction that wrote what it
//! saw. Two data models:
//! - **list-append**: `Append(key, v)` and `ReadList(key) -> [v..]`. A read shows the whole order
//!   of versions up to it, so the version order of a key is its longest read (every other read
//!   must be a prefix of it, or the orders are incompatible).
//! - **read-write registers**: `Write(key, v)` and `Read(key) -> v | nil`. A read shows one
//!   version; the order of versions is inferred where it is known: the initial `nil` before all,
//!   a transaction's read of `a` before its own write of `b` (`a < b`), and, when the store
//!   promises real-time order per key (`Options::realtime`), a write acknowledged before another
//!   was invoked comes first.
//!
//! From the version orders: `ww` (T1 wrote a version, T2 the next), `wr` (T2 read what T1
//! wrote), `rw` (T1 read a version, T2 wrote the next: an anti-dependency), and with
//! `Options::realtime`, `rt` (T1 was acknowledged before T2 was invoked). A cycle means no
//! serial order explains the history; it is classified by the weakest edge set that closes it:
//! `G0` (ww only), `G1c` (ww and wr), `G-single` (exactly one rw), `G2` (several rw); a name gets
//! `-realtime` when it needs an rt edge (a strict-serializability violation only).
//!
//! Without cycles: `G1a` (a read of a value whose writer failed), `G1b` (a read of a value its
//! writer overwrote in the same transaction), `garbage read` (a value nobody wrote),
//! `incompatible order` (list reads that are not prefixes of one another), `duplicate append`.
//!
//! Failed transactions did not happen and contribute no edges; transactions of unknown outcome
//! may have: their writes take part (a read of one is fine), and their reads are not known.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::{self, Debug};

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};

use crate::{Ms, Outcome};

/// One micro-operation of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mop<V> {
    Read { key: String, value: Option<V> },
    Write { key: String, value: V },
    Append { key: String, value: V },
    ReadList { key: String, values: Vec<V> },
}

/// One transaction as the client saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Txn<V> {
    pub id: u64,
    pub process: u64,
    pub invoke_ms: u64,
    pub complete_ms: Option<u64>,
    pub outcome: Outcome,
    pub mops: Vec<Mop<V>>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// Add real-time edges and infer register version orders from real time (for stores that
    /// promise strict serializability, or linearizable keys).
    pub realtime: bool,
}

/// A dependency between two transactions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Edge {
    Ww,
    Wr,
    Rw,
    Rt,
}

impl fmt::Display for Edge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Edge::Ww => "ww",
            Edge::Wr => "wr",
            Edge::Rw => "rw",
            Edge::Rt => "rt",
        })
    }
}

/// An anomaly: its name (`G0`, `G1a`, `G-single-realtime`...) and what forms it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Anomaly {
    pub kind: String,
    /// The transactions involved (for a cycle, in cycle order).
    pub txns: Vec<u64>,
    pub explanation: String,
}

/// Steps of a path: a transaction and the edge leaving it (with why it exists).
type Path = Vec<(usize, (Edge, String))>;

/// Every anomaly found, cyclic or not.
pub fn check<V: Clone + Ord + Debug>(history: &[Txn<V>], options: Options) -> Vec<Anomaly> {
    let mut checker = Checker::new(history, options);
    checker.scan_reads();
    checker.build_edges();
    checker.cycles();
    checker.anomalies
}

/// Who wrote a version: the transaction's index, and whether it was its last write of the key.
#[derive(Clone, Copy)]
struct Writer {
    txn: usize,
    final_write: bool,
}

struct Checker<'h, V> {
    history: &'h [Txn<V>],
    options: Options,
    /// (key, value) -> its writer.
    writers: BTreeMap<(&'h str, &'h V), Writer>,
    /// Edges between transaction indices, each with its kinds and a reason.
    edges: BTreeMap<(usize, usize), BTreeMap<Edge, String>>,
    anomalies: Vec<Anomaly>,
}

impl<'h, V: Clone + Ord + Debug> Checker<'h, V> {
    fn new(history: &'h [Txn<V>], options: Options) -> Self {
        let mut writers = BTreeMap::new();
        let mut anomalies = Vec::new();
        for (i, t) in history.iter().enumerate() {
            let written: Vec<(&str, &V)> = t
                .mops
                .iter()
                .filter_map(|m| match m {
                    Mop::Write { key, value } | Mop::Append { key, value } => Some((key.as_str(), value)),
                    _ => None,
                })
                .collect();
            for (n, &(key, value)) in written.iter().enumerate() {
                let final_write = !written[n + 1..].iter().any(|(k, _)| *k == key);
                let w = Writer { txn: i, final_write };
                if let Some(other) = writers.insert((key, value), w) {
                    let ids = vec![history[other.txn].id, t.id];
                    let explanation = format!("{value:?} written to {key} twice: by {}", describe_all(history, &ids));
                    anomalies.push(Anomaly { kind: "duplicate write".into(), txns: ids, explanation });
                }
            }
        }
        Checker { history, options, writers, edges: BTreeMap::new(), anomalies }
    }

    fn txn(&self, i: usize) -> &'h Txn<V> {
        &self.history[i]
    }

    fn ok_reads(&self) -> impl Iterator<Item = (usize, &'h Mop<V>)> + 'h {
        let history = self.history;
        history
            .iter()
            .enumerate()
            .filter(|(_, t)| t.outcome == Outcome::Ok)
            .flat_map(|(i, t)| t.mops.iter().map(move |m| (i, m)))
            .filter(|(_, m)| matches!(m, Mop::Read { .. } | Mop::ReadList { .. }))
    }

    /// G1a, G1b and garbage reads: what each read value says of its writer.
    fn scan_reads(&mut self) {
        let reads: Vec<(usize, &'h str, &'h V, bool)> = self
            .ok_reads()
            .flat_map(|(i, m)| -> Vec<(usize, &'h str, &'h V, bool)> {
                match m {
                    Mop::Read { key, value: Some(v) } => vec![(i, key.as_str(), v, true)],
                    Mop::ReadList { key, values } => {
                        let last = values.len().saturating_sub(1);
                        values.iter().enumerate().map(|(n, v)| (i, key.as_str(), v, n == last)).collect()
                    }
                    _ => vec![],
                }
            })
            .collect();
        for (reader, key, value, is_last) in reads {
            let r = self.txn(reader);
            let Some(w) = self.writers.get(&(key, value)).copied() else {
                let explanation = format!("{} read {value:?} from {key}, which no transaction wrote", describe(r));
                self.push("garbage read", vec![r.id], explanation);
                continue;
            };
            let wt = self.txn(w.txn);
            if wt.outcome == Outcome::Fail {
                let explanation =
                    format!("{} read {value:?} from {key}, written by failed {}", describe(r), describe(wt));
                self.push("G1a", vec![wt.id, r.id], explanation);
            } else if is_last && !w.final_write && w.txn != reader {
                let explanation =
                    format!("{} read {value:?} from {key}, an intermediate write of {}", describe(r), describe(wt));
                self.push("G1b", vec![wt.id, r.id], explanation);
            }
        }
    }

    fn push(&mut self, kind: &str, txns: Vec<u64>, explanation: String) {
        self.anomalies.push(Anomaly { kind: kind.into(), txns, explanation });
    }

    fn edge(&mut self, from: usize, to: usize, kind: Edge, why: String) {
        if from != to {
            self.edges.entry((from, to)).or_default().entry(kind).or_insert(why);
        }
    }

    /// The writer of a version, unless it failed (a failed writer is G1a, already reported).
    fn writer(&self, key: &str, value: &V) -> Option<usize> {
        let w = self.writers.get(&(key, value))?;
        (self.txn(w.txn).outcome != Outcome::Fail).then_some(w.txn)
    }

    fn build_edges(&mut self) {
        let mut list_keys: BTreeSet<&'h str> = BTreeSet::new();
        let mut register_keys: BTreeSet<&'h str> = BTreeSet::new();
        for t in self.history {
            for m in &t.mops {
                match m {
                    Mop::Append { key, .. } | Mop::ReadList { key, .. } => list_keys.insert(key.as_str()),
                    Mop::Read { key, .. } | Mop::Write { key, .. } => register_keys.insert(key.as_str()),
                };
            }
        }
        for key in list_keys {
            self.list_edges(key);
        }
        for key in register_keys {
            self.register_edges(key);
        }
        if self.options.realtime {
            self.realtime_edges();
        }
    }

    /// List-append: the longest read is the version order.
    fn list_edges(&mut self, key: &'h str) {
        let reads: Vec<(usize, &'h Vec<V>)> = self
            .ok_reads()
            .filter_map(|(i, m)| match m {
                Mop::ReadList { key: k, values } if k == key => Some((i, values)),
                _ => None,
            })
            .collect();
        let Some(&(longest_reader, longest)) = reads.iter().max_by_key(|(_, v)| v.len()) else { return };
        let distinct: BTreeSet<&V> = longest.iter().collect();
        if distinct.len() != longest.len() {
            let id = self.txn(longest_reader).id;
            let explanation =
                format!("{} read {key} = {longest:?}, with an element twice", describe(self.txn(longest_reader)));
            self.push("duplicate append", vec![id], explanation);
        }
        for &(reader, values) in &reads {
            if longest[..values.len()] != values[..] {
                let ids = vec![self.txn(reader).id, self.txn(longest_reader).id];
                let explanation = format!(
                    "{} read {key} = {values:?} but {} read {longest:?}: no order of appends gives both",
                    describe(self.txn(reader)),
                    describe(self.txn(longest_reader))
                );
                self.push("incompatible order", ids, explanation);
                continue;
            }
            if let Some(last) = values.last() {
                if let Some(w) = self.writer(key, last) {
                    self.edge(w, reader, Edge::Wr, format!("read {key} up to {last:?}"));
                }
            }
            let saw_from = values.last().and_then(|v| self.writer(key, v));
            if let Some(next) = longest.get(values.len()) {
                // A read that stopped inside a transaction's appends is G1b, not an rw edge.
                if let Some(w) = self.writer(key, next).filter(|w| Some(*w) != saw_from) {
                    let seen = values.last().map_or("[]".to_string(), |v| format!("up to {v:?}"));
                    self.edge(reader, w, Edge::Rw, format!("read {key} {seen}, missing the later append {next:?}"));
                }
            }
        }
        for pair in longest.windows(2) {
            if let (Some(a), Some(b)) = (self.writer(key, &pair[0]), self.writer(key, &pair[1])) {
                self.edge(a, b, Edge::Ww, format!("appended {:?} after {:?} to {key}", pair[1], pair[0]));
            }
        }
    }

    /// Read-write registers: versions ordered where the history shows it.
    fn register_edges(&mut self, key: &'h str) {
        // Versions of this key: each transaction's final write (an intermediate one is G1b when
        // read, and no version); a failed writer's version never existed.
        let mut versions: BTreeMap<&'h V, usize> = BTreeMap::new();
        // Known "a before b" facts (None is the initial nil).
        let mut before: BTreeSet<(Option<&'h V>, &'h V)> = BTreeSet::new();
        for (i, t) in self.history.iter().enumerate().filter(|(_, t)| t.outcome != Outcome::Fail) {
            let mut read_first: Option<Option<&'h V>> = None;
            let mut wrote: Option<&'h V> = None;
            for m in &t.mops {
                match m {
                    Mop::Read { key: k, value } if k == key && wrote.is_none() && read_first.is_none() => {
                        read_first = Some(value.as_ref())
                    }
                    Mop::Write { key: k, value } if k == key => wrote = Some(value),
                    _ => {}
                }
            }
            let Some(last) = wrote else { continue };
            versions.insert(last, i);
            // A transaction that read `a` and then wrote `b` ordered a before b (its read is
            // known only if it committed).
            match read_first {
                Some(a) if t.outcome == Outcome::Ok && a != Some(last) => {
                    before.insert((a, last));
                }
                _ => {}
            }
        }
        if self.options.realtime {
            let writes: Vec<(&'h V, usize)> = versions.iter().map(|(v, i)| (*v, *i)).collect();
            for (v2, t2) in &writes {
                let invoked = self.txn(*t2).invoke_ms;
                for (v1, _) in frontier(self.history, writes.iter().map(|(v, i)| (*v, *i)), invoked) {
                    if v1 != *v2 {
                        before.insert((Some(v1), v2));
                    }
                }
            }
        }
        // Versions with no known predecessor follow nil directly.
        let has_pred: BTreeSet<&V> = before.iter().filter(|(a, _)| a.is_some()).map(|(_, b)| *b).collect();
        for v in versions.keys() {
            if !has_pred.contains(v) {
                before.insert((None, v));
            }
        }
        for &(a, b) in &before {
            let Some(&wb) = versions.get(b) else { continue };
            if let Some(a) = a {
                if let Some(&wa) = versions.get(a) {
                    self.edge(wa, wb, Edge::Ww, format!("{key}: {a:?} before {b:?}"));
                }
            }
        }
        let reads: Vec<(usize, Option<&'h V>)> = self
            .ok_reads()
            .filter_map(|(i, m)| match m {
                Mop::Read { key: k, value } if k == key => Some((i, value.as_ref())),
                _ => None,
            })
            .collect();
        for (reader, seen) in reads {
            if let Some(v) = seen {
                if let Some(&w) = versions.get(v) {
                    self.edge(w, reader, Edge::Wr, format!("read {key} = {v:?}"));
                }
            }
            for &(_, b) in before.iter().filter(|(a, _)| *a == seen) {
                if let Some(&wb) = versions.get(b) {
                    let shown = seen.map_or("nil".to_string(), |v| format!("{v:?}"));
                    self.edge(reader, wb, Edge::Rw, format!("read {key} = {shown}, overwritten by {b:?}"));
                }
            }
        }
    }

    /// rt: T1 acknowledged before T2 was invoked (only the latest such T1s; the rest follow).
    fn realtime_edges(&mut self) {
        let live: Vec<usize> = (0..self.history.len()).filter(|&i| self.txn(i).outcome != Outcome::Fail).collect();
        for &t2 in &live {
            let invoked = self.txn(t2).invoke_ms;
            let preds: Vec<usize> =
                frontier(self.history, live.iter().map(|&i| ((), i)), invoked).into_iter().map(|(_, i)| i).collect();
            for t1 in preds {
                let why = format!("acknowledged at {} ms, before {} ms", Ms(self.txn(t1).complete_ms), invoked);
                self.edge(t1, t2, Edge::Rt, why);
            }
        }
    }

    /// Finds the cycles of each strongly connected component and classifies them.
    fn cycles(&mut self) {
        let mut graph: DiGraph<usize, ()> = DiGraph::new();
        let nodes: Vec<NodeIndex> = (0..self.history.len()).map(|i| graph.add_node(i)).collect();
        for &(a, b) in self.edges.keys() {
            graph.add_edge(nodes[a], nodes[b], ());
        }
        let mut sccs: Vec<Vec<usize>> = tarjan_scc(&graph)
            .into_iter()
            .filter(|c| c.len() > 1)
            .map(|c| {
                let mut c: Vec<usize> = c.into_iter().map(|n| graph[n]).collect();
                c.sort();
                c
            })
            .collect();
        sccs.sort();
        for scc in sccs {
            if let Some((kind, cycle)) = self.classify(&scc) {
                let ids: Vec<u64> = cycle.iter().map(|(t, _)| self.txn(*t).id).collect();
                let steps: Vec<String> = cycle
                    .iter()
                    .map(|&(t, (kind, ref why))| format!("{} -{kind}-> ({why})", describe(self.txn(t))))
                    .collect();
                let explanation = format!("cycle: {} back to the first", steps.join(" "));
                self.push(&kind, ids, explanation);
            }
        }
    }

    /// The weakest class of cycle within `scc`, and one such cycle.
    fn classify(&self, scc: &[usize]) -> Option<(String, Path)> {
        let members: BTreeSet<usize> = scc.iter().copied().collect();
        let rt = [false, true];
        for realtime in rt.into_iter().filter(|r| !r || self.options.realtime) {
            let suffix = if realtime { "-realtime" } else { "" };
            let extra: &[Edge] = if realtime { &[Edge::Rt] } else { &[] };
            let allow = |base: &[Edge]| -> Vec<Edge> { base.iter().chain(extra).copied().collect() };
            if let Some(c) = self.shortest_cycle(&members, &allow(&[Edge::Ww])) {
                return Some((format!("G0{suffix}"), c));
            }
            if let Some(c) = self.shortest_cycle(&members, &allow(&[Edge::Ww, Edge::Wr])) {
                return Some((format!("G1c{suffix}"), c));
            }
            // Exactly one rw edge closed by ww/wr (and rt) edges.
            for (&(a, b), kinds) in self.edges.range((scc[0], 0)..) {
                if !(members.contains(&a) && members.contains(&b) && kinds.contains_key(&Edge::Rw)) {
                    continue;
                }
                if let Some(path) = self.shortest_path(&members, &allow(&[Edge::Ww, Edge::Wr]), b, a) {
                    let mut cycle = vec![(a, (Edge::Rw, kinds[&Edge::Rw].clone()))];
                    cycle.extend(path);
                    return Some((format!("G-single{suffix}"), cycle));
                }
            }
            if let Some(c) = self.shortest_cycle(&members, &allow(&[Edge::Ww, Edge::Wr, Edge::Rw])) {
                return Some((format!("G2{suffix}"), c));
            }
        }
        None
    }

    /// A shortest cycle through any member, using only `allowed` edges.
    fn shortest_cycle(&self, members: &BTreeSet<usize>, allowed: &[Edge]) -> Option<Path> {
        // Starting from every member is quadratic; components are small unless the store is
        // badly broken, and then the first few starts find a cycle.
        members.iter().take(64).find_map(|&start| {
            self.out_edges(members, allowed, start).into_iter().find_map(|(next, edge)| {
                let mut path = self.shortest_path(members, allowed, next, start)?;
                path.insert(0, (start, edge));
                Some(path)
            })
        })
    }

    /// Edges from `t` to members, one kind each (the first allowed).
    fn out_edges(&self, members: &BTreeSet<usize>, allowed: &[Edge], t: usize) -> Path {
        self.edges
            .range((t, 0)..(t + 1, 0))
            .filter(|((_, b), _)| members.contains(b))
            .filter_map(|(&(_, b), kinds)| {
                let (k, why) = kinds.iter().find(|(k, _)| allowed.contains(k))?;
                Some((b, (*k, why.clone())))
            })
            .collect()
    }

    /// A shortest path `from` → `to` (each step with the edge leaving it), breadth first.
    fn shortest_path(&self, members: &BTreeSet<usize>, allowed: &[Edge], from: usize, to: usize) -> Option<Path> {
        if from == to {
            return Some(Vec::new());
        }
        let mut parent: BTreeMap<usize, (usize, (Edge, String))> = BTreeMap::new();
        let mut queue = VecDeque::from([from]);
        while let Some(t) = queue.pop_front() {
            for (next, edge) in self.out_edges(members, allowed, t) {
                if next == from || parent.contains_key(&next) {
                    continue;
                }
                parent.insert(next, (t, edge));
                if next == to {
                    let mut path = Vec::new();
                    let mut at = to;
                    while at != from {
                        let (prev, edge) = parent.remove(&at).expect("on the path");
                        path.push((prev, edge));
                        at = prev;
                    }
                    path.reverse();
                    return Some(path);
                }
                queue.push_back(next);
            }
        }
        None
    }
}

/// Of `items` (each tagged with its transaction), those acknowledged before `invoked_ms` and not
/// followed by another acknowledged one invoked after them and also done before `invoked_ms`: the
/// immediate real-time predecessors (the rest are reachable through them).
fn frontier<V, T: Copy>(
    history: &[Txn<V>],
    items: impl Iterator<Item = (T, usize)>,
    invoked_ms: u64,
) -> Vec<(T, usize)> {
    let done: Vec<(T, usize, u64)> = items
        .filter_map(|(tag, i)| {
            let t = &history[i];
            let complete = t.complete_ms.filter(|_| t.outcome == Outcome::Ok)?;
            (complete < invoked_ms).then_some((tag, i, complete))
        })
        .collect();
    let latest_invoke = done.iter().map(|(_, i, _)| history[*i].invoke_ms).max();
    done.into_iter()
        .filter(|(_, _, complete)| latest_invoke.is_some_and(|m| *complete >= m))
        .map(|(tag, i, _)| (tag, i))
        .collect()
}

fn describe<V: Debug>(t: &Txn<V>) -> String {
    let mops: Vec<String> = t
        .mops
        .iter()
        .map(|m| match m {
            Mop::Read { key, value: Some(v) } => format!("r {key} {v:?}"),
            Mop::Read { key, value: None } => format!("r {key} nil"),
            Mop::Write { key, value } => format!("w {key} {value:?}"),
            Mop::Append { key, value } => format!("append {key} {value:?}"),
            Mop::ReadList { key, values } => format!("r {key} {values:?}"),
        })
        .collect();
    format!(
        "T{} (process {}, [{}, {}] ms, {:?}: {})",
        t.id,
        t.process,
        t.invoke_ms,
        Ms(t.complete_ms),
        t.outcome,
        mops.join(", ")
    )
}

fn describe_all<V: Debug>(history: &[Txn<V>], ids: &[u64]) -> String {
    let found: Vec<String> = history.iter().filter(|t| ids.contains(&t.id)).map(describe).collect();
    found.join(" and ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(id: u64, invoke_ms: u64, complete_ms: u64, mops: Vec<Mop<u32>>) -> Txn<u32> {
        Txn { id, process: id, invoke_ms, complete_ms: Some(complete_ms), outcome: Outcome::Ok, mops }
    }
    fn w(key: &str, value: u32) -> Mop<u32> {
        Mop::Write { key: key.into(), value }
    }
    fn r(key: &str, value: Option<u32>) -> Mop<u32> {
        Mop::Read { key: key.into(), value }
    }
    fn ap(key: &str, value: u32) -> Mop<u32> {
        Mop::Append { key: key.into(), value }
    }
    fn rl(key: &str, values: &[u32]) -> Mop<u32> {
        Mop::ReadList { key: key.into(), values: values.to_vec() }
    }
    fn kinds(h: &[Txn<u32>], options: Options) -> Vec<String> {
        check(h, options).into_iter().map(|a| a.kind).collect()
    }
    fn one(h: &[Txn<u32>], options: Options) -> Anomaly {
        let found = check(h, options);
        assert_eq!(found.len(), 1, "{found:#?}");
        found.into_iter().next().unwrap()
    }
    const PLAIN: Options = Options { realtime: false };
    const RT: Options = Options { realtime: true };

    #[test]
    fn serializable_histories_pass() {
        let lists = [
            txn(1, 0, 10, vec![ap("x", 1), ap("y", 1)]),
            txn(2, 20, 30, vec![rl("x", &[1]), ap("x", 2)]),
            txn(3, 40, 50, vec![rl("x", &[1, 2]), rl("y", &[1])]),
        ];
        assert!(check(&lists, RT).is_empty());
        let registers = [
            txn(1, 0, 10, vec![w("x", 1), w("y", 1)]),
            txn(2, 20, 30, vec![r("x", Some(1)), w("x", 2)]),
            txn(3, 40, 50, vec![r("x", Some(2)), r("y", Some(1))]),
            txn(4, 0, 5, vec![r("x", None)]),
        ];
        assert!(check(&registers, RT).is_empty());
    }

    #[test]
    fn g0_write_cycle() {
        // T1 appended before T2 on x, after T2 on y.
        let h = [
            txn(1, 0, 10, vec![ap("x", 1), ap("y", 1)]),
            txn(2, 0, 10, vec![ap("x", 2), ap("y", 2)]),
            txn(3, 20, 30, vec![rl("x", &[1, 2]), rl("y", &[2, 1])]),
        ];
        let a = one(&h, PLAIN);
        assert_eq!(a.kind, "G0");
        assert_eq!(a.txns.len(), 2);
        assert!(a.explanation.contains("-ww->"), "{}", a.explanation);
        assert!(a.explanation.contains("T1 (process 1, [0, 10] ms"), "{}", a.explanation);
    }

    #[test]
    fn g1a_aborted_read() {
        let mut failed = txn(1, 0, 10, vec![w("x", 1)]);
        failed.outcome = Outcome::Fail;
        let h = [failed, txn(2, 20, 30, vec![r("x", Some(1))])];
        let a = one(&h, PLAIN);
        assert_eq!((a.kind.as_str(), a.txns.as_slice()), ("G1a", &[1, 2][..]));
        // An unknown outcome may have committed: reading it is fine.
        let mut unknown = txn(1, 0, 10, vec![w("x", 1)]);
        unknown.outcome = Outcome::Unknown;
        unknown.complete_ms = None;
        assert!(check(&[unknown, txn(2, 20, 30, vec![r("x", Some(1))])], RT).is_empty());
    }

    #[test]
    fn g1b_intermediate_read() {
        let h = [txn(1, 0, 10, vec![w("x", 1), w("x", 2)]), txn(2, 5, 8, vec![r("x", Some(1))])];
        assert_eq!(kinds(&h, PLAIN), ["G1b"]);
        let lists = [txn(1, 0, 10, vec![ap("x", 1), ap("x", 2)]), txn(2, 5, 8, vec![rl("x", &[1])])];
        assert_eq!(kinds(&lists, PLAIN), ["G1b"]);
    }

    #[test]
    fn g1c_circular_information_flow() {
        // Each reads the other's write.
        let h = [txn(1, 0, 10, vec![w("x", 1), r("y", Some(2))]), txn(2, 0, 10, vec![w("y", 2), r("x", Some(1))])];
        let a = one(&h, PLAIN);
        assert_eq!(a.kind, "G1c");
        assert!(a.explanation.contains("-wr->"), "{}", a.explanation);
    }

    #[test]
    fn g_single_read_skew() {
        // T3 sees T2's x but not T2's y (T1 wrote y first; T2 overwrote it having read it).
        let h = [
            txn(1, 0, 10, vec![w("x", 1), w("y", 1)]),
            txn(2, 20, 30, vec![r("y", Some(1)), w("y", 2), w("x", 2)]),
            txn(3, 15, 40, vec![r("x", Some(2)), r("y", Some(1))]),
        ];
        let a = one(&h, PLAIN);
        assert_eq!(a.kind, "G-single");
        assert!(a.explanation.contains("-rw->"), "{}", a.explanation);
    }

    #[test]
    fn g2_write_skew() {
        // Each reads nil of the key the other writes (two anti-dependencies).
        let h = [txn(1, 0, 10, vec![r("x", None), w("y", 1)]), txn(2, 0, 10, vec![r("y", None), w("x", 2)])];
        assert_eq!(kinds(&h, PLAIN), ["G2"]);
        let lists = [
            txn(1, 0, 10, vec![rl("x", &[]), ap("y", 1)]),
            txn(2, 0, 10, vec![rl("y", &[]), ap("x", 2)]),
            txn(3, 20, 30, vec![rl("x", &[2]), rl("y", &[1])]),
        ];
        assert_eq!(kinds(&lists, PLAIN), ["G2"]);
    }

    #[test]
    fn realtime_catches_a_stale_read_that_serializability_allows() {
        // T1 was acknowledged before T2 began, yet T2 read the initial value.
        let h = [txn(1, 0, 10, vec![w("x", 1)]), txn(2, 20, 30, vec![r("x", None)])];
        assert!(check(&h, PLAIN).is_empty());
        let a = one(&h, RT);
        assert_eq!(a.kind, "G-single-realtime");
        assert!(a.explanation.contains("-rt->"), "{}", a.explanation);
        // Registers: the later acknowledged write wins; a read after both that sees the first is stale.
        let h =
            [txn(1, 0, 10, vec![w("x", 1)]), txn(2, 20, 30, vec![w("x", 2)]), txn(3, 40, 50, vec![r("x", Some(1))])];
        assert!(check(&h, PLAIN).is_empty());
        assert_eq!(kinds(&h, RT), ["G-single-realtime"]);
    }

    #[test]
    fn garbage_and_incompatible_orders() {
        let h = [txn(1, 0, 10, vec![r("x", Some(9))])];
        assert_eq!(kinds(&h, PLAIN), ["garbage read"]);
        let h = [
            txn(1, 0, 10, vec![ap("x", 1)]),
            txn(2, 0, 10, vec![ap("x", 2)]),
            txn(3, 20, 30, vec![rl("x", &[1, 2])]),
            txn(4, 20, 30, vec![rl("x", &[2])]),
        ];
        assert_eq!(kinds(&h, PLAIN), ["incompatible order"]);
    }

    #[test]
    fn unknown_transactions_take_part_only_through_their_writes() {
        let mut lost = txn(2, 20, 0, vec![r("y", Some(5)), w("x", 2)]);
        lost.outcome = Outcome::Unknown;
        lost.complete_ms = None;
        // Its read of a garbage value is not known, so not reported; its write may be read.
        let h = [txn(1, 0, 10, vec![w("x", 1)]), lost, txn(3, 40, 50, vec![r("x", Some(2))])];
        assert!(check(&h, RT).is_empty());
    }
}
