//! Shrinking a failing run: cut its fault schedule down to a minimal one that still fails with
//! the same kind of violation.
//!
//! First delta debugging (Zeller's ddmin) over the schedule's entries: try halves, then
//! complements, at ever finer granularity, keeping any subset that still fails. Then each
//! survivor's timing: a fault that undoes an earlier one (resume, heal, restart) is moved as
//! close to its cause as still fails, so the fault lasts as short as it can; every entry's start
//! is rounded to the coarsest time that still fails, so the schedule reads as simply as it can.
//! Every candidate is a full deterministic run of the scenario under the same seed and config,
//! so the result replays exactly with `run --schedule`.

use std::io;

use sim::{Fault, Scheduled};

use crate::runner::{run, RunReport, RunRequest};

/// What the shrinker reports as it goes.
pub enum Progress<'a> {
    /// A candidate ran: runs so far, the bound, and the size of the smallest failing schedule.
    Ran { runs: usize, max_runs: usize, smallest: usize },
    /// Entering a phase.
    Phase(&'a str),
}

/// The result of a shrink.
pub struct Shrunk {
    /// The violation kind the shrunk schedule still fails with.
    pub kind: String,
    pub original: Vec<Scheduled>,
    pub schedule: Vec<Scheduled>,
    /// The last failing run, under `schedule`.
    pub report: RunReport,
    pub runs: usize,
    /// True when the run bound stopped the search before it finished.
    pub bounded: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ShrinkError {
    #[error("{scenario} seed {seed} passes: there is no failure to shrink")]
    Passes { scenario: String, seed: u64 },
    #[error("{scenario} seed {seed} fails, but with no `{kind}` violation (it has: {found})")]
    NoSuchKind { scenario: String, seed: u64, kind: String, found: String },
    #[error(transparent)]
    Io(#[from] io::Error),
}

struct Search<'a> {
    base: RunRequest,
    kind: String,
    runs: usize,
    max_runs: usize,
    best: Vec<Scheduled>,
    best_report: RunReport,
    progress: &'a mut dyn FnMut(Progress),
}

impl Search<'_> {
    /// Whether `candidate` still fails with the kind; remembers it when it does and is no larger.
    fn fails(&mut self, candidate: &[Scheduled]) -> io::Result<bool> {
        if self.runs >= self.max_runs {
            return Ok(false);
        }
        self.runs += 1;
        let report = run(self.base.clone().with_schedule(candidate.to_vec()))?;
        let fails = report.violations.iter().any(|v| v.kind == self.kind);
        if fails && candidate.len() <= self.best.len() {
            self.best = candidate.to_vec();
            self.best_report = report;
        }
        (self.progress)(Progress::Ran { runs: self.runs, max_runs: self.max_runs, smallest: self.best.len() });
        Ok(fails)
    }

    fn exhausted(&self) -> bool {
        self.runs >= self.max_runs
    }

    /// ddmin over the entries of `items`, which fails.
    fn ddmin(&mut self, mut items: Vec<Scheduled>) -> io::Result<Vec<Scheduled>> {
        if self.fails(&[])? {
            return Ok(Vec::new());
        }
        let mut n = 2;
        while items.len() >= 2 && !self.exhausted() {
            let chunks = split(&items, n);
            let mut reduced = false;
            for chunk in &chunks {
                if self.fails(chunk)? {
                    items = chunk.clone();
                    n = 2;
                    reduced = true;
                    break;
                }
            }
            if !reduced && n > 2 {
                for i in 0..chunks.len() {
                    let complement: Vec<Scheduled> =
                        chunks.iter().enumerate().filter(|(j, _)| *j != i).flat_map(|(_, c)| c.clone()).collect();
                    if self.fails(&complement)? {
                        items = complement;
                        n = (n - 1).max(2);
                        reduced = true;
                        break;
                    }
                }
            }
            if !reduced {
                if n >= items.len() {
                    break;
                }
                n = (2 * n).min(items.len());
            }
        }
        Ok(items)
    }

    /// Moves each undo as close to its cause as still fails (binary search on the gap).
    fn shorten(&mut self, mut items: Vec<Scheduled>) -> io::Result<Vec<Scheduled>> {
        for i in 0..items.len() {
            if !undoes(&items[i].fault) {
                continue;
            }
            let cause_ms = items[..i].iter().rev().find(|s| !undoes(&s.fault)).map_or(0, |s| s.at_ms);
            let (mut lo, mut hi) = (cause_ms, items[i].at_ms);
            while hi - lo > 100 && !self.exhausted() {
                let mid = lo + (hi - lo) / 2;
                let mut candidate = items.clone();
                candidate[i].at_ms = mid;
                if self.fails(&candidate)? {
                    hi = mid;
                    items = candidate;
                } else {
                    lo = mid;
                }
            }
        }
        Ok(items)
    }

    /// Rounds each entry's time to the coarsest step (10 s, 1 s, 100 ms) that still fails.
    fn round(&mut self, mut items: Vec<Scheduled>) -> io::Result<Vec<Scheduled>> {
        for i in 0..items.len() {
            for step in [10_000, 1_000, 100] {
                let rounded = items[i].at_ms / step * step;
                if rounded == items[i].at_ms || self.exhausted() {
                    break;
                }
                let mut candidate = items.clone();
                candidate[i].at_ms = rounded;
                if self.fails(&candidate)? {
                    items = candidate;
                    break;
                }
            }
        }
        Ok(items)
    }
}

/// Whether a fault undoes an earlier one (so moving it earlier makes that fault shorter).
fn undoes(fault: &Fault) -> bool {
    matches!(fault, Fault::Resume(_) | Fault::HealNetwork | Fault::HealAll | Fault::Restart(_))
}

fn split(items: &[Scheduled], n: usize) -> Vec<Vec<Scheduled>> {
    let size = items.len().div_ceil(n);
    items.chunks(size.max(1)).map(<[Scheduled]>::to_vec).collect()
}

/// Shrinks the failing run `base` (its given schedule, or the one its seed draws) to a minimal
/// schedule that still fails with `kind` (default: the first kind the run fails with), in at
/// most `max_runs` runs.
pub fn shrink(
    base: RunRequest,
    kind: Option<String>,
    max_runs: usize,
    progress: &mut dyn FnMut(Progress),
) -> Result<Shrunk, ShrinkError> {
    let first = run(base.clone())?;
    let (scenario, seed) = (first.scenario.clone(), first.seed);
    if first.passed {
        return Err(ShrinkError::Passes { scenario, seed });
    }
    let kinds: Vec<String> = first.violation_kinds().into_iter().map(String::from).collect();
    let kind = match kind {
        Some(k) if kinds.contains(&k) => k,
        Some(k) => return Err(ShrinkError::NoSuchKind { scenario, seed, kind: k, found: kinds.join(", ") }),
        None => kinds[0].clone(),
    };
    let original = first.schedule.clone();
    let mut search = Search {
        base,
        kind: kind.clone(),
        runs: 1,
        max_runs,
        best: original.clone(),
        best_report: first,
        progress,
    };
    (search.progress)(Progress::Phase("faults"));
    let items = search.ddmin(original.clone())?;
    (search.progress)(Progress::Phase("durations"));
    let items = search.shorten(items)?;
    (search.progress)(Progress::Phase("start times"));
    let items = search.round(items)?;
    debug_assert!(items.len() == search.best.len());
    let bounded = search.exhausted();
    Ok(Shrunk {
        kind,
        original,
        schedule: search.best,
        report: search.best_report,
        runs: search.runs,
        bounded,
    })
}
