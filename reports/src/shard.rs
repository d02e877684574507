//! Sweeps beyond one machine: `--shard i/n` runs the i-th of n interleaved slices of a seed range
//! (seed `s` of `A..B` belongs to shard `(s − A) mod n`), and [`merge`] joins the shards'
//! `summary.json` files back into the runs an unsharded sweep would have produced, in its order.
//!
//! Interleaving, not contiguous blocks, so every shard meets early and late seeds alike and the
//! shards of one sweep take about the same time. Shards are numbered from 0, as a CI matrix index
//! and a Kubernetes completion index are.

use std::ops::Range;
use std::path::Path;

use scenarios::{RunReport, Scenario};
use serde::Deserialize;

/// The `i`-th of `n` interleaved slices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Shard {
    /// Parses `i/n` with `0 ≤ i < n`; a bad one says why, in one line.
    pub fn parse(s: &str) -> Result<Shard, String> {
        let bad = || format!("invalid shard `{s}`: expected I/N with integers 0 <= I < N (shards count from 0)");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count) = (i.trim().parse::<u64>().map_err(|_| bad())?, n.trim().parse::<u64>().map_err(|_| bad())?);
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }

    /// The seeds of `range` in this shard, ascending.
    pub fn seeds(&self, range: Range<u64>) -> Vec<u64> {
        let start = range.start;
        range.filter(|s| (s - start) % self.count == self.index).collect()
    }

    pub fn label(&self) -> String {
        format!("{}/{}", self.index, self.count)
    }
}

/// What a merge reads of each shard's `summary.json` (the rest is recomputed from the runs).
#[derive(Debug, Deserialize)]
pub struct ShardFile {
    pub scenarios: Vec<String>,
    pub config: Option<String>,
    pub seeds: String,
    #[serde(default)]
    pub shard: Option<String>,
    pub runs: Vec<RunReport>,
}

impl ShardFile {
    pub fn read(dir: &Path) -> Result<ShardFile, String> {
        let path = dir.join("summary.json");
        let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{} is not a sweep summary: {e}", path.display()))
    }
}

/// The shards joined: the sweep they split, and its runs in the unsharded sweep's order.
pub struct Merged {
    pub scenarios: Vec<&'static Scenario>,
    pub config: Option<String>,
    pub seeds: String,
    pub runs: Vec<RunReport>,
}

/// Joins shard outputs of one sweep (same scenarios, config and seed range). Refuses shards of
/// different sweeps, a run present twice, and an incomplete set of `i/n` shards.
pub fn merge(files: Vec<ShardFile>, catalog: &[&'static Scenario]) -> Result<Merged, String> {
    let first = files.first().ok_or("nothing to merge: give at least one sweep directory")?;
    let (names, config, seeds) = (first.scenarios.clone(), first.config.clone(), first.seeds.clone());
    let mut shards = Vec::new();
    for f in &files {
        if f.scenarios != names || f.config != config || f.seeds != seeds {
            return Err(format!(
                "the directories hold different sweeps: {:?} {:?} seeds {} and {:?} {:?} seeds {}",
                names, config, seeds, f.scenarios, f.config, f.seeds
            ));
        }
        if let Some(s) = &f.shard {
            shards.push(Shard::parse(s)?);
        }
    }
    if let Some(n) = shards.first().map(|s| s.count) {
        let mut have: Vec<u64> = shards.iter().filter(|s| s.count == n).map(|s| s.index).collect();
        have.sort_unstable();
        have.dedup();
        if shards.iter().any(|s| s.count != n) || have.len() as u64 != n || shards.len() != files.len() {
            let got: Vec<String> =
                files.iter().map(|f| f.shard.clone().unwrap_or_else(|| "unsharded".into())).collect();
            return Err(format!(
                "an incomplete or mixed set of shards: expected 0/{n}..{}/{n} once each, got {got:?}",
                n - 1
            ));
        }
    }
    let scenarios: Vec<&'static Scenario> = names
        .iter()
        .map(|n| {
            catalog.iter().copied().find(|s| s.name == n).ok_or_else(|| format!("unknown scenario `{n}` in a summary"))
        })
        .collect::<Result<_, _>>()?;
    let mut runs: Vec<RunReport> = files.into_iter().flat_map(|f| f.runs).collect();
    let order = |r: &RunReport| (names.iter().position(|n| *n == r.scenario).unwrap_or(usize::MAX), r.seed);
    runs.sort_by_key(order);
    if let Some(w) = runs.windows(2).find(|w| order(&w[0]) == order(&w[1])) {
        return Err(format!("{} seed {} appears in more than one directory", w[0].scenario, w[0].seed));
    }
    Ok(Merged { scenarios, config, seeds, runs })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_the_range_and_bad_ones_say_why() {
        let a = Shard::parse("0/3").unwrap().seeds(10..20);
        let b = Shard::parse("1/3").unwrap().seeds(10..20);
        let c = Shard::parse("2/3").unwrap().seeds(10..20);
        assert_eq!(a, vec![10, 13, 16, 19]);
        assert_eq!(b, vec![11, 14, 17]);
        let mut all: Vec<u64> = a.into_iter().chain(b).chain(c).collect();
        all.sort_unstable();
        assert_eq!(all, (10..20).collect::<Vec<_>>());
        for bad in ["3/3", "1", "a/2", "0/0", "-1/2"] {
            assert!(Shard::parse(bad).unwrap_err().contains(bad), "{bad}");
        }
    }
}
