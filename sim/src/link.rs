//! Per-link shaping: latency, jitter and loss on the link from one node to another.
//!
//! Links carry TCP-like streams, so loss cannot drop bytes: a lost segment costs a retransmission
//! timeout instead (Linux's `TCP_RTO_MIN`, 200 ms, doubling while losses repeat), and jitter delays
//! a write together with everything queued behind it. Reordering therefore shows between
//! connections on the same link (each draws its own delays), never inside one, as with real TCP.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::ratio::Ratio;

/// Linux's minimum retransmission timeout.
pub const TCP_RTO_MIN_MS: u64 = 200;
/// Retransmissions stop doubling after this many tries; the stream stalls, it does not break.
const MAX_BACKOFFS: u32 = 6;

/// The shape of one direction of a link. The default adds nothing to the engine's own latency.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkShape {
    pub latency_ms: u64,
    pub jitter_ms: u64,
    pub loss: Ratio,
}

impl LinkShape {
    /// The extra delay for one write on this link.
    pub fn draw_delay(&self, rng: &mut ChaCha8Rng) -> Duration {
        let mut ms = self.latency_ms;
        if self.jitter_ms > 0 {
            ms += rng.gen_range(0..=self.jitter_ms);
        }
        let mut rto = TCP_RTO_MIN_MS;
        let mut tries = 0;
        while self.loss.draw(rng) && tries < MAX_BACKOFFS {
            ms += rto;
            rto *= 2;
            tries += 1;
        }
        Duration::from_millis(ms)
    }

    pub fn is_clear(&self) -> bool {
        *self == LinkShape::default()
    }
}

/// Every shaped directed link of the world; unlisted links are clear.
#[derive(Debug, Default)]
pub struct LinkTable {
    /// From, then to: looked up by `&str` on every chunk a simulated connection receives, so
    /// no key is built for a lookup.
    shapes: BTreeMap<String, BTreeMap<String, LinkShape>>,
}

impl LinkTable {
    pub fn set(&mut self, from: &str, to: &str, shape: LinkShape) {
        if shape.is_clear() {
            if let Some(tos) = self.shapes.get_mut(from) {
                tos.remove(to);
                if tos.is_empty() {
                    self.shapes.remove(from);
                }
            }
        } else {
            self.shapes.entry(from.to_string()).or_default().insert(to.to_string(), shape);
        }
    }

    pub fn get(&self, from: &str, to: &str) -> LinkShape {
        self.shapes.get(from).and_then(|tos| tos.get(to)).copied().unwrap_or_default()
    }

    pub fn clear(&mut self) {
        self.shapes.clear();
    }

    /// Whether every link is clear.
    pub fn is_empty(&self) -> bool {
        self.shapes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn delay_is_latency_plus_bounded_jitter_and_loss_costs_retransmissions() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let shape = LinkShape { latency_ms: 10, jitter_ms: 5, loss: Ratio::NEVER };
        for _ in 0..100 {
            let d = shape.draw_delay(&mut rng).as_millis() as u64;
            assert!((10..=15).contains(&d), "{d}");
        }
        let lossy = LinkShape { latency_ms: 0, jitter_ms: 0, loss: Ratio::new(1, 1) };
        let d = lossy.draw_delay(&mut rng).as_millis() as u64;
        assert_eq!(d, (0..MAX_BACKOFFS).map(|i| TCP_RTO_MIN_MS << i).sum::<u64>());
    }

    #[test]
    fn clear_shapes_are_not_stored() {
        let mut t = LinkTable::default();
        t.set("a", "b", LinkShape { latency_ms: 3, ..Default::default() });
        assert_eq!(t.get("a", "b").latency_ms, 3);
        t.set("a", "b", LinkShape::default());
        assert!(t.shapes.is_empty());
    }
}
