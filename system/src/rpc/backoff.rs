//! Reconnect backoff: exponential, capped, and jittered from the node's seeded rng.

use std::time::Duration;

use rand::Rng;

/// How long to wait before reconnecting after consecutive failures: `base_ms` doubled per
/// failure up to `max_ms`, then "equal jitter" (a uniform draw from the upper half), so peers
/// that lost a server together do not all come back in the same millisecond. The draw comes
/// from the node's rng, so a seed replays the same pauses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub base_ms: u64,
    pub max_ms: u64,
}

impl Backoff {
    /// The pause after the `failures`-th failure in a row (`failures` ≥ 1).
    pub fn delay(&self, failures: u32, rng: &mut impl Rng) -> Duration {
        let doublings = failures.saturating_sub(1).min(20);
        let ceiling_ms = self.base_ms.saturating_mul(1 << doublings).min(self.max_ms).max(1);
        let half_ms = ceiling_ms / 2;
        Duration::from_millis(half_ms + rng.gen_range(0..=ceiling_ms - half_ms))
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_stay_in_the_upper_half() {
        let backoff = Backoff { base_ms: 100, max_ms: 400 };
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for (failures, ceiling_ms) in [(1, 100), (2, 200), (3, 400), (4, 400), (40, 400)] {
            for _ in 0..50 {
                let d = backoff.delay(failures, &mut rng).as_millis() as u64;
                assert!((ceiling_ms / 2..=ceiling_ms).contains(&d), "failure {failures}: {d} ms");
            }
        }
    }

    #[test]
    fn the_same_seed_draws_the_same_pauses() {
        let backoff = Backoff { base_ms: 50, max_ms: 1_000 };
        let draw = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (1..10).map(|f| backoff.delay(f, &mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(draw(3), draw(3));
        assert_ne!(draw(3), draw(4));
    }
}
