//! The deciding windows of `postgres-failover`, recorded as "sometimes" probes from a run's
//! history (the scenario declares them in `window_probes` with the rate a sweep must reach):
//!
//! - [`ON_COMMIT_IN_FLIGHT_AT_FAILOVER`]: an `on` commit was invoked before the fault that took
//!   the primary away and settled after it (or never), and another member was promoted: the
//!   moment a commit acknowledged without the synchronous standby would be lost.
//! - [`PRIMARY_CRASH_RESTARTED_IN_LEASE`]: the primary was crash-restarted (power loss, so its
//!   unsynced writes are gone) and came back as the primary itself, with no failover: the
//!   moment a primary that acknowledged before its fsync loses a commit with nobody to blame.
//! - [`CRASH_WITHOUT_SYNC_STANDBY`]: the primary was crashed while it had no synchronous
//!   standby (a new primary that has not named one yet, or `/sync` degraded to none): its `on`
//!   commits were acknowledged on its own fsync alone.
//! - `pg.sync_standby_none` (recorded by the primary itself): Patroni degraded `/sync` to none.

use sim::{Fault, Outcome};

use super::history::{History, TxnEvent};

pub const ON_COMMIT_IN_FLIGHT_AT_FAILOVER: &str = "pg.window.on_commit_in_flight_at_failover";
pub const PRIMARY_CRASH_RESTARTED_IN_LEASE: &str = "pg.window.primary_crash_restarted_in_lease";
pub const CRASH_WITHOUT_SYNC_STANDBY: &str = "pg.window.crash_without_sync_standby";
pub const SYNC_STANDBY_DEGRADED: &str = "pg.sync_standby_none";

/// Records each window `h` reached on the run's world.
pub(crate) fn record(h: &History, outcome: &Outcome) {
    let world = &outcome.world;
    if on_commit_in_flight_at_failover(h, outcome) {
        world.sometimes(ON_COMMIT_IN_FLIGHT_AT_FAILOVER);
    }
    if primary_crash_restarted_in_lease(h) {
        world.sometimes(PRIMARY_CRASH_RESTARTED_IN_LEASE);
    }
    if crash_without_sync_standby(h) {
        world.sometimes(CRASH_WITHOUT_SYNC_STANDBY);
    }
}

fn crashes(f: &Fault) -> bool {
    matches!(f, Fault::Kill(_) | Fault::Restart(_))
}

/// An `on` transaction spanning the fault on a primary that a failover followed.
fn on_commit_in_flight_at_failover(h: &History, outcome: &Outcome) -> bool {
    // (invoked, settled) per `on` transaction; unsettled ones run to the end.
    let mut spans: std::collections::BTreeMap<String, (u64, u64)> = std::collections::BTreeMap::new();
    outcome.observations(|o| {
        for e in o.of::<TxnEvent>() {
            match e.value {
                TxnEvent::Invoked { txn, class: system::postgres::data::SyncCommit::On, .. } => {
                    spans.insert(txn, (e.t_ms, u64::MAX));
                }
                TxnEvent::Invoked { .. } => {}
                TxnEvent::Committed { txn, .. }
                | TxnEvent::Rejected { txn, .. }
                | TxnEvent::Indeterminate { txn, .. } => {
                    if let Some(span) = spans.get_mut(&txn) {
                        span.1 = e.t_ms;
                    }
                }
            }
        }
    });
    h.faults.iter().any(|f| {
        h.primaries_at(f.at_ms).iter().any(|(primary, epoch)| {
            f.nodes.iter().any(|n| n == primary)
                && h.promotions.iter().any(|p| p.epoch > *epoch && p.node != *primary && p.at_ms >= f.at_ms)
                && spans.values().any(|(invoked, settled)| *invoked < f.at_ms && *settled >= f.at_ms)
        })
    })
}

/// A crash-restart of the primary after which the next primary was itself.
fn primary_crash_restarted_in_lease(h: &History) -> bool {
    h.faults.iter().filter(|f| matches!(f.fault, Fault::Restart(_))).any(|f| {
        h.primaries_at(f.at_ms).iter().any(|(primary, epoch)| {
            f.nodes.iter().any(|n| n == primary)
                && h.promotions
                    .iter()
                    .filter(|p| p.epoch > *epoch)
                    .min_by_key(|p| p.epoch)
                    .is_some_and(|p| p.node == *primary)
        })
    })
}

/// A crash of a primary whose epoch had no synchronous standby at that moment.
fn crash_without_sync_standby(h: &History) -> bool {
    h.faults.iter().filter(|f| crashes(&f.fault)).any(|f| {
        h.primaries_at(f.at_ms).iter().any(|(primary, epoch)| {
            let named = h.sync_standbys.iter().rfind(|(e, _, t)| e == epoch && *t <= f.at_ms);
            f.nodes.iter().any(|n| n == primary) && named.is_none_or(|(_, standby, _)| standby.is_none())
        })
    })
}
