//! What users saw during one run, for the availability report: per client operation class, the
//! operations attempted and succeeded, a latency histogram (`hdrhistogram`, serialized as its
//! recorded buckets so a sweep merges histograms rather than averaging percentiles) and a
//! per-second timeline; the fault windows of the schedule; and the acknowledged data the
//! checkers found lost.
//!
//! It is filled from [`sim::observation::OpOutcome`] observations (a scenario's clients record
//! one per operation, with [`record_op`] or [`op_since`]) and from [`crate::Verdict::lost`]. A run whose clients record no
//! operation has no availability figures (`None`), and reports say so rather than print 100%.
//!
//! Operations are placed in time by when they were invoked (completion time minus latency): a
//! request that times out three seconds after a zone died shows the outage when it began.
//! A fault window lasts from its fault to the first later step that undoes it (`resume` a
//! `pause`, `heal_network` a partition, `restart` a kill or crash of the same target, `heal_all`
//! anything) or, with none, to the end of the workload; a corrupt block is an instant.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use sim::observation::OpOutcome;
use sim::{Fault, NodeCtx, Outcome};

use crate::scenario::Lost;

/// Latencies are recorded from 1 ms to an hour with three significant digits.
pub const HISTOGRAM_HIGHEST_MS: u64 = 3_600_000;
pub const HISTOGRAM_SIGFIG: u8 = 3;

/// One run's figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Availability {
    /// Per operation class.
    pub classes: BTreeMap<String, ClassFigures>,
    /// The schedule's faults as windows of simulated time.
    pub faults: Vec<FaultWindow>,
    /// Acknowledged items lost, as the checkers counted them.
    pub lost: Vec<Lost>,
    /// When the workload's clients stopped (the run's ending began), or the run's end.
    pub workload_end_ms: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClassFigures {
    pub attempted: u64,
    pub ok: u64,
    /// The latency histogram's recorded buckets: `[highest equivalent value in ms, count]`.
    pub latency_ms: Vec<[u64; 2]>,
    /// Per second of invocation time with any operation.
    pub timeline: Vec<Bucket>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    /// The second of simulated time the operations were invoked in.
    pub t_s: u64,
    pub attempted: u64,
    pub ok: u64,
    /// The slowest successful operation of the second, and their mean (ms); 0 with none.
    pub latency_max_ms: u64,
    pub latency_mean_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultWindow {
    /// The fault's kind (`kill`, `partition`, ...), as in `Fault::kind`.
    pub kind: String,
    /// The nodes it touched, comma-separated (a label for charts).
    pub nodes: String,
    pub start_ms: u64,
    pub end_ms: u64,
}

/// Records one operation a user saw, for the availability report.
pub fn record_op(ctx: &NodeCtx, class: &str, ok: bool, latency_ms: u64) {
    ctx.observe(&OpOutcome { class: class.into(), ok, latency_ms });
}

/// Records one operation a user saw that began at `started_ms` (simulated) and ends now.
pub fn op_since(ctx: &NodeCtx, class: &str, ok: bool, started_ms: u64) {
    record_op(ctx, class, ok, ctx.clock.now_ms().saturating_sub(started_ms));
}

/// An empty latency histogram with the report's bounds.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HISTOGRAM_HIGHEST_MS, HISTOGRAM_SIGFIG).expect("static bounds")
}

/// The buckets a histogram recorded, as `ClassFigures::latency_ms` stores them.
pub fn histogram_buckets(h: &Histogram<u64>) -> Vec<[u64; 2]> {
    h.iter_recorded().map(|v| [v.value_iterated_to(), v.count_at_value()]).collect()
}

/// Adds stored buckets into a histogram (the inverse of [`histogram_buckets`]).
pub fn add_buckets(h: &mut Histogram<u64>, buckets: &[[u64; 2]]) {
    for [value, count] in buckets {
        h.saturating_record_n(*value, *count);
    }
}

/// The figures of a finished run, or `None` when its clients recorded no operation.
pub fn collect(outcome: &Outcome, lost: &[Lost]) -> Option<Availability> {
    let (ops, faults, workload_end_ms) = outcome.observations(|o| {
        let ops: Vec<(u64, OpOutcome)> = o.of::<OpOutcome>().map(|s| (s.t_ms, s.value)).collect();
        let faults: Vec<(u64, Fault, Vec<String>)> =
            o.faults().map(|f| (f.t_ms, f.value.fault, f.value.nodes)).collect();
        (ops, faults, o.ending_started_ms().unwrap_or(outcome.sim_time_ms))
    });
    if ops.is_empty() {
        return None;
    }
    Some(Availability {
        classes: classes(&ops),
        faults: windows(&faults, workload_end_ms),
        lost: lost.to_vec(),
        workload_end_ms,
    })
}

fn classes(ops: &[(u64, OpOutcome)]) -> BTreeMap<String, ClassFigures> {
    struct Acc {
        figures: ClassFigures,
        hist: Histogram<u64>,
        seconds: BTreeMap<u64, (Bucket, u64)>,
    }
    let mut acc: BTreeMap<&str, Acc> = BTreeMap::new();
    for (done_ms, op) in ops {
        let a = acc.entry(op.class.as_str()).or_insert_with(|| Acc {
            figures: ClassFigures::default(),
            hist: histogram(),
            seconds: BTreeMap::new(),
        });
        let t_s = done_ms.saturating_sub(op.latency_ms) / 1000;
        let (bucket, latency_sum) = a.seconds.entry(t_s).or_insert_with(|| (Bucket { t_s, ..Bucket::default() }, 0));
        a.figures.attempted += 1;
        bucket.attempted += 1;
        if op.ok {
            a.figures.ok += 1;
            bucket.ok += 1;
            a.hist.saturating_record(op.latency_ms.max(1));
            bucket.latency_max_ms = bucket.latency_max_ms.max(op.latency_ms);
            *latency_sum += op.latency_ms;
        }
    }
    acc.into_iter()
        .map(|(class, mut a)| {
            a.figures.latency_ms = histogram_buckets(&a.hist);
            a.figures.timeline = a
                .seconds
                .into_values()
                .map(|(mut b, sum)| {
                    b.latency_mean_ms = sum.checked_div(b.ok).unwrap_or(0);
                    b
                })
                .collect();
            (class.to_string(), a.figures)
        })
        .collect()
}

/// Whether `undo` (applied later) ends the window of `fault`.
fn undoes(undo: &Fault, fault: &Fault) -> bool {
    let same = |a: &sim::Target, b: &sim::Target| a == b;
    match (undo, fault) {
        (Fault::HealAll, _) => true,
        (Fault::HealNetwork, Fault::Partition { .. } | Fault::PartitionOneWay { .. } | Fault::Isolate(_)) => true,
        (Fault::Resume(a), Fault::Pause(b)) => same(a, b),
        (Fault::Restart(a), Fault::Kill(b) | Fault::Crash(b) | Fault::Wipe(b)) => same(a, b),
        _ => false,
    }
}

fn is_undo(f: &Fault) -> bool {
    matches!(f, Fault::HealAll | Fault::HealNetwork | Fault::Resume(_) | Fault::Restart(_))
}

fn windows(faults: &[(u64, Fault, Vec<String>)], end_ms: u64) -> Vec<FaultWindow> {
    faults
        .iter()
        .enumerate()
        .filter(|(_, (_, f, _))| !is_undo(f))
        .map(|(i, (start_ms, fault, nodes))| {
            let end = if matches!(fault, Fault::Corrupt { .. }) {
                *start_ms
            } else {
                faults[i + 1..]
                    .iter()
                    .find(|(_, u, _)| undoes(u, fault))
                    .map(|(t, _, _)| *t)
                    .unwrap_or(end_ms.max(*start_ms))
            };
            FaultWindow { kind: fault.kind().to_string(), nodes: nodes.join(","), start_ms: *start_ms, end_ms: end }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sim::Target;

    #[test]
    fn windows_end_at_their_undo_and_heal_all_ends_everything() {
        let n = |s: &str| Target::Node(s.into());
        let faults = vec![
            (1_000, Fault::Pause(n("a")), vec!["a".into()]),
            (2_000, Fault::Kill(n("b")), vec!["b".into()]),
            (3_000, Fault::Resume(n("a")), vec![]),
            (4_000, Fault::Isolate(n("c")), vec!["c".into()]),
            (6_000, Fault::HealAll, vec![]),
            (7_000, Fault::Kill(n("d")), vec!["d".into()]),
        ];
        let w = windows(&faults, 10_000);
        let spans: Vec<(&str, u64, u64)> = w.iter().map(|w| (w.kind.as_str(), w.start_ms, w.end_ms)).collect();
        assert_eq!(
            spans,
            vec![("pause", 1_000, 3_000), ("kill", 2_000, 6_000), ("isolate", 4_000, 6_000), ("kill", 7_000, 10_000)]
        );
    }

    #[test]
    fn classes_bucket_by_invocation_and_histograms_round_trip() {
        let op = |class: &str, ok, latency_ms| OpOutcome { class: class.into(), ok, latency_ms };
        let ops =
            vec![(1_200, op("append", true, 100)), (4_500, op("append", false, 3_000)), (1_900, op("read", true, 5))];
        let c = classes(&ops);
        let append = &c["append"];
        assert_eq!((append.attempted, append.ok), (2, 1));
        assert_eq!(append.timeline.iter().map(|b| (b.t_s, b.attempted, b.ok)).collect::<Vec<_>>(), vec![(1, 2, 1)]);
        let mut h = histogram();
        add_buckets(&mut h, &append.latency_ms);
        assert_eq!(h.len(), 1);
        assert_eq!(h.value_at_quantile(0.5), h.highest_equivalent(100));
    }
}
