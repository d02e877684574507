//! History checkers beyond "nothing was lost": given what clients invoked and what they were
//! told, decide whether some order of the operations explains every answer.
//!
//! ```
//! use consistency::{linearizable, Outcome, Verdict};
//! use consistency::linearizable::{RegisterOp, Op};
//!
//! // p1 writes 1 and is told so; p2 then reads the initial value: a stale read.
//! let history = vec![
//!     Op { id: 1, process: 1, key: "x".into(), op: RegisterOp::Write(1), invoke_ms: 0, complete_ms: Some(10), outcome: Outcome::Ok },
//!     Op { id: 2, process: 2, key: "x".into(), op: RegisterOp::Read(None), invoke_ms: 20, complete_ms: Some(30), outcome: Outcome::Ok },
//! ];
//! let report = linearizable::check(&history, 10_000);
//! assert!(matches!(report.verdict(), Verdict::Fail(_)));
//! ```
//!
//! Two checkers, each over a history of client operations with invoke and complete times
//! (simulated milliseconds) and an [`Outcome`]: `Ok` (the client was told it happened), `Fail`
//! (the client was told it did not happen) or `Unknown` (a timeout or a broken connection: it may
//! or may not have taken effect, at any moment after its invocation).
//!
//! - [`linearizable`]: single-key read/write/compare-and-set registers, checked key by key
//!   (P-compositionality: a history is linearizable iff each key's is) with the Wing–Gong/Lowe
//!   search as Porcupine does it (just-in-time linearization over a doubly linked list of call and
//!   return entries, memoizing `(linearized set, register state)`). The search is bounded by the
//!   number of states explored; past the bound the verdict is [`Verdict::Unknown`], never a pass
//!   or a failure.
//! - [`elle`]: Elle-style anomaly detection over multi-key transactions on list-append or
//!   read-write registers with unique written values: infer write-write, write-read and
//!   read-write (anti-)dependencies, optionally real-time edges, find cycles (strongly connected
//!   components through `petgraph`, then a shortest cycle per class) and name them G0, G1c,
//!   G-single, G2 (with `-realtime` when a real-time edge is needed), besides the non-cyclic G1a
//!   (aborted read), G1b (intermediate read) and garbage reads.
//!
//! Every failure names the anomaly and the operations that form it (ids, process, times,
//! values).
//!
//! Why our own code and not a crate: `consistency_model` (0.0.0) and `stateright`'s
//! `LinearizabilityTester` check one history exhaustively with no bound on the search (an
//! unlucky history hangs a sweep), want one operation in flight per thread and a return for
//! each (our clients time out and go on, leaving unknown outcomes), and do not partition by key;
//! the Porcupine ports found were unmaintained. No maintained Rust Elle exists. `petgraph` is
//! used for the strongly connected components.
//!
//! Left out: Elle's internal-consistency checks (a transaction reading its own writes), the
//! process-order edges (sessions), predicate reads, and Knossos's model of more than registers.

pub mod elle;
pub mod linearizable;

use std::fmt;

/// What the client was told about an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    /// It happened (a read's value is what it returned).
    Ok,
    /// It did not happen (a definite rejection).
    Fail,
    /// No answer that settles it: it may have taken effect at any time after its invocation, or
    /// never.
    Unknown,
}

/// A checker's verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// The anomaly found, described with the operations that form it.
    Fail(String),
    /// The search hit its bound before deciding.
    Unknown(String),
}

/// Milliseconds, or "never" for an operation that did not complete.
pub(crate) struct Ms(pub Option<u64>);

impl fmt::Display for Ms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(ms) => write!(f, "{ms}"),
            None => f.write_str("?"),
        }
    }
}
