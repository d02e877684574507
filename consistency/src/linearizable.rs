//! Linearizability of single-key registers (read, write, compare-and-set), key by key.
//!
//! The search is Wing & Gong's, as Lowe and Porcupine run it: call and return entries sorted by
//! time in a doubly linked list; at a call, try to linearize that operation now (the register
//! model accepts it, and `(linearized set, state)` was not seen before), lift it from the list
//! and start again from the head; at a return whose operation is not linearized yet, nothing
//! before it can explain it: undo the last choice. An operation whose outcome is unknown
//! returns "at infinity": it may be linearized anywhere after its call, or never (once only
//! unknown returns are left, the history is explained). A failed operation did not happen and is
//! dropped; so is a read whose answer was lost (it says nothing).
//!
//! Times that touch (one operation completes in the millisecond another is invoked) count as
//! concurrent: calls sort before returns, so the checker never demands an order the clock could
//! not show.
//!
//! The work is bounded by `max_states`, the linearization steps tried over one key; past it that
//! key's verdict is [`Verdict::Unknown`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;

use crate::{Ms, Outcome, Verdict};

/// One register operation as the client saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegisterOp<V> {
    /// Returned the value (`None`: the key had never been written).
    Read(Option<V>),
    Write(V),
    /// Set `new` if the register holds `expect`. `Ok` means it did; `Fail` that it did not.
    Cas {
        expect: Option<V>,
        new: V,
    },
}

/// One operation of a history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Op<V> {
    pub id: u64,
    /// The client session; it has at most one operation in flight.
    pub process: u64,
    pub key: String,
    pub op: RegisterOp<V>,
    pub invoke_ms: u64,
    /// None when the client never heard back (then the outcome is `Unknown`).
    pub complete_ms: Option<u64>,
    pub outcome: Outcome,
}

impl<V: Debug> Op<V> {
    /// `op 7 (process 2) write 5 [100, 130] ms ok`, for messages.
    pub fn describe(&self) -> String {
        let what = match &self.op {
            RegisterOp::Read(v) => format!("read -> {}", show(v)),
            RegisterOp::Write(v) => format!("write {v:?}"),
            RegisterOp::Cas { expect, new } => format!("cas {} -> {new:?}", show(expect)),
        };
        format!(
            "op {} (process {}) {what} [{}, {}] ms {:?}",
            self.id,
            self.process,
            self.invoke_ms,
            Ms(self.complete_ms),
            self.outcome
        )
    }
}

fn show<V: Debug>(v: &Option<V>) -> String {
    match v {
        Some(v) => format!("{v:?}"),
        None => "nil".into(),
    }
}

/// The verdict on one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyReport {
    pub key: String,
    pub verdict: Verdict,
    /// Operations of the key the search considered (failed ones and lost reads left out).
    pub ops: usize,
    /// Linearization steps tried.
    pub explored: u64,
}

/// The verdict on a whole history, key by key (in key order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub keys: Vec<KeyReport>,
}

impl Report {
    /// The first failing key's verdict, else the first unknown one, else a pass.
    pub fn verdict(&self) -> Verdict {
        let first = |want: fn(&Verdict) -> bool| self.keys.iter().map(|k| &k.verdict).find(|v| want(v)).cloned();
        first(|v| matches!(v, Verdict::Fail(_)))
            .or_else(|| first(|v| matches!(v, Verdict::Unknown(_))))
            .unwrap_or(Verdict::Pass)
    }

    pub fn failures(&self) -> impl Iterator<Item = (&str, &str)> {
        self.keys.iter().filter_map(|k| match &k.verdict {
            Verdict::Fail(m) => Some((k.key.as_str(), m.as_str())),
            _ => None,
        })
    }

    pub fn unknown(&self) -> usize {
        self.keys.iter().filter(|k| matches!(k.verdict, Verdict::Unknown(_))).count()
    }

    pub fn explored(&self) -> u64 {
        self.keys.iter().map(|k| k.explored).sum()
    }
}

/// Checks `history` key by key, exploring at most `max_states` steps per key.
pub fn check<V: Clone + Ord + Debug>(history: &[Op<V>], max_states: u64) -> Report {
    let mut by_key: BTreeMap<&str, Vec<&Op<V>>> = BTreeMap::new();
    for op in history {
        by_key.entry(op.key.as_str()).or_default().push(op);
    }
    let keys = by_key.into_iter().map(|(key, ops)| check_key(key, &ops, max_states)).collect();
    Report { keys }
}

/// Whether an operation takes part in the search.
fn relevant<V>(op: &Op<V>) -> bool {
    match (&op.op, op.outcome) {
        (_, Outcome::Fail) => false,
        // A read that never answered says nothing.
        (RegisterOp::Read(_), Outcome::Unknown) => false,
        _ => true,
    }
}

/// A register state: the interned value, `None` before any write.
type State = Option<u32>;

/// An operation with its values interned.
#[derive(Clone, Copy)]
enum Step {
    Read(State),
    Write(u32),
    Cas(State, u32),
}

impl Step {
    /// The register after this step from `state`, if the step can happen there.
    fn apply(self, state: State) -> Option<State> {
        match self {
            Step::Read(v) => (v == state).then_some(state),
            Step::Write(v) => Some(Some(v)),
            Step::Cas(expect, new) => (expect == state).then_some(Some(new)),
        }
    }
}

/// Sentinel indices of the entry list.
const HEAD: usize = 0;
const NIL: usize = usize::MAX;

/// One call or return entry of the list (index 0 is the head).
struct Entry {
    op: usize,
    call: bool,
    /// The other entry of the same operation.
    partner: usize,
    prev: usize,
    next: usize,
    /// u64::MAX for the return of an operation with an unknown outcome.
    time: u64,
}

struct Search {
    entries: Vec<Entry>,
}

impl Search {
    fn new<V>(ops: &[&Op<V>]) -> Self {
        // (time, returns after calls, op) sorts calls before returns at equal times.
        let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(ops.len() * 2);
        for (i, op) in ops.iter().enumerate() {
            events.push((op.invoke_ms, false, i));
            let ret = if op.outcome == Outcome::Ok { op.complete_ms.unwrap_or(u64::MAX) } else { u64::MAX };
            events.push((ret.max(op.invoke_ms), true, i));
        }
        events.sort();
        let mut entries = vec![Entry { op: NIL, call: false, partner: NIL, prev: NIL, next: 1, time: 0 }];
        let mut call_at = vec![NIL; ops.len()];
        for (n, &(time, is_return, op)) in events.iter().enumerate() {
            let at = n + 1;
            let next = if n + 1 == events.len() { NIL } else { at + 1 };
            let mut e = Entry { op, call: !is_return, partner: NIL, prev: at - 1, next, time };
            if is_return {
                e.partner = call_at[op];
                entries[call_at[op]].partner = at;
            } else {
                call_at[op] = at;
            }
            entries.push(e);
        }
        if events.is_empty() {
            entries[HEAD].next = NIL;
        }
        Search { entries }
    }

    fn unlink(&mut self, i: usize) {
        let (prev, next) = (self.entries[i].prev, self.entries[i].next);
        self.entries[prev].next = next;
        if next != NIL {
            self.entries[next].prev = prev;
        }
    }

    fn relink(&mut self, i: usize) {
        let (prev, next) = (self.entries[i].prev, self.entries[i].next);
        self.entries[prev].next = i;
        if next != NIL {
            self.entries[next].prev = i;
        }
    }

    /// Removes a call and its return (dancing links: [`Search::unlift`] undoes it exactly).
    fn lift(&mut self, call: usize) {
        self.unlink(call);
        self.unlink(self.entries[call].partner);
    }

    fn unlift(&mut self, call: usize) {
        self.relink(self.entries[call].partner);
        self.relink(call);
    }
}

fn check_key<V: Clone + Ord + Debug>(key: &str, all: &[&Op<V>], max_states: u64) -> KeyReport {
    let ops: Vec<&Op<V>> = all.iter().copied().filter(|op| relevant(op)).collect();
    // A write of unknown outcome whose value nobody read can be left out: any linearization with
    // it has one without it (no read falls between it and the next write, as none returned its
    // value). Each such write left in would double the states to explore. Not so with a
    // compare-and-set, which can observe a value without returning it.
    let has_cas = ops.iter().any(|op| matches!(op.op, RegisterOp::Cas { .. }));
    let read: BTreeSet<&V> = ops
        .iter()
        .filter_map(|op| match &op.op {
            RegisterOp::Read(Some(v)) => Some(v),
            _ => None,
        })
        .collect();
    let ops: Vec<&Op<V>> = ops
        .into_iter()
        .filter(|op| match (&op.op, op.outcome) {
            (RegisterOp::Write(v), Outcome::Unknown) => has_cas || read.contains(v),
            _ => true,
        })
        .collect();
    let mut values: BTreeMap<V, u32> = BTreeMap::new();
    let mut intern = |v: &V| {
        let n = values.len() as u32;
        *values.entry(v.clone()).or_insert(n)
    };
    let steps: Vec<Step> = ops
        .iter()
        .map(|op| match &op.op {
            RegisterOp::Read(v) => Step::Read(v.as_ref().map(&mut intern)),
            RegisterOp::Write(v) => Step::Write(intern(v)),
            RegisterOp::Cas { expect, new } => Step::Cas(expect.as_ref().map(&mut intern), intern(new)),
        })
        .collect();
    let names: BTreeMap<u32, &V> = values.iter().map(|(v, n)| (*n, v)).collect();
    let show_state = |s: State| match s {
        Some(n) => format!("{:?}", names[&n]),
        None => "nil".to_string(),
    };

    let mut search = Search::new(&ops);
    let words = ops.len().div_ceil(64).max(1);
    let mut linearized = vec![0u64; words];
    let mut seen: BTreeSet<(Vec<u64>, State)> = BTreeSet::new();
    let mut stack: Vec<(usize, State)> = Vec::new();
    let mut state: State = None;
    let mut explored = 0u64;
    // The deepest dead end: how many were linearized, the operation that could not be, and the
    // register's value then.
    let mut deepest: Option<(usize, usize, State)> = None;
    let mut entry = search.entries[HEAD].next;
    let report = |verdict, explored| KeyReport { key: key.to_string(), verdict, ops: ops.len(), explored };
    while search.entries[HEAD].next != NIL {
        if explored >= max_states {
            let msg = format!("key {key}: gave up after {explored} states over {} operations", ops.len());
            return report(Verdict::Unknown(msg), explored);
        }
        let e = &search.entries[entry];
        if e.call {
            let op = e.op;
            if let Some(next) = steps[op].apply(state) {
                linearized[op / 64] |= 1 << (op % 64);
                if seen.insert((linearized.clone(), next)) {
                    explored += 1;
                    stack.push((entry, state));
                    state = next;
                    search.lift(entry);
                    entry = search.entries[HEAD].next;
                    continue;
                }
                linearized[op / 64] &= !(1 << (op % 64));
            }
            entry = search.entries[entry].next;
            continue;
        }
        if e.time == u64::MAX {
            // Only operations of unknown outcome are left: they need not have happened.
            return report(Verdict::Pass, explored);
        }
        if deepest.is_none_or(|(depth, _, _)| stack.len() > depth) {
            deepest = Some((stack.len(), e.op, state));
        }
        let Some((call, previous)) = stack.pop() else {
            let (_, op, held) = deepest.expect("a dead end was recorded");
            return report(Verdict::Fail(explain(key, &ops, op, show_state(held))), explored);
        };
        let op = search.entries[call].op;
        linearized[op / 64] &= !(1 << (op % 64));
        state = previous;
        search.unlift(call);
        entry = search.entries[call].next;
    }
    report(Verdict::Pass, explored)
}

/// Names the operation no order could explain, what the register held at the deepest point
/// the search reached, and the operations concurrent with it.
fn explain<V: Debug>(key: &str, ops: &[&Op<V>], stuck: usize, held: String) -> String {
    let op = ops[stuck];
    let end = op.complete_ms.unwrap_or(u64::MAX);
    let overlapping: Vec<String> = ops
        .iter()
        .enumerate()
        .filter(|(i, o)| *i != stuck && o.invoke_ms <= end && o.complete_ms.is_none_or(|c| c >= op.invoke_ms))
        .take(8)
        .map(|(_, o)| o.describe())
        .collect();
    let with = if overlapping.is_empty() { "none".to_string() } else { overlapping.join("; ") };
    let writer = ops
        .iter()
        .find(|o| matches!(&o.op, RegisterOp::Write(v) | RegisterOp::Cas { new: v, .. } if format!("{v:?}") == held))
        .map_or(String::new(), |o| format!(", written by {}", o.describe()));
    format!(
        "key {key}: no linearization explains {} (at best the register held {held}{writer} when it had to take effect); concurrent: {with}",
        op.describe()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(id: u64, process: u64, op: RegisterOp<u32>, invoke_ms: u64, complete_ms: u64) -> Op<u32> {
        Op { id, process, key: "x".into(), op, invoke_ms, complete_ms: Some(complete_ms), outcome: Outcome::Ok }
    }
    fn w(id: u64, p: u64, v: u32, a: u64, b: u64) -> Op<u32> {
        op(id, p, RegisterOp::Write(v), a, b)
    }
    fn r(id: u64, p: u64, v: Option<u32>, a: u64, b: u64) -> Op<u32> {
        op(id, p, RegisterOp::Read(v), a, b)
    }
    fn unknown(mut o: Op<u32>) -> Op<u32> {
        o.outcome = Outcome::Unknown;
        o.complete_ms = None;
        o
    }
    fn failed(mut o: Op<u32>) -> Op<u32> {
        o.outcome = Outcome::Fail;
        o
    }
    fn verdict(h: &[Op<u32>]) -> Verdict {
        check(h, 100_000).verdict()
    }
    fn fails(h: &[Op<u32>]) -> String {
        match verdict(h) {
            Verdict::Fail(m) => m,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn sequential_reads_of_the_last_write_pass() {
        let h = [r(1, 1, None, 0, 5), w(2, 1, 1, 10, 20), r(3, 2, Some(1), 25, 30), w(4, 2, 2, 31, 40)];
        assert_eq!(verdict(&h), Verdict::Pass);
        assert_eq!(verdict(&[]), Verdict::Pass);
    }

    #[test]
    fn a_stale_read_after_an_acknowledged_write_fails_and_names_it() {
        let h = [w(1, 1, 1, 0, 10), w(2, 1, 2, 20, 30), r(3, 2, Some(1), 40, 50)];
        let msg = fails(&h);
        assert!(msg.contains("op 3 (process 2) read -> 1 [40, 50] ms"), "{msg}");
        assert!(msg.contains("held 2, written by op 2 (process 1) write 2 [20, 30] ms Ok"), "{msg}");
    }

    #[test]
    fn a_lost_write_fails() {
        // Write 1 acknowledged, then every later read sees nil.
        let h = [w(1, 1, 1, 0, 10), r(2, 2, None, 20, 30)];
        assert!(matches!(verdict(&h), Verdict::Fail(_)));
    }

    #[test]
    fn concurrent_overlaps_may_order_either_way() {
        // Write 1 and write 2 overlap; reads concurrent with both may see either, then settle.
        let h = [
            w(1, 1, 1, 0, 100),
            w(2, 2, 2, 10, 90),
            r(3, 3, Some(2), 20, 30),
            r(4, 4, Some(1), 40, 50),
            r(5, 3, Some(1), 110, 120),
        ];
        assert_eq!(verdict(&h), Verdict::Pass);
        // But after both completed, a read cannot flip back and forth.
        let h2 = [w(1, 1, 1, 0, 100), w(2, 2, 2, 10, 90), r(3, 3, Some(1), 110, 120), r(4, 4, Some(2), 130, 140)];
        assert!(matches!(verdict(&h2), Verdict::Fail(_)));
        // Reads concurrent with one write cannot see new, then old.
        let h3 = [w(1, 1, 1, 0, 100), r(2, 2, Some(1), 10, 20), r(3, 3, None, 30, 40)];
        assert!(matches!(verdict(&h3), Verdict::Fail(_)));
    }

    #[test]
    fn touching_times_count_as_concurrent() {
        // The read is invoked in the very millisecond the write completes: either order.
        let h = [w(1, 1, 1, 0, 10), r(2, 2, None, 10, 20)];
        assert_eq!(verdict(&h), Verdict::Pass);
    }

    #[test]
    fn an_unknown_write_may_take_effect_late_or_never() {
        let late = [unknown(w(1, 1, 1, 0, 0)), r(2, 2, None, 10, 20), r(3, 2, Some(1), 500, 510)];
        assert_eq!(verdict(&late), Verdict::Pass);
        let never = [unknown(w(1, 1, 1, 0, 0)), r(2, 2, None, 10, 20), r(3, 2, None, 500, 510)];
        assert_eq!(verdict(&never), Verdict::Pass);
        // But not before it was invoked.
        let early = [r(1, 2, Some(1), 0, 5), unknown(w(2, 1, 1, 10, 0))];
        assert!(matches!(verdict(&early), Verdict::Fail(_)));
        // Nor can it take effect twice.
        let twice = [
            unknown(w(1, 1, 1, 0, 0)),
            w(2, 2, 2, 10, 20),
            r(3, 2, Some(1), 30, 40),
            r(4, 2, Some(2), 50, 60),
            r(5, 2, Some(1), 70, 80),
        ];
        assert!(matches!(verdict(&twice), Verdict::Fail(_)));
    }

    #[test]
    fn unknown_writes_nobody_read_cost_nothing() {
        // 30 concurrent writes of unknown outcome, none read: left out, so the search is short.
        let mut h: Vec<Op<u32>> = (0..30).map(|i| unknown(w(i, i, i as u32, 0, 0))).collect();
        h.push(w(100, 100, 100, 10, 20));
        h.push(r(101, 100, Some(100), 30, 40));
        let report = check(&h, 1_000);
        assert_eq!(report.verdict(), Verdict::Pass);
        assert_eq!(report.keys[0].ops, 2);
    }

    #[test]
    fn failed_writes_never_happened_and_lost_reads_say_nothing() {
        let seen_failed = [failed(w(1, 1, 1, 0, 10)), r(2, 2, Some(1), 20, 30)];
        assert!(matches!(verdict(&seen_failed), Verdict::Fail(_)));
        let lost_read = [w(1, 1, 1, 0, 10), unknown(r(2, 2, Some(7), 20, 0))];
        assert_eq!(verdict(&lost_read), Verdict::Pass);
    }

    #[test]
    fn compare_and_set_follows_the_register() {
        let cas = |id, p, expect, new, a, b| op(id, p, RegisterOp::Cas { expect, new }, a, b);
        let ok = [w(1, 1, 1, 0, 10), cas(2, 2, Some(1), 2, 20, 30), r(3, 1, Some(2), 40, 50)];
        assert_eq!(verdict(&ok), Verdict::Pass);
        let bad = [w(1, 1, 1, 0, 10), cas(2, 2, Some(5), 2, 20, 30)];
        assert!(matches!(verdict(&bad), Verdict::Fail(_)));
    }

    #[test]
    fn keys_are_checked_apart() {
        let mut h = vec![w(1, 1, 1, 0, 10), r(2, 2, Some(1), 20, 30)];
        let mut other = r(3, 3, None, 40, 50);
        other.key = "y".into();
        h.push(other);
        let report = check(&h, 1_000);
        assert_eq!(report.keys.len(), 2);
        assert_eq!(report.verdict(), Verdict::Pass);
        let mut stale = w(4, 1, 9, 60, 70);
        stale.key = "y".into();
        let mut read = r(5, 2, None, 80, 90);
        read.key = "y".into();
        h.extend([stale, read]);
        let report = check(&h, 1_000);
        let failing: Vec<&str> = report.failures().map(|(k, _)| k).collect();
        assert_eq!(failing, ["y"]);
    }

    #[test]
    fn the_bound_gives_unknown_not_a_verdict() {
        // Many concurrent writes and a read no order explains: the search needs many states.
        let mut h: Vec<Op<u32>> = (0..14).map(|i| w(i, i, i as u32, 0, 1_000)).collect();
        h.push(r(100, 100, Some(99), 2_000, 2_010));
        let small = check(&h, 50);
        assert!(matches!(small.verdict(), Verdict::Unknown(_)), "{:?}", small.verdict());
        assert_eq!(small.unknown(), 1);
        let big = check(&h, 10_000_000);
        assert!(matches!(big.verdict(), Verdict::Fail(_)));
    }

    #[test]
    fn memoization_keeps_many_concurrent_writes_cheap() {
        // 40 concurrent writes, each read back in turn later: (set, state) pairs stay few.
        let mut h: Vec<Op<u32>> = (0..40).map(|i| w(i, i, i as u32, 0, 1_000)).collect();
        h.push(r(100, 100, Some(39), 2_000, 2_010));
        let report = check(&h, 1_000_000);
        assert_eq!(report.verdict(), Verdict::Pass);
    }
}
