//! A mongod's files: the oplog (checksummed records, one postcard-encoded entry each), the
//! last vote (`local.replset.election`, replaced atomically), rollback files, and a marker
//! saying the member found synced records damaged and is not repaired yet.
//!
//! Damage versus a torn tail: a crash can leave the last, unsynced append torn, which recovery
//! cuts and forgets. A record whose checksum fails but after which a good record follows cannot
//! be a torn tail: it is damage to data that was synced, and the member that finds it must be
//! repaired from its peers before it votes or counts towards a majority again. Left out: damage
//! to a record's length field (the record cannot be skipped, so it reads as a torn tail) and to
//! the very last record.

use std::io;

use serde_json::json;
use sim::disk::{records, Disk};
use sim::NodeCtx;

use crate::mongo::oplog::{Oplog, OplogEntry};
use crate::mongo::replset::HardState;

pub const OPLOG_FILE: &str = "mongo.oplog";
pub const ELECTION_FILE: &str = "mongo.election";
/// Present while the member is damaged (kept across restarts until the repair completes).
pub const DAMAGE_FILE: &str = "mongo.damaged";

fn encode(entries: &[OplogEntry]) -> Vec<u8> {
    let mut buf = Vec::new();
    for e in entries {
        records::encode_into(&mut buf, &postcard::to_stdvec(e).expect("oplog entries serialize"));
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

/// What recovery read back from the oplog file.
pub struct Recovered {
    pub oplog: Oplog,
    /// Synced records were found damaged (and cut, with everything after them).
    pub damaged: bool,
}

/// Reads the oplog back, cutting a torn or damaged tail at the last good record (the cut is
/// durable only with the next fsync, which recovery does before serving). An error reading the
/// file is returned: the member must not start on a guess.
pub fn read_oplog(ctx: &NodeCtx) -> io::Result<Recovered> {
    let bytes = match ctx.disk.read(OPLOG_FILE) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    let (oplog, valid_len) = decode_oplog(&bytes);
    let damaged = damaged_after(&bytes, valid_len);
    if valid_len < bytes.len() {
        let kind = if damaged { "mongo.oplog_damaged" } else { "mongo.oplog_tail_cut" };
        ctx.trace(kind, json!({ "valid_len": valid_len, "len": bytes.len() }));
        ctx.sometimes(kind);
        ctx.disk.truncate(OPLOG_FILE, valid_len as u64)?;
    }
    Ok(Recovered { oplog, damaged })
}

/// Whether the bad record at `at` is damage inside synced data: it can be skipped by its
/// length, and a good record follows it.
fn damaged_after(bytes: &[u8], at: usize) -> bool {
    let Some(header) = bytes.get(at..at + records::HEADER_LEN) else { return false };
    let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
    let next = at + records::HEADER_LEN + len;
    len <= records::MAX_RECORD_LEN && next < bytes.len() && !records::decode_all(&bytes[next..]).records.is_empty()
}

/// The oplog an oplog file's bytes hold, as a starting member reads it: whole records up to the
/// first torn or corrupt one, entries up to the first that does not continue the sequence. Also
/// returns how many bytes of good records precede the cut. Checkers read members' disks with
/// this same function, so they judge exactly what a restarted member would serve.
pub fn decode_oplog(bytes: &[u8]) -> (Oplog, usize) {
    let decoded = records::decode_all(bytes);
    let valid_len = if decoded.is_clean() { bytes.len() } else { decoded.valid_len };
    let entries = decoded.records.iter().map_while(|r| postcard::from_bytes::<OplogEntry>(r).ok());
    (Oplog::from_entries(entries), valid_len)
}

/// The last vote and term. A record that fails its checksum is damage (the vote is unknown, so
/// the member must not vote until repaired): returned as `None`.
pub fn read_hard_state(disk: &Disk) -> io::Result<Option<HardState>> {
    let bytes = match disk.read(ELECTION_FILE) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Some(HardState::default())),
        Err(e) => return Err(e),
    };
    if bytes.is_empty() {
        return Ok(Some(HardState::default()));
    }
    let decoded = records::decode_all(&bytes);
    Ok(decoded.records.first().filter(|_| decoded.is_clean()).and_then(|r| serde_json::from_slice(r).ok()))
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
