//! Timeline rules, as pure functions: when a standby may stream from a primary, where it must
//! rewind to, and whether a batch of streamed records continues its log.
//!
//! A timeline is an epoch (PostgreSQL's timeline ID); a primary's history lists where each of
//! its timelines began ([`super::wal::History`], the `.history` file). Two logs that hold a
//! record with the same index and epoch agree on everything before it, so a standby keeps the
//! records whose epoch is the one the primary's history assigns to their index and cuts the rest
//! (`pg_rewind`). A standby already on a newer timeline than a primary must not stream from it at
//! all: that primary is stale (it lost its leadership and does not know yet).

use super::wal::{epoch_at, Position, Wal, WalRecord};

/// Why a standby and a primary cannot stream.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Divergence {
    /// The primary is on an older timeline than the one the standby was told to follow.
    #[error("the primary is on timeline {primary}, older than timeline {following} this standby follows")]
    StalePrimary { primary: u64, following: u64 },
    /// The primary's history does not end with its own timeline.
    #[error("the primary's history {history:?} does not end with its timeline {primary}")]
    MalformedHistory { primary: u64, history: Vec<(u64, u64)> },
    /// A streamed record does not continue the log where it ends.
    #[error("record {index} (timeline {epoch}) does not follow {after:?}")]
    DoesNotFollow { index: u64, epoch: u64, after: Position },
}

/// The walsender's check: a standby whose log ends on a newer timeline than ours is ahead of us,
/// so we are not (or no longer) the primary it should follow.
pub fn may_serve(primary_epoch: u64, standby: Position) -> bool {
    standby.epoch <= primary_epoch
}

/// The walreceiver's check of the primary's handshake: it must be on the timeline the standby
/// follows (or a newer one) and its history must end with that timeline.
pub fn check_primary(following: u64, primary: u64, history: &[(u64, u64)]) -> Result<(), Divergence> {
    if primary < following {
        return Err(Divergence::StalePrimary { primary, following });
    }
    if history.last().map(|h| h.0) != Some(primary) {
        return Err(Divergence::MalformedHistory { primary, history: history.to_vec() });
    }
    Ok(())
}

/// How many leading records of `log` survive on the primary's timeline: the rewind point.
pub fn rewind_point(log: &Wal, history: &[(u64, u64)], primary_last: u64) -> u64 {
    log.matching_prefix(history, primary_last)
}

/// Whether `records` continue a log ending at `after` on the primary's timeline: consecutive
/// indexes, epochs never decreasing nor past the primary's, each the one its history assigns.
pub fn check_follows(
    after: Position,
    records: &[WalRecord],
    primary: u64,
    history: &[(u64, u64)],
) -> Result<(), Divergence> {
    let mut expect = after;
    for r in records {
        let fits = r.index == expect.index + 1
            && r.epoch >= expect.epoch
            && r.epoch <= primary
            && r.epoch == epoch_at(history, r.index);
        if !fits {
            return Err(Divergence::DoesNotFollow { index: r.index, epoch: r.epoch, after: expect });
        }
        expect = Position { epoch: r.epoch, index: r.index };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::wal::Body;

    fn rec(index: u64, epoch: u64) -> WalRecord {
        WalRecord {
            index,
            epoch,
            commit_wall_ms: index,
            body: Body::Commit { txn: format!("t{index}"), writes: vec![] },
        }
    }

    fn pos(epoch: u64, index: u64) -> Position {
        Position { epoch, index }
    }

    #[test]
    fn divergence_is_detected_in_every_form() {
        let history = vec![(1, 1), (2, 5)];
        type Checked = Result<(), Divergence>;
        let cases: Vec<(&str, Checked, Checked)> = vec![
            ("primary on the followed timeline", check_primary(2, 2, &history), Ok(())),
            ("primary newer than followed", check_primary(1, 2, &history), Ok(())),
            (
                "stale primary",
                check_primary(3, 2, &history),
                Err(Divergence::StalePrimary { primary: 2, following: 3 }),
            ),
            (
                "history of another timeline",
                check_primary(2, 2, &[(1, 1)]),
                Err(Divergence::MalformedHistory { primary: 2, history: vec![(1, 1)] }),
            ),
            (
                "records that continue",
                check_follows(pos(1, 3), &[rec(4, 1), rec(5, 2), rec(6, 2)], 2, &history),
                Ok(()),
            ),
            (
                "a gap",
                check_follows(pos(1, 3), &[rec(5, 2)], 2, &history),
                Err(Divergence::DoesNotFollow { index: 5, epoch: 2, after: pos(1, 3) }),
            ),
            (
                "an epoch the history puts elsewhere",
                check_follows(pos(1, 4), &[rec(5, 1)], 2, &history),
                Err(Divergence::DoesNotFollow { index: 5, epoch: 1, after: pos(1, 4) }),
            ),
            (
                "an epoch past the primary's",
                check_follows(pos(2, 5), &[rec(6, 3)], 2, &[(1, 1), (2, 5), (3, 6)]),
                Err(Divergence::DoesNotFollow { index: 6, epoch: 3, after: pos(2, 5) }),
            ),
        ];
        for (name, got, want) in cases {
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn a_standby_on_a_newer_timeline_is_not_served() {
        assert!(may_serve(2, pos(2, 9)));
        assert!(may_serve(2, pos(1, 90)));
        assert!(!may_serve(2, pos(3, 1)));
    }
}
