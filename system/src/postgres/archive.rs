//! Continuous archiving and point-in-time recovery, as with `archive_command` plus periodic
//! `pg_basebackup` to an object store in another region.
//!
//! The primary uploads flushed WAL every `archive_timeout` as segments named by its timeline
//! (`wal.<epoch>.<first>.<last>`), its timeline history at promotion (`history.<epoch>`), and a
//! base backup every `base_backup_interval` (`base.<epoch>.<index>.<commit wall ms>`). A new primary
//! first works out how far the archive covers its own timeline and uploads the rest, which
//! `archive_mode = always` would achieve in PostgreSQL (otherwise WAL received by a standby but
//! never archived by the old primary leaves a gap).
//!
//! Restore follows `recovery_target_timeline = 'latest'` and `recovery_target_time`: take the
//! newest timeline's history, start from the newest base backup on that timeline taken at or
//! before the target, and replay archived records of that timeline (each index from the epoch the
//! history assigns it) while their commit timestamps are at or before the target
//! (`recovery_target_inclusive = on`). It stops at the first gap in the archive.

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use sim::disk::records;
use sim::net::Net;

use super::data::Tables;
use super::node::Node;
use super::wal::{self, epoch_at, History, Position, WalRecord};
use crate::objstore::ObjClient;

const MAX_SEGMENT: usize = 2_000;
const RETRY: Duration = Duration::from_secs(1);

/// A base backup: the state at a position of a timeline.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BaseBackup {
    pub position: Position,
    pub history: History,
    pub commit_wall_ms: u64,
    pub tables: Tables,
}

/// The result of a point-in-time restore.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Restored {
    pub target_wall_ms: u64,
    /// The newest timeline found in the archive.
    pub timeline: u64,
    pub history: History,
    /// The base backup restored from, if any: its position.
    pub base: Option<Position>,
    /// The last record replayed.
    pub position: Position,
    pub replayed: u64,
    pub tables: Tables,
    /// Why replay stopped: "target" (next record is after the target) or "end of archive".
    pub stopped: String,
}

fn wal_key(epoch: u64, first: u64, last: u64) -> String {
    format!("wal.{epoch:010}.{first:012}.{last:012}")
}

fn history_key(epoch: u64) -> String {
    format!("history.{epoch:010}")
}

fn base_key(p: Position, wall_ms: u64) -> String {
    format!("base.{:010}.{:012}.{wall_ms:015}", p.epoch, p.index)
}

/// The numbers in a key like `wal.0000000002.000000000001.000000000040`.
fn key_numbers(key: &str, prefix: &str) -> Option<Vec<u64>> {
    key.strip_prefix(prefix)?.split('.').map(|n| n.parse().ok()).collect()
}

/// The first index after `epoch`'s stretch of `history` (`u64::MAX` for the last timeline).
fn end_of(history: &[(u64, u64)], epoch: u64) -> u64 {
    history.iter().find(|(e, _)| *e > epoch).map_or(u64::MAX, |(_, start)| *start)
}

/// Archived segments as `(writer epoch, first, last)`.
async fn segments(store: &ObjClient) -> io::Result<Vec<(u64, u64, u64)>> {
    let keys = store.list("wal.").await?;
    Ok(keys
        .iter()
        .filter_map(|k| key_numbers(k, "wal."))
        .filter(|n| n.len() == 3)
        .map(|n| (n[0], n[1], n[2]))
        .collect())
}

/// How far the archive covers `history`'s timeline from index 1 without a gap.
fn coverage(history: &[(u64, u64)], segs: &[(u64, u64, u64)]) -> u64 {
    let mut valid: Vec<(u64, u64)> = segs
        .iter()
        .filter(|(w, _, _)| history.iter().any(|(e, _)| e == w))
        .map(|&(w, first, last)| (first, last.min(end_of(history, w).saturating_sub(1))))
        .filter(|(first, last)| first <= last)
        .collect();
    valid.sort();
    let mut covered = 0;
    for (first, last) in valid {
        if first <= covered + 1 {
            covered = covered.max(last);
        }
    }
    covered
}

impl Node {
    /// The primary's archiver: history, then WAL every `archive_timeout`, and base backups.
    pub(super) async fn archive(self: Arc<Self>, epoch: u64, gen: u64, store: String) {
        let store = ObjClient::new(self.ctx.net.clone(), &store);
        let timing = self.config.timing.clone();
        let history = self.lock().wal().history();
        let body = serde_json::to_vec(&history).expect("history serializes");
        while store.put(&history_key(epoch), &body).await.is_err() {
            sim::timer::sleep(RETRY).await;
        }
        let mut archived = loop {
            match segments(&store).await {
                Ok(segs) => break coverage(&history, &segs),
                Err(_) => sim::timer::sleep(RETRY).await,
            }
        };
        let mut last_base: Option<u64> = None;
        loop {
            sim::timer::sleep(Duration::from_millis(timing.archive_timeout_ms)).await;
            let (segment, flushed) = {
                let member = self.lock();
                if member.generation() != gen {
                    return;
                }
                (member.wal().range(archived + 1, member.flushed(), MAX_SEGMENT), member.flushed())
            };
            if let (Some(first), Some(last)) = (segment.first(), segment.last()) {
                let key = wal_key(epoch, first.index, last.index);
                if store.put(&key, &wal::encode_all(&segment)).await.is_ok() {
                    archived = last.index;
                    self.ctx.sometimes("pg.wal_archived");
                }
            }
            let now = self.now_ms();
            let due = last_base.is_none_or(|t| now >= t + timing.base_backup_interval_ms) && flushed > 0;
            if due && self.base_backup(&store, gen).await.is_ok() {
                last_base = Some(now);
            }
        }
    }

    async fn base_backup(&self, store: &ObjClient, gen: u64) -> io::Result<()> {
        let backup = {
            let member = self.lock();
            if member.generation() != gen {
                return Err(io::Error::other("generation ended"));
            }
            let commit_wall_ms = member.wal().get(member.flushed()).map_or(0, |r| r.commit_wall_ms);
            BaseBackup {
                position: member.position(),
                history: member.wal().history(),
                commit_wall_ms,
                tables: member.visible().clone(),
            }
        };
        let key = base_key(backup.position, backup.commit_wall_ms);
        store.put(&key, &serde_json::to_vec(&backup).expect("backups serialize")).await?;
        self.ctx.trace("pg.base_backup", json!({ "key": key }));
        self.ctx.sometimes("pg.base_backup");
        Ok(())
    }
}

/// Where replay stops relative to the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopAt {
    /// At the last record committed at or before the target, as PostgreSQL's
    /// `recovery_target_inclusive = on` does.
    LastAtOrBefore,
    /// Unsafe, to prove the checker: at the first record committed after the target, which is
    /// replayed too (an off-by-one in the stop rule).
    FirstAfter,
}

/// Restores the newest timeline in `store` to `target_wall_ms`, stopping as `stop` says (see
/// the module doc).
pub async fn restore(net: &Net, store: &str, target_wall_ms: u64, stop: StopAt) -> io::Result<Restored> {
    let store = ObjClient::new(net.clone(), store);
    let timeline = store
        .list("history.")
        .await?
        .iter()
        .filter_map(|k| key_numbers(k, "history.").and_then(|n| n.first().copied()))
        .max()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no timeline history in the archive"))?;
    let body = store.get(&history_key(timeline)).await?.ok_or_else(|| io::Error::other("history vanished"))?;
    let history: History = serde_json::from_slice(&body).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let base = newest_base(&store, &history, target_wall_ms).await?;
    let (mut tables, mut position) = match &base {
        Some(b) => (b.tables.clone(), b.position),
        None => (Tables::default(), Position::default()),
    };
    let records = lineage_records(&store, &history, position.index).await?;
    let mut replayed = 0;
    let mut stopped = "end of archive".to_string();
    for index in position.index + 1.. {
        let Some(r) = records.get(&index) else { break };
        let past = r.commit_wall_ms > target_wall_ms;
        if past && stop == StopAt::LastAtOrBefore {
            stopped = "target".into();
            break;
        }
        wal::apply(&mut tables, r);
        position = Position { epoch: r.epoch, index };
        replayed += 1;
        if past {
            stopped = "target".into();
            break;
        }
    }
    let base = base.map(|b| b.position);
    Ok(Restored { target_wall_ms, timeline, history, base, position, replayed, tables, stopped })
}

/// The newest base backup on `history`'s timeline whose last commit is at or before the target.
async fn newest_base(store: &ObjClient, history: &History, target_wall_ms: u64) -> io::Result<Option<BaseBackup>> {
    let mut candidates: Vec<(u64, u64, u64, String)> = store
        .list("base.")
        .await?
        .into_iter()
        .filter_map(|k| key_numbers(&k, "base.").filter(|n| n.len() == 3).map(|n| (n[1], n[0], n[2], k)))
        .filter(|&(index, epoch, wall, _)| wall <= target_wall_ms && epoch_at(history, index) == epoch && index > 0)
        .collect();
    candidates.sort();
    for (_, _, _, key) in candidates.into_iter().rev() {
        if let Some(body) = store.get(&key).await? {
            if let Ok(b) = serde_json::from_slice::<BaseBackup>(&body) {
                return Ok(Some(b));
            }
        }
    }
    Ok(None)
}

/// Every archived record after `after` that belongs to `history`'s timeline, by index.
async fn lineage_records(store: &ObjClient, history: &History, after: u64) -> io::Result<BTreeMap<u64, WalRecord>> {
    let mut out = BTreeMap::new();
    for (w, first, last) in segments(store).await? {
        let end = end_of(history, w);
        if last <= after || first >= end || !history.iter().any(|(e, _)| *e == w) {
            continue;
        }
        let Some(body) = store.get(&wal_key(w, first, last)).await? else { continue };
        // A damaged segment ends where its checksums stop matching; later indexes are a gap.
        for payload in records::decode_all(&body).records {
            let Ok(r) = serde_json::from_slice::<WalRecord>(&payload) else { break };
            if r.index > after && r.index < end && r.epoch == epoch_at(history, r.index) {
                out.entry(r.index).or_insert(r);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coverage_follows_the_timeline_and_stops_at_gaps() {
        let history = vec![(1, 1), (3, 50)];
        // Epoch 1 archived 1..=40 and (past its switch point) 41..=60; epoch 2 never made it
        // into this history; epoch 3 filled 41..=49 and wrote 50..=70.
        let segs = [(1, 1, 40), (1, 41, 60), (2, 50, 80), (3, 41, 70)];
        assert_eq!(coverage(&history, &segs), 70);
        assert_eq!(coverage(&history, &[(1, 1, 40), (3, 45, 70)]), 40);
        assert_eq!(coverage(&history, &[(2, 1, 40)]), 0);
    }

    #[test]
    fn keys_round_trip_their_numbers() {
        let k = wal_key(2, 41, 70);
        assert_eq!(key_numbers(&k, "wal."), Some(vec![2, 41, 70]));
        let b = base_key(Position { epoch: 3, index: 9 }, 1_767_225_600_123);
        assert_eq!(key_numbers(&b, "base."), Some(vec![3, 9, 1_767_225_600_123]));
        assert!(
            crate::objstore::valid_key(&k)
                && crate::objstore::valid_key(&b)
                && crate::objstore::valid_key(&history_key(1))
        );
        assert_eq!(end_of(&[(1, 1), (3, 50)], 1), 50);
        assert_eq!(end_of(&[(1, 1), (3, 50)], 3), u64::MAX);
    }
}
