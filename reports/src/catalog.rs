//! The scenario catalog as data, for `cargo chaos list --json`: tools read which scenarios and
//! configs exist, which configs are unsafe (exist to prove a checker fails, so a failing sweep
//! of them is expected), and what a sweep must reach.

use scenarios::Scenario;
use serde::Serialize;

/// Schema version of `list --json`; bumped when a field changes meaning or goes away.
pub const CATALOG_VERSION: u32 = 1;

#[derive(Debug, Serialize)]
pub struct Catalog {
    pub version: u32,
    pub scenarios: Vec<ScenarioEntry>,
}

#[derive(Debug, Serialize)]
pub struct ScenarioEntry {
    pub name: &'static str,
    pub about: &'static str,
    pub configs: Vec<ConfigEntry>,
    pub sweep_must_reach: Vec<&'static str>,
    pub window_probes: Vec<ProbeEntry>,
}

#[derive(Debug, Serialize)]
pub struct ConfigEntry {
    pub name: &'static str,
    pub about: &'static str,
    /// True for a variant that exists to be caught (an unsafe setting or a planted bug): its
    /// sweeps are expected to fail, and a nightly job does not fail on them.
    #[serde(rename = "unsafe")]
    pub is_unsafe: bool,
}

#[derive(Debug, Serialize)]
pub struct ProbeEntry {
    pub name: &'static str,
    /// The least share of runs that must reach it, as "num/den" and as a number.
    pub min_rate: String,
    pub min_rate_value: f64,
}

pub fn describe(all: &[&Scenario]) -> Catalog {
    let scenarios = all
        .iter()
        .map(|s| ScenarioEntry {
            name: s.name,
            about: s.about,
            configs: s
                .configs
                .iter()
                .map(|(c, a)| ConfigEntry { name: c, about: a, is_unsafe: is_unsafe(a) })
                .collect(),
            sweep_must_reach: s.sweep_must_reach.to_vec(),
            window_probes: s
                .window_probes
                .iter()
                .map(|p| ProbeEntry {
                    name: p.name,
                    min_rate: format!("{}/{}", p.min_rate.num, p.min_rate.den),
                    min_rate_value: f64::from(p.min_rate.num) / f64::from(p.min_rate.den),
                })
                .collect(),
        })
        .collect();
    Catalog { version: CATALOG_VERSION, scenarios }
}

/// Whether a config, by its description, exists to be caught. The scenarios' convention: an
/// unsafe variant says "unsafe", "planted" or "must catch" in its one-line description.
pub fn is_unsafe(about: &str) -> bool {
    let about = about.to_ascii_lowercase();
    ["unsafe", "plant", "must catch"].iter().any(|w| about.contains(w))
}

/// Whether `config` of `scenario` is unsafe (the default config never is).
pub fn config_is_unsafe(scenario: &Scenario, config: Option<&str>) -> bool {
    config.is_some_and(|c| scenario.configs.iter().any(|(name, about)| *name == c && is_unsafe(about)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unsafe_config_of_the_catalog_is_flagged_and_safe_ones_are_not() {
        let catalog = describe(scenarios::all());
        let flag = |s: &str, c: &str| {
            let s = catalog.scenarios.iter().find(|e| e.name == s).unwrap();
            s.configs.iter().find(|e| e.name == c).unwrap().is_unsafe
        };
        for (s, c) in [
            ("postgres-failover", "async-credentials"),
            ("postgres-failover", "pg-no-watchdog"),
            ("redis-failover", "redis-one-sentinel"),
            ("kafka-partition", "kafka-no-dedup"),
            ("kafka-partition", "kafka-acks1-unclean"),
            ("mongo-failover", "mongo-w1"),
            ("postgres-pitr", "pitr-stop-late"),
            ("smoke", "planted-leak"),
        ] {
            assert!(flag(s, c), "{s} --config {c} is unsafe");
        }
        assert!(!flag("postgres-failover", "pg-sync-strict"));
        assert!(!flag("redis-failover", "redis-min-replicas"));
    }
}
