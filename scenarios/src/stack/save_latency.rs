//! How long an editor's edits took to be saved, as its user sees it: from typing an edit to the
//! server's acknowledgement that it is durable (the "saving…" indicator of an editor app). Each
//! edit becomes one `edit` operation of the availability report: successful when acknowledged
//! within [`SAVE_DEADLINE_MS`], failed when later or never (the app would have shown "changes
//! not saved"). Edits typed while disconnected wait for the next connection's resync, so an
//! outage shows as failed edits placed at the time they were typed.
//!
//! Sans-IO: the editor tells it what it typed and what is acknowledged; it answers with the
//! edits that completed. An edit is known by the clock its insertions reached: an edit is saved
//! once every own clock below that is acknowledged. An edit that only deletes inserts nothing
//! and completes with the insertions before it (deletions travel in the delete set, which
//! acknowledgements do not name).

use std::collections::VecDeque;

/// An edit acknowledged later than this counts as failed: an editor app tells its user the
/// changes could not be saved after about this long.
pub const SAVE_DEADLINE_MS: u64 = 10_000;

/// One edit's completion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Saved {
    pub ok: bool,
    pub latency_ms: u64,
}

#[derive(Default)]
pub struct SaveLatency {
    /// Edits not acknowledged yet, in typing order: (own clock after the edit, typed at ms).
    pending: VecDeque<(u32, u64)>,
}

impl SaveLatency {
    /// An edit was typed at `now_ms`; the editor's own clock is `clock` after it.
    pub fn typed(&mut self, clock: u32, now_ms: u64) {
        self.pending.push_back((clock, now_ms));
    }

    /// Every own clock below `acked_prefix` is acknowledged, as of `now_ms`: the edits saved.
    pub fn acked(&mut self, acked_prefix: u32, now_ms: u64) -> Vec<Saved> {
        let mut out = Vec::new();
        while let Some(&(clock, typed_ms)) = self.pending.front() {
            if clock > acked_prefix {
                break;
            }
            self.pending.pop_front();
            let latency_ms = now_ms.saturating_sub(typed_ms);
            out.push(Saved { ok: latency_ms <= SAVE_DEADLINE_MS, latency_ms });
        }
        out
    }

    /// The editor stops (or starts afresh): every edit still waiting failed.
    pub fn abandon(&mut self, now_ms: u64) -> Vec<Saved> {
        self.pending
            .drain(..)
            .map(|(_, typed_ms)| Saved { ok: false, latency_ms: now_ms.saturating_sub(typed_ms) })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_complete_in_order_once_their_clocks_are_acknowledged() {
        let mut s = SaveLatency::default();
        s.typed(3, 1_000);
        s.typed(3, 1_100); // a deletion: no new clock
        s.typed(8, 1_200);
        assert_eq!(s.acked(2, 1_300), vec![]);
        assert_eq!(s.acked(3, 1_400), vec![Saved { ok: true, latency_ms: 400 }, Saved { ok: true, latency_ms: 300 }]);
        assert_eq!(
            s.acked(8, 1_200 + SAVE_DEADLINE_MS + 1),
            vec![Saved { ok: false, latency_ms: SAVE_DEADLINE_MS + 1 }]
        );
    }

    #[test]
    fn abandoned_edits_fail() {
        let mut s = SaveLatency::default();
        s.typed(1, 0);
        assert_eq!(s.abandon(50), vec![Saved { ok: false, latency_ms: 50 }]);
        assert_eq!(s.acked(1, 60), vec![]);
    }
}
