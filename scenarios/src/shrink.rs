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

/// The search itself, over any predicate "this schedule still fails", so its logic is tested
/// without running scenarios. The predicate is called at most `max_runs` times.
struct Search<'a> {
    fails_with: &'a mut dyn FnMut(&[Scheduled]) -> io::Result<bool>,
    runs: usize,
    max_runs: usize,
    smallest: usize,
    progress: &'a mut dyn FnMut(Progress),
}

impl Search<'_> {
    fn fails(&mut self, candidate: &[Scheduled]) -> io::Result<bool> {
        if self.runs >= self.max_runs {
            return Ok(false);
        }
        self.runs += 1;
        let fails = (self.fails_with)(candidate)?;
        if fails {
            self.smallest = self.smallest.min(candidate.len());
        }
        (self.progress)(Progress::Ran { runs: self.runs, max_runs: self.max_runs, smallest: self.smallest });
        Ok(fails)
    }

    fn exhausted(&self) -> bool {
        self.runs >= self.max_runs
    }

    /// ddmin over the entries of `items`, which fails.
    fn ddmin(&mut self, mut items: Vec<Scheduled>) -> io::Result<Vec<Scheduled>> {
        if items.is_empty() || self.fails(&[])? {
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
            if !reduced && chunks.len() > 2 {
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

    /// All three phases; returns the smallest failing schedule found.
    fn minimize(&mut self, original: Vec<Scheduled>) -> io::Result<Vec<Scheduled>> {
        (self.progress)(Progress::Phase("faults"));
        let items = self.ddmin(original)?;
        (self.progress)(Progress::Phase("durations"));
        let items = self.shorten(items)?;
        (self.progress)(Progress::Phase("start times"));
        self.round(items)
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
    let mut last_failing = first;
    let mut fails_with = |candidate: &[Scheduled]| -> io::Result<bool> {
        let report = run(base.clone().with_schedule(candidate.to_vec()))?;
        let fails = report.violations.iter().any(|v| v.kind == kind);
        if fails {
            last_failing = report;
        }
        Ok(fails)
    };
    let mut search = Search { fails_with: &mut fails_with, runs: 1, max_runs, smallest: original.len(), progress };
    let schedule = search.minimize(original.clone())?;
    let (runs, bounded) = (search.runs, search.exhausted());
    // The search only ever keeps a candidate that failed, so the last failing run is the
    // shrunk schedule's own run (unless nothing smaller failed: then it is the original's).
    debug_assert_eq!(last_failing.schedule, schedule);
    Ok(Shrunk { kind, original, schedule, report: last_failing, runs, bounded })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sim::Target;

    fn at(at_ms: u64, fault: Fault) -> Scheduled {
        Scheduled { at_ms, fault }
    }

    fn kill(node: &str) -> Fault {
        Fault::Kill(Target::node(node))
    }

    /// Runs the search against a predicate instead of a scenario.
    fn minimize(
        original: Vec<Scheduled>,
        max_runs: usize,
        mut fails: impl FnMut(&[Scheduled]) -> bool,
    ) -> (Vec<Scheduled>, usize) {
        let mut pred = |c: &[Scheduled]| Ok(fails(c));
        let mut quiet = |_: Progress| {};
        let mut s = Search { fails_with: &mut pred, runs: 0, max_runs, smallest: original.len(), progress: &mut quiet };
        let out = s.minimize(original).expect("no io");
        (out, s.runs)
    }

    #[test]
    fn finds_the_two_faults_that_together_fail_among_many() {
        let original: Vec<Scheduled> = (0..16).map(|i| at(i * 1_000 + 7, kill(&format!("n{i}")))).collect();
        let needs = |c: &[Scheduled]| {
            let has = |n: &str| c.iter().any(|s| s.fault == kill(n));
            has("n3") && has("n11")
        };
        let (out, runs) = minimize(original, 500, needs);
        let names: Vec<Fault> = out.iter().map(|s| s.fault.clone()).collect();
        assert_eq!(names, vec![kill("n3"), kill("n11")]);
        assert_eq!(
            out.iter().map(|s| s.at_ms).collect::<Vec<_>>(),
            vec![0, 10_000],
            "starts rounded to the coarsest step"
        );
        assert!(runs < 80, "{runs} runs");
    }

    #[test]
    fn shortens_an_undo_to_the_shortest_duration_that_still_fails() {
        let original = vec![at(10_000, Fault::Pause(Target::node("a"))), at(20_000, Fault::Resume(Target::node("a")))];
        // Fails only if the pause lasts at least 3 s.
        let (out, _) = minimize(original, 500, |c| c.len() == 2 && c[1].at_ms >= c[0].at_ms + 3_000);
        assert_eq!(out[0].at_ms, 10_000);
        assert!((13_000..13_200).contains(&out[1].at_ms), "{out:?}");
    }

    #[test]
    fn a_failure_without_faults_shrinks_to_the_empty_schedule_in_one_run() {
        let (out, runs) = minimize(vec![at(5, kill("a")), at(6, kill("b"))], 500, |_| true);
        assert!(out.is_empty());
        assert_eq!(runs, 1);
    }

    #[test]
    fn the_run_bound_is_kept() {
        let original: Vec<Scheduled> = (0..64).map(|i| at(i, kill(&format!("n{i}")))).collect();
        let (out, runs) = minimize(original, 10, |c| c.len() > 40);
        assert_eq!(runs, 10);
        assert!(out.len() > 40, "what is returned still fails");
    }
}
