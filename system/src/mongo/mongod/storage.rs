//! A mongod's files: the oplog (checksummed records, one entry each), the last vote
//! (`local.replset.election`, replaced atomically) and rollback files.

use std::io;

use serde_json::json;
use sim::disk::{records, Disk};
use sim::NodeCtx;

use crate::mongo::oplog::{Oplog, OplogEntry};
use crate::mongo::replset::HardState;

pub const OPLOG_FILE: &str = "mongo.oplog";
pub const ELECTION_FILE: &str = "mongo.election";

fn encode(entries: &[OplogEntry]) -> Vec<u8> {
    let mut buf = Vec::new();
    for e in entries {
        records::encode_into(&mut buf, &serde_json::to_vec(e).expect("oplog entries serialize"));
    }
    buf
}

/// Appends entries (not yet durable: the caller fsyncs).
pub fn append_oplog(disk: &Disk, entries: &[OplogEntry]) -> io::Result<()> {
    disk.append(OPLOG_FILE, &encode(entries))
}

/// Replaces the oplog file with `entries` (after a rollback truncated it).
pub async fn rewrite_oplog(disk: &Disk, entries: &[OplogEntry]) -> io::Result<()> {
    disk.replace_file(OPLOG_FILE, &encode(entries)).await
}

/// Reads the oplog back, cutting a torn or corrupt tail at the last good record.
pub fn read_oplog(ctx: &NodeCtx) -> Oplog {
    let bytes = ctx.disk.read(OPLOG_FILE).unwrap_or_default();
    let (oplog, valid_len) = decode_oplog(&bytes);
    if valid_len < bytes.len() {
        ctx.trace("mongo.oplog_tail_cut", json!({ "valid_len": valid_len, "len": bytes.len() }));
        ctx.sometimes("mongo.oplog_tail_cut");
        // Durable only with the next fsync; a crash before it cuts the same tail again.
        let _ = ctx.disk.truncate(OPLOG_FILE, valid_len as u64);
    }
    oplog
}

/// The oplog an oplog file's bytes hold, as a starting member reads it: whole records up to the
/// first torn or corrupt one, entries up to the first that does not continue the sequence. Also
/// returns how many bytes of good records precede the cut. Checkers read members' disks with
/// this same function, so they judge exactly what a restarted member would serve.
pub fn decode_oplog(bytes: &[u8]) -> (Oplog, usize) {
    let decoded = records::decode_all(bytes);
    let valid_len = if decoded.is_clean() { bytes.len() } else { decoded.valid_len };
    let entries = decoded.records.iter().map_while(|r| serde_json::from_slice::<OplogEntry>(r).ok());
    (Oplog::from_entries(entries), valid_len)
}

pub fn read_hard_state(disk: &Disk) -> HardState {
    let bytes = disk.read(ELECTION_FILE).unwrap_or_default();
    records::decode_all(&bytes).records.first().and_then(|r| serde_json::from_slice(r).ok()).unwrap_or_default()
}

pub async fn write_hard_state(disk: &Disk, hs: &HardState) -> io::Result<()> {
    let bytes = records::encode(&serde_json::to_vec(hs).expect("hard state serializes"));
    disk.replace_file(ELECTION_FILE, &bytes).await
}

/// MongoDB writes what a rollback undid to `rollback/` for the operator; so do we (unsynced:
/// it is a courtesy, not part of the protocol).
pub fn write_rollback_file(disk: &Disk, n: u64, removed: &[OplogEntry]) {
    let _ = disk.write(&format!("rollback.{n}.json"), &serde_json::to_vec(removed).unwrap_or_default());
}
