//! When and where an editor reconnects: exponential backoff with seeded full jitter (so a zone's
//! worth of editors do not return in lockstep), rotating over every balancer after a failure
//! (editors know every zone's balancer and fail over between them).

use rand::Rng;

#[derive(Clone, Debug)]
pub struct Reconnect {
    pub base_ms: u64,
    pub max_ms: u64,
    balancers: usize,
    current: usize,
    failures: u32,
}

impl Reconnect {
    /// Starts at balancer `first` of `balancers`.
    pub fn new(base_ms: u64, max_ms: u64, balancers: usize, first: usize) -> Self {
        assert!(balancers > 0 && base_ms > 0 && max_ms >= base_ms);
        Reconnect { base_ms, max_ms, balancers, current: first % balancers, failures: 0 }
    }

    /// The balancer to use now.
    pub fn balancer(&self) -> usize {
        self.current
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// A connection worked (the session synced): the next failure starts from the base delay.
    pub fn succeeded(&mut self) {
        self.failures = 0;
    }

    /// A connection failed or dropped: how long to wait before the next attempt, which goes to
    /// the next balancer. The delay is drawn uniformly from `[cap/2, cap]`, the cap doubling per
    /// consecutive failure up to `max_ms`.
    pub fn failed(&mut self, rng: &mut impl Rng) -> u64 {
        let cap = self.base_ms.saturating_mul(1 << self.failures.min(20)).min(self.max_ms);
        self.failures = self.failures.saturating_add(1);
        self.current = (self.current + 1) % self.balancers;
        rng.gen_range(cap / 2..=cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn backs_off_with_jitter_and_rotates_balancers() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut r = Reconnect::new(100, 2_000, 3, 1);
        assert_eq!(r.balancer(), 1);
        let d: Vec<u64> = (0..7).map(|_| r.failed(&mut rng)).collect();
        assert!((50..=100).contains(&d[0]) && (100..=200).contains(&d[1]) && (200..=400).contains(&d[2]), "{d:?}");
        assert!(d[5..].iter().all(|x| (1_000..=2_000).contains(x)), "{d:?}");
        assert_eq!(r.balancer(), (1 + 7) % 3);
        r.succeeded();
        assert!(r.failed(&mut rng) <= 100);
    }
}
