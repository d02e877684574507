//! The balancer's health table, sans-IO: which instances are in rotation.
//!
//! The shell probes every instance's `GET /health` (port 8081) on an interval and steps the
//! table with each result; the table answers with the change, if any, that the result causes:
//! - an instance **in rotation** leaves it after `fail_after` consecutive failed probes (HAProxy's
//!   `fall`); a passing probe resets the count, so one lost probe never removes anyone;
//! - an instance **out of rotation** re-enters after `recover_after` consecutive passing probes
//!   (`rise`), so an instance that flaps is not handed sessions between its failures;
//! - an instance **never yet seen healthy** (at start, before its first passing probe) enters
//!   on its first passing probe: it has no record of failing to hold against it, and making a
//!   fresh stack wait `recover_after` intervals before serving anything helps no one.
//!
//! Instances start out of rotation: a balancer routes nothing to an instance it has not seen
//! answer (HAProxy starts servers down until their first check too, with `init-state down`).
//!
//! Left out: HAProxy's `slowstart` (ramping traffic to a re-added instance), `observe layer4`
//! (counting live traffic errors as failed checks: the circuit breaker, [`super::breaker`],
//! plays that part), and agent checks reporting a weight.

use std::collections::BTreeMap;

/// What one probe of an instance found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// `GET /health` answered 200 within the probe's timeout.
    Passed,
    /// Anything else: refused, reset, timed out, a 503, garbage.
    Failed,
}

/// A change of rotation caused by a probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// First passing probe of an instance never yet in rotation.
    Added { instance: String },
    /// Taken out of rotation after `failures` consecutive failed probes.
    Removed { instance: String, failures: u32 },
    /// Back in rotation after `successes` consecutive passing probes.
    Readded { instance: String, successes: u32 },
}

impl Change {
    pub fn instance(&self) -> &str {
        match self {
            Change::Added { instance } | Change::Removed { instance, .. } | Change::Readded { instance, .. } => {
                instance
            }
        }
    }
}

/// One instance's record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InstanceHealth {
    pub in_rotation: bool,
    /// Whether it was ever in rotation (a first entry needs one passing probe, a return more).
    pub ever_in_rotation: bool,
    pub consecutive_failures: u32,
    pub consecutive_successes: u32,
    /// When it last entered or left rotation (simulated ms), None before either happened.
    pub changed_at_ms: Option<u64>,
    pub last_probe_ms: Option<u64>,
}

/// The health table of a fixed set of instances (see the module doc).
#[derive(Clone, Debug)]
pub struct HealthTable {
    fail_after: u32,
    recover_after: u32,
    instances: BTreeMap<String, InstanceHealth>,
}

impl HealthTable {
    /// A table of `instances`, all out of rotation. Zero thresholds count as one.
    pub fn new(instances: impl IntoIterator<Item = String>, fail_after: u32, recover_after: u32) -> Self {
        let instances = instances.into_iter().map(|i| (i, InstanceHealth::default())).collect();
        HealthTable { fail_after: fail_after.max(1), recover_after: recover_after.max(1), instances }
    }

    /// Steps the table with one probe result of `instance` at `now_ms`. An unknown instance is
    /// ignored (the shell only probes what the table was built with).
    pub fn step(&mut self, now_ms: u64, instance: &str, probe: Probe) -> Option<Change> {
        let (fail_after, recover_after) = (self.fail_after, self.recover_after);
        let h = self.instances.get_mut(instance)?;
        h.last_probe_ms = Some(now_ms);
        match probe {
            Probe::Passed => {
                h.consecutive_failures = 0;
                h.consecutive_successes = h.consecutive_successes.saturating_add(1);
            }
            Probe::Failed => {
                h.consecutive_successes = 0;
                h.consecutive_failures = h.consecutive_failures.saturating_add(1);
            }
        }
        let instance = instance.to_string();
        let change = match (h.in_rotation, probe) {
            (true, Probe::Failed) if h.consecutive_failures >= fail_after => {
                Change::Removed { instance, failures: h.consecutive_failures }
            }
            (false, Probe::Passed) if !h.ever_in_rotation => Change::Added { instance },
            (false, Probe::Passed) if h.consecutive_successes >= recover_after => {
                Change::Readded { instance, successes: h.consecutive_successes }
            }
            _ => return None,
        };
        h.in_rotation = !matches!(change, Change::Removed { .. });
        h.ever_in_rotation = true;
        h.changed_at_ms = Some(now_ms);
        Some(change)
    }

    pub fn in_rotation(&self, instance: &str) -> bool {
        self.instances.get(instance).is_some_and(|h| h.in_rotation)
    }

    /// The instances of `pool` in rotation, in the pool's order.
    pub fn healthy<'a>(&'a self, pool: &'a [String]) -> impl Iterator<Item = &'a str> + 'a {
        pool.iter().map(String::as_str).filter(|i| self.in_rotation(i))
    }

    pub fn get(&self, instance: &str) -> Option<&InstanceHealth> {
        self.instances.get(instance)
    }
}

#[cfg(test)]
mod tests {
    use super::Probe::{Failed as F, Passed as P};
    use super::*;

    fn table() -> HealthTable {
        HealthTable::new(["a".to_string(), "b".to_string()], 3, 2)
    }

    fn added(i: &str) -> Option<Change> {
        Some(Change::Added { instance: i.into() })
    }
    fn removed(i: &str, failures: u32) -> Option<Change> {
        Some(Change::Removed { instance: i.into(), failures })
    }
    fn readded(i: &str, successes: u32) -> Option<Change> {
        Some(Change::Readded { instance: i.into(), successes })
    }

    #[test]
    fn removal_after_k_failures_and_return_after_m_successes() {
        let mut t = table();
        // (instance, probe, change expected, in rotation afterwards)
        let steps: &[(&str, Probe, Option<Change>, bool)] = &[
            ("a", F, None, false),
            ("a", F, None, false),
            ("a", F, None, false),
            ("a", P, added("a"), true),
            ("a", P, None, true),
            ("a", F, None, true),
            ("a", F, None, true),
            ("a", P, None, true), // a pass resets the failure count
            ("a", F, None, true),
            ("a", F, None, true),
            ("a", F, removed("a", 3), false),
            ("a", F, None, false),
            ("a", P, None, false), // a return needs `recover_after` passes in a row
            ("a", F, None, false),
            ("a", P, None, false),
            ("a", P, readded("a", 2), true),
            ("a", P, None, true),
            ("x", P, None, false), // unknown instances are ignored
        ];
        for (i, (inst, probe, want, up)) in steps.iter().enumerate() {
            assert_eq!(t.step(i as u64 * 100, inst, *probe), *want, "step {i}");
            assert_eq!(t.in_rotation(inst), *up, "step {i}");
        }
        let a = t.get("a").unwrap();
        assert_eq!((a.changed_at_ms, a.last_probe_ms, a.consecutive_successes), (Some(1_500), Some(1_600), 3));
        assert_eq!(t.get("b"), Some(&InstanceHealth::default()), "b was never probed");
    }

    #[test]
    fn healthy_keeps_the_pools_order_and_only_members_in_rotation() {
        let mut t = HealthTable::new(["c", "a", "b"].map(String::from), 1, 1);
        let pool: Vec<String> = ["c", "a", "b"].map(String::from).to_vec();
        assert_eq!(t.healthy(&pool).count(), 0, "everyone starts out of rotation");
        for i in ["a", "b", "c"] {
            assert_eq!(t.step(0, i, P), added(i));
        }
        assert_eq!(t.healthy(&pool).collect::<Vec<_>>(), ["c", "a", "b"]);
        assert_eq!(t.step(10, "a", F), removed("a", 1), "fail_after 1 removes at once");
        assert_eq!(t.healthy(&pool).collect::<Vec<_>>(), ["c", "b"]);
        let other_pool = vec!["a".to_string()];
        assert_eq!(t.healthy(&other_pool).count(), 0);
    }

    #[test]
    fn zero_thresholds_count_as_one() {
        let mut t = HealthTable::new(["a".to_string()], 0, 0);
        assert_eq!(t.step(0, "a", P), added("a"));
        assert_eq!(t.step(1, "a", F), removed("a", 1));
        assert_eq!(t.step(2, "a", P), readded("a", 1));
    }

    #[test]
    fn tables_fed_the_same_results_in_any_interleaving_agree() {
        // Two balancers probe independently; what matters is each instance's own sequence.
        let seq_a = [P, P, F, F, F, P, P];
        let seq_b = [P, F, P, F, F, F, F];
        let (mut one, mut two) = (table(), table());
        for (pa, pb) in seq_a.iter().zip(&seq_b) {
            one.step(0, "a", *pa);
            one.step(0, "b", *pb);
        }
        for pb in seq_b {
            two.step(0, "b", pb);
        }
        for pa in seq_a {
            two.step(0, "a", pa);
        }
        for i in ["a", "b"] {
            assert_eq!(one.in_rotation(i), two.in_rotation(i), "{i}");
        }
        assert!(one.in_rotation("a") && !one.in_rotation("b"));
    }
}
