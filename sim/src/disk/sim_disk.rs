//! The simulated disk, shared by both engines (madsim and turmoil).
//!
//! Every node's disk lives in one [`DiskFarm`] owned by the run, outside any node,
//! so a node that is killed and restarted gets its storage back, minus what the
//! crash took. Each disk draws its faults from its own random stream derived from
//! the run seed and the node's name, so adding a node, or using another node's disk
//! more or less, does not change what this node's disk does.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::ops::Range;
use std::sync::{Arc, Mutex, PoisonError};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::check_name;
use crate::ratio::Ratio;

/// The sector size: the unit a crash tears at, and the unit of latent damage.
pub const BLOCK_SIZE: usize = 512;

const COIN: Ratio = Ratio::new(1, 2);

/// Faults injected into one node's disk. The default injects nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DiskFaults {
    /// Chance that an operation fails with "injected I/O error" and changes nothing.
    pub io_error: Ratio,
    /// On crash, let part of an unsynced append survive (see [`DiskFarm::crash`]).
    pub torn_writes: bool,
    /// Chance that a read finds one byte flipped; the damage stays, as a bad sector's does.
    pub read_corruption: Ratio,
}

/// Counters for the trace and benchmarks. They survive crashes and wipes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskStats {
    pub bytes_written: u64,
    pub bytes_read: u64,
    pub syncs: u64,
    pub injected_errors: u64,
    pub corrupted_reads: u64,
    pub crashes: u64,
    pub torn_writes: u64,
}

/// What a power loss did to one node's disk.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrashReport {
    pub node: String,
    /// Only the files that had unsynced changes, in name order.
    pub files: Vec<FileCrash>,
}

/// What a power loss did to one file that had unsynced changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileCrash {
    pub file: String,
    /// Unsynced bytes that did not survive. When the unsynced change was not an
    /// append (rewrite, truncate) or the file vanished, the whole pre-crash length.
    pub lost_bytes: u64,
    /// Unsynced appended bytes that survived intact.
    pub kept_bytes: u64,
    /// Part, not all, of the unsynced append survived, or its last sector is garbage.
    pub torn: bool,
    /// The file was never synced, so it is gone.
    pub vanished: bool,
}

impl CrashReport {
    pub fn lost_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.lost_bytes).sum()
    }

    pub fn any_torn(&self) -> bool {
        self.files.iter().any(|f| f.torn)
    }
}

/// All nodes' disks. Cloning shares them.
#[derive(Clone)]
pub struct DiskFarm {
    inner: Arc<Mutex<Farm>>,
}

struct Farm {
    seed: u64,
    nodes: BTreeMap<String, NodeDisk>,
}

struct NodeDisk {
    files: BTreeMap<String, SimFile>,
    faults: DiskFaults,
    rng: ChaCha8Rng,
    stats: DiskStats,
}

#[derive(Default)]
struct SimFile {
    /// What reads see: the page cache.
    current: Vec<u8>,
    /// What survives power loss.
    durable: Durable,
}

/// What survives power loss. Logs are appended and synced over and over, so the common case
/// is stored as a length (the durable bytes are a prefix of the page cache) rather than as a
/// copy made at every fsync.
#[derive(Default)]
enum Durable {
    /// Never synced: the file vanishes in a crash.
    #[default]
    Never,
    /// The first `n` bytes of `current`.
    Prefix(usize),
    /// A copy, once `current` was changed other than by appending.
    Copy(Vec<u8>),
}

impl DiskFarm {
    pub fn new(seed: u64) -> Self {
        let farm = Farm { seed, nodes: BTreeMap::new() };
        DiskFarm { inner: Arc::new(Mutex::new(farm)) }
    }

    /// The node's disk, created empty on first use; the same name always gets the
    /// same storage.
    pub fn disk(&self, node: &str) -> SimDisk {
        self.with_node(node, |_| ());
        SimDisk { farm: self.clone(), node: node.into() }
    }

    /// Can be set before the node first uses its disk, and changed at any time.
    pub fn set_faults(&self, node: &str, faults: DiskFaults) {
        self.with_node(node, |disk| disk.faults = faults);
    }

    pub fn faults(&self, node: &str) -> DiskFaults {
        self.with_node(node, |disk| disk.faults.clone())
    }

    /// Power loss on one node: each file goes back to its synced content, and files
    /// never synced vanish. With `torn_writes`, a file whose unsynced change is an
    /// append may keep the first sectors of that append, the last of them possibly
    /// half garbage, as a disk that lost power mid-write leaves it. Synced bytes are
    /// never damaged by a crash.
    pub fn crash(&self, node: &str) -> CrashReport {
        let files = self.with_node(node, NodeDisk::crash);
        CrashReport { node: node.to_owned(), files }
    }

    /// Latent sector damage: flips every bit of block `block_index` of the file, in
    /// both what reads see and what survives a crash. False if there was no such block.
    pub fn corrupt_block(&self, node: &str, file: &str, block_index: usize) -> bool {
        let Some(start) = block_index.checked_mul(BLOCK_SIZE) else {
            return false;
        };
        self.with_node(node, |disk| {
            let range = start..start.saturating_add(BLOCK_SIZE);
            disk.files.get_mut(file).is_some_and(|f| f.flip(range, 0xff))
        })
    }

    /// The files that have synced content, with its length in bytes, in name order: where
    /// latent damage to synced data can land.
    pub fn synced_files(&self, node: &str) -> Vec<(String, usize)> {
        self.with_node(node, |disk| {
            let synced = disk.files.iter().filter_map(|(name, f)| Some((name.clone(), f.durable_bytes()?.len())));
            synced.filter(|(_, len)| *len > 0).collect()
        })
    }

    /// The disk was replaced, or the node rebuilt from scratch: no files at all.
    pub fn wipe(&self, node: &str) {
        self.with_node(node, |disk| disk.files.clear());
    }

    pub fn stats(&self, node: &str) -> DiskStats {
        self.with_node(node, |disk| disk.stats)
    }

    fn with_node<R>(&self, node: &str, f: impl FnOnce(&mut NodeDisk) -> R) -> R {
        // A panic elsewhere (a failing test, a crashed task) must not take every
        // other disk down with it; the state itself is never left half-updated.
        let mut farm = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let seed = farm.seed;
        let disk = farm.nodes.entry(node.to_owned()).or_insert_with(|| NodeDisk::new(seed, node));
        f(disk)
    }
}

impl fmt::Debug for DiskFarm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let farm = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("DiskFarm")
            .field("seed", &farm.seed)
            .field("nodes", &farm.nodes.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// One node's disk, as that node sees it.
#[derive(Clone)]
pub struct SimDisk {
    farm: DiskFarm,
    node: Arc<str>,
}

impl SimDisk {
    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn append(&self, file: &str, data: &[u8]) -> io::Result<()> {
        self.op(&[file], |disk| {
            let f = disk.files.entry(file.to_owned()).or_default();
            f.current.extend_from_slice(data);
            disk.stats.bytes_written += data.len() as u64;
            Ok(())
        })
    }

    pub fn write(&self, file: &str, data: &[u8]) -> io::Result<()> {
        self.op(&[file], |disk| {
            let f = disk.files.entry(file.to_owned()).or_default();
            f.detach_durable();
            f.current = data.to_vec();
            disk.stats.bytes_written += data.len() as u64;
            Ok(())
        })
    }

    pub fn read(&self, file: &str) -> io::Result<Vec<u8>> {
        self.op(&[file], |disk| disk.read(file))
    }

    /// How long the next fsync takes: 1 to 12 ms, drawn from this disk's own stream (a SATA
    /// SSD flushing its write cache; slow enough that crashes land inside fsyncs).
    pub fn fsync_latency(&self) -> std::time::Duration {
        let ms = self.farm.with_node(&self.node, |disk| rand::Rng::gen_range(&mut disk.rng, 1..=12u64));
        std::time::Duration::from_millis(ms)
    }

    pub fn sync(&self, file: &str) -> io::Result<()> {
        self.op(&[file], |disk| {
            let f = disk.file(file)?;
            f.durable = Durable::Prefix(f.current.len());
            disk.stats.syncs += 1;
            Ok(())
        })
    }

    pub fn truncate(&self, file: &str, len: u64) -> io::Result<()> {
        let len = usize::try_from(len).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "length too large"))?;
        self.op(&[file], |disk| {
            let f = disk.file(file)?;
            if matches!(f.durable, Durable::Prefix(n) if len < n) {
                f.detach_durable();
            }
            f.current.resize(len, 0);
            Ok(())
        })
    }

    pub fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.op(&[from, to], |disk| {
            let moved = disk.files.remove(from).ok_or_else(|| not_found(from))?;
            disk.files.insert(to.to_owned(), moved);
            Ok(())
        })
    }

    pub fn remove(&self, file: &str) -> io::Result<()> {
        self.op(&[file], |disk| match disk.files.remove(file) {
            Some(_) => Ok(()),
            None => Err(not_found(file)),
        })
    }

    pub fn list(&self) -> io::Result<Vec<String>> {
        self.op(&[], |disk| Ok(disk.files.keys().cloned().collect()))
    }

    /// Draws no fault: it cannot report one.
    pub fn exists(&self, file: &str) -> bool {
        check_name(file).is_ok() && self.farm.with_node(&self.node, |disk| disk.files.contains_key(file))
    }

    /// Bad names are refused before any fault is drawn, so they do not shift the
    /// disk's random stream.
    fn op<R>(&self, names: &[&str], f: impl FnOnce(&mut NodeDisk) -> io::Result<R>) -> io::Result<R> {
        names.iter().try_for_each(|name| check_name(name))?;
        self.farm.with_node(&self.node, |disk| {
            disk.inject_error()?;
            f(disk)
        })
    }
}

impl fmt::Debug for SimDisk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SimDisk").field(&self.node).finish()
    }
}

impl NodeDisk {
    fn new(seed: u64, node: &str) -> Self {
        NodeDisk {
            files: BTreeMap::new(),
            faults: DiskFaults::default(),
            rng: ChaCha8Rng::seed_from_u64(node_seed(seed, node)),
            stats: DiskStats::default(),
        }
    }

    fn inject_error(&mut self) -> io::Result<()> {
        if self.faults.io_error.draw(&mut self.rng) {
            self.stats.injected_errors += 1;
            return Err(io::Error::other("injected I/O error"));
        }
        Ok(())
    }

    fn file(&mut self, name: &str) -> io::Result<&mut SimFile> {
        self.files.get_mut(name).ok_or_else(|| not_found(name))
    }

    fn read(&mut self, name: &str) -> io::Result<Vec<u8>> {
        let file = self.files.get_mut(name).ok_or_else(|| not_found(name))?;
        let len = file.current.len();
        if len > 0 && self.faults.read_corruption.draw(&mut self.rng) {
            let at = pick_byte(len, &mut self.rng);
            file.flip(at..at + 1, self.rng.gen_range(1..=255));
            self.stats.corrupted_reads += 1;
        }
        self.stats.bytes_read += len as u64;
        Ok(file.current.clone())
    }

    fn crash(&mut self) -> Vec<FileCrash> {
        let torn_writes = self.faults.torn_writes;
        let rng = &mut self.rng;
        let mut report = Vec::new();
        // BTreeMap visits in name order, so the random draws happen in a fixed order.
        self.files.retain(|name, file| {
            let Some(loss) = crash_file(name, file, torn_writes, rng) else {
                return true;
            };
            let vanished = loss.vanished;
            report.push(loss);
            !vanished
        });
        self.stats.crashes += 1;
        self.stats.torn_writes += report.iter().filter(|f| f.torn).count() as u64;
        report
    }
}

impl SimFile {
    /// The bytes a crash would leave, if any.
    fn durable_bytes(&self) -> Option<&[u8]> {
        match &self.durable {
            Durable::Never => None,
            Durable::Prefix(n) => Some(&self.current[..*n]),
            Durable::Copy(v) => Some(v),
        }
    }

    /// Called before `current` changes other than by appending, which would change the prefix.
    fn detach_durable(&mut self) {
        if let Durable::Prefix(n) = self.durable {
            self.durable = Durable::Copy(self.current[..n].to_vec());
        }
    }

    /// XORs `mask` into the bytes in `range`, in the cached and the durable content:
    /// damage on the platter is seen by reads now and after a crash. False if the
    /// range holds no byte of either.
    fn flip(&mut self, range: Range<usize>, mask: u8) -> bool {
        let mut hit = false;
        let copy = match &mut self.durable {
            Durable::Copy(v) => Some(v),
            _ => None,
        };
        for content in std::iter::once(&mut self.current).chain(copy) {
            let end = range.end.min(content.len());
            if let Some(bytes) = content.get_mut(range.start..end) {
                bytes.iter_mut().for_each(|b| *b ^= mask);
                hit |= !bytes.is_empty();
            }
        }
        hit
    }
}

/// Brings one file to its after-crash state; `None` if it had nothing unsynced.
fn crash_file(name: &str, file: &mut SimFile, torn_writes: bool, rng: &mut ChaCha8Rng) -> Option<FileCrash> {
    let before = file.current.len();
    let mut loss =
        FileCrash { file: name.to_owned(), lost_bytes: before as u64, kept_bytes: 0, torn: false, vanished: false };
    let Some(durable) = file.durable_bytes() else {
        loss.vanished = true;
        return Some(loss);
    };
    if file.current.len() == durable.len() && file.current == durable {
        return None;
    }
    let durable = durable.to_vec();
    let appended = file.current.starts_with(&durable);
    if appended && torn_writes {
        let tear = tear(&file.current, durable.len(), rng);
        loss.kept_bytes = tear.kept as u64;
        loss.lost_bytes = (before - durable.len() - tear.kept) as u64;
        loss.torn = tear.content.len() > durable.len() && tear.content != file.current;
        file.current = tear.content;
    } else {
        if appended {
            loss.lost_bytes = (before - durable.len()) as u64;
        }
        file.current = durable;
    }
    // After the crash, what is on the platter is all there is.
    file.durable = Durable::Prefix(file.current.len());
    Some(loss)
}

struct Tear {
    content: Vec<u8>,
    /// Unsynced bytes that survived intact.
    kept: usize,
}

/// Sectors reach the platter whole and in order, so what survives of an unsynced
/// append is its first few sectors; the sector being written at the moment of the
/// crash may hold new data in its first half and garbage in the rest.
fn tear(current: &[u8], synced: usize, rng: &mut ChaCha8Rng) -> Tear {
    let cut = pick_cut(synced, current.len(), rng);
    let mut content = current[..cut].to_vec();
    let mut kept = cut - synced;
    if cut < current.len() && COIN.draw(rng) {
        kept += write_torn_sector(&mut content, current, rng);
    }
    Tear { content, kept }
}

/// A random point in `synced..=len` where surviving data may end: the end of the
/// sync, a sector boundary, or the end of the data.
fn pick_cut(synced: usize, len: usize, rng: &mut ChaCha8Rng) -> usize {
    let first = synced / BLOCK_SIZE + 1;
    let inner = len.div_ceil(BLOCK_SIZE).saturating_sub(first);
    match rng.gen_range(0..inner + 2) {
        0 => synced,
        i if i == inner + 1 => len,
        i => (first + i - 1) * BLOCK_SIZE,
    }
}

/// Extends `content` (which stops before the end of `current`) to the end of the
/// sector it stops in: new data up to the middle of the sector, then zeros or
/// random bytes. Returns how many bytes of new data were added.
fn write_torn_sector(content: &mut Vec<u8>, current: &[u8], rng: &mut ChaCha8Rng) -> usize {
    let start = content.len();
    let sector = start - start % BLOCK_SIZE;
    let end = (sector + BLOCK_SIZE).min(current.len());
    let good_end = (sector + BLOCK_SIZE / 2).clamp(start, end);
    content.extend_from_slice(&current[start..good_end]);
    let mut garbage = vec![0u8; end - good_end];
    if COIN.draw(rng) {
        rng.fill(&mut garbage[..]);
    }
    content.extend_from_slice(&garbage);
    good_end - start
}

/// A byte in a random block of a `len`-byte file (`len > 0`).
fn pick_byte(len: usize, rng: &mut ChaCha8Rng) -> usize {
    let block = rng.gen_range(0..len.div_ceil(BLOCK_SIZE));
    let start = block * BLOCK_SIZE;
    rng.gen_range(start..len.min(start + BLOCK_SIZE))
}

/// FNV-1a 64 over (tag, seed, node name): fixed across platforms and Rust releases,
/// unlike std's hashers. The tag keeps disk streams apart from other per-node streams
/// derived from the same seed and name.
fn node_seed(seed: u64, node: &str) -> u64 {
    let seed = seed.to_le_bytes();
    let bytes = b"disk\0".iter().chain(&seed).chain(node.as_bytes());
    bytes.fold(0xcbf2_9ce4_8422_2325, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

fn not_found(file: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("no such file {file:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::records::{self, Tail};

    fn disk_with(faults: DiskFaults) -> (DiskFarm, SimDisk) {
        let farm = DiskFarm::new(7);
        farm.set_faults("n1", faults);
        let disk = farm.disk("n1");
        (farm, disk)
    }

    fn plain() -> (DiskFarm, SimDisk) {
        disk_with(DiskFaults::default())
    }

    #[test]
    fn unsynced_appends_vanish_on_crash() {
        let (farm, disk) = plain();
        disk.append("wal", b"synced").unwrap();
        disk.sync("wal").unwrap();
        disk.append("wal", b"+lost").unwrap();
        let report = farm.crash("n1");
        assert_eq!(disk.read("wal").unwrap(), b"synced");
        let expected = FileCrash { file: "wal".into(), lost_bytes: 5, kept_bytes: 0, torn: false, vanished: false };
        assert_eq!(report.files, vec![expected]);
        assert!(!report.any_torn());
    }

    #[test]
    fn synced_data_survives_crashes() {
        let (farm, disk) = plain();
        disk.append("wal", b"a").unwrap();
        disk.append("wal", b"b").unwrap();
        disk.sync("wal").unwrap();
        assert!(farm.crash("n1").files.is_empty());
        assert!(farm.crash("n1").files.is_empty());
        assert_eq!(disk.read("wal").unwrap(), b"ab");
        assert_eq!(farm.stats("n1").crashes, 2);
    }

    #[test]
    fn never_synced_file_vanishes() {
        let (farm, disk) = plain();
        disk.write("kept", b"k").unwrap();
        disk.sync("kept").unwrap();
        disk.write("new", b"12345").unwrap();
        let report = farm.crash("n1");
        assert!(!disk.exists("new"));
        assert_eq!(disk.list().unwrap(), vec!["kept"]);
        assert_eq!(report.files.len(), 1);
        assert!(report.files[0].vanished);
        assert_eq!(report.lost_bytes(), 5);
    }

    #[test]
    fn rewrite_or_truncate_since_sync_reverts() {
        let (farm, disk) = plain();
        disk.write("a", b"v1").unwrap();
        disk.sync("a").unwrap();
        disk.write("a", b"version 2").unwrap();
        disk.write("b", b"0123456789").unwrap();
        disk.sync("b").unwrap();
        disk.truncate("b", 3).unwrap();
        let report = farm.crash("n1");
        assert_eq!(disk.read("a").unwrap(), b"v1");
        assert_eq!(disk.read("b").unwrap(), b"0123456789");
        assert_eq!(report.lost_bytes(), 9 + 3);
    }

    #[test]
    fn rename_keeps_synced_content() {
        let (farm, disk) = plain();
        disk.write("state", b"old").unwrap();
        disk.sync("state").unwrap();
        disk.write("state.tmp", b"new").unwrap();
        disk.sync("state.tmp").unwrap();
        disk.rename("state.tmp", "state").unwrap();
        farm.crash("n1");
        assert_eq!(disk.read("state").unwrap(), b"new");
        assert!(!disk.exists("state.tmp"));
    }

    /// The classic bug the seam must be able to show: rename before sync.
    #[test]
    fn rename_without_sync_can_lose_the_file() {
        let (farm, disk) = plain();
        disk.write("state", b"old").unwrap();
        disk.sync("state").unwrap();
        disk.write("state.tmp", b"new").unwrap();
        disk.rename("state.tmp", "state").unwrap();
        farm.crash("n1");
        assert!(!disk.exists("state"));
    }

    #[test]
    fn remove_is_durable() {
        let (farm, disk) = plain();
        disk.write("f", b"x").unwrap();
        disk.sync("f").unwrap();
        disk.remove("f").unwrap();
        farm.crash("n1");
        assert!(!disk.exists("f"));
    }

    #[test]
    fn same_node_same_storage() {
        let farm = DiskFarm::new(1);
        farm.disk("n1").write("f", b"one").unwrap();
        farm.disk("n2").write("f", b"two").unwrap();
        assert_eq!(farm.disk("n1").read("f").unwrap(), b"one");
        assert_eq!(farm.clone().disk("n2").read("f").unwrap(), b"two");
        assert_eq!(farm.disk("n1").node(), "n1");
    }

    #[test]
    fn wipe_empties_only_that_disk() {
        let farm = DiskFarm::new(1);
        farm.disk("n1").write("f", b"one").unwrap();
        farm.disk("n2").write("f", b"two").unwrap();
        farm.wipe("n1");
        assert_eq!(farm.disk("n1").list().unwrap(), Vec::<String>::new());
        assert!(farm.disk("n2").exists("f"));
    }

    #[test]
    fn stats_count() {
        let (_farm, disk) = plain();
        disk.append("f", b"abc").unwrap();
        disk.write("g", b"de").unwrap();
        disk.sync("f").unwrap();
        disk.read("f").unwrap();
        let stats = disk.farm.stats("n1");
        assert_eq!((stats.bytes_written, stats.syncs, stats.bytes_read), (5, 1, 3));
    }

    /// Every fallible op, each leaving the disk as it was if it fails.
    fn all_ops(disk: &SimDisk) -> Vec<io::Result<()>> {
        vec![
            disk.append("f", b"more"),
            disk.write("f", b"other"),
            disk.read("f").map(drop),
            disk.sync("f"),
            disk.truncate("f", 0),
            disk.list().map(drop),
            disk.rename("f", "g"),
            disk.remove("g"),
        ]
    }

    #[test]
    fn io_error_always_fails_every_op() {
        let (farm, disk) = plain();
        disk.write("f", b"x").unwrap();
        farm.set_faults("n1", DiskFaults { io_error: Ratio::ALWAYS, ..DiskFaults::default() });
        for result in all_ops(&disk) {
            let err = result.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::Other);
            assert_eq!(err.to_string(), "injected I/O error");
        }
        assert_eq!(farm.stats("n1").injected_errors, 8);
        farm.set_faults("n1", DiskFaults::default());
        assert_eq!(disk.read("f").unwrap(), b"x");
    }

    #[test]
    fn io_error_never_fails_nothing() {
        let (farm, disk) = plain();
        disk.write("f", b"x").unwrap();
        for _ in 0..100 {
            disk.write("f", b"x").unwrap();
            assert!(all_ops(&disk).into_iter().all(|r| r.is_ok()));
        }
        assert_eq!(farm.stats("n1").injected_errors, 0);
    }

    fn failure_pattern(seed: u64, busy_neighbour: bool) -> Vec<bool> {
        let farm = DiskFarm::new(seed);
        let faults = DiskFaults { io_error: Ratio::new(1, 4), ..DiskFaults::default() };
        farm.set_faults("n1", faults.clone());
        farm.set_faults("n2", faults);
        (0..200)
            .map(|_| {
                if busy_neighbour {
                    let _ = farm.disk("n2").append("f", b"x");
                }
                farm.disk("n1").append("f", b"x").is_err()
            })
            .collect()
    }

    #[test]
    fn io_error_is_partial_deterministic_and_per_node() {
        let pattern = failure_pattern(3, false);
        let failures = pattern.iter().filter(|&&f| f).count();
        assert!((20..80).contains(&failures), "{failures} failures");
        assert_eq!(pattern, failure_pattern(3, false));
        assert_eq!(pattern, failure_pattern(3, true));
        assert_ne!(pattern, failure_pattern(4, false));
    }

    #[test]
    fn read_corruption_flips_one_byte_and_persists() {
        let (farm, disk) = plain();
        let original = vec![0x55u8; 2000];
        disk.write("f", &original).unwrap();
        disk.sync("f").unwrap();
        farm.set_faults("n1", DiskFaults { read_corruption: Ratio::ALWAYS, ..DiskFaults::default() });
        let damaged = disk.read("f").unwrap();
        let diffs = original.iter().zip(&damaged).filter(|(a, b)| a != b).count();
        assert_eq!(diffs, 1);
        farm.set_faults("n1", DiskFaults::default());
        assert_eq!(disk.read("f").unwrap(), damaged);
        farm.crash("n1");
        assert_eq!(disk.read("f").unwrap(), damaged);
        assert_eq!(farm.stats("n1").corrupted_reads, 1);
    }

    #[test]
    fn corrupt_block_is_caught_by_checksum() {
        let (farm, disk) = plain();
        let payload = [9u8; 100];
        for _ in 0..20 {
            disk.append("wal", &records::encode(&payload)).unwrap();
        }
        disk.sync("wal").unwrap();
        assert!(farm.corrupt_block("n1", "wal", 2));
        let framed = records::HEADER_LEN + payload.len();
        let first_hit = 2 * BLOCK_SIZE / framed * framed;
        for _ in 0..2 {
            let decoded = records::decode_all(&disk.read("wal").unwrap());
            assert_eq!(decoded.tail, Tail::Corrupt { offset: first_hit });
            assert_eq!(decoded.records.len(), first_hit / framed);
            farm.crash("n1"); // the damage is on the platter, not just in the cache
        }
        assert!(!farm.corrupt_block("n1", "wal", 100));
        assert!(!farm.corrupt_block("n1", "nope", 0));
        assert!(!farm.corrupt_block("n1", "wal", usize::MAX));
    }

    struct TornRun {
        report: CrashReport,
        bytes: Vec<u8>,
        written: Vec<Vec<u8>>,
        synced_records: usize,
        synced_len: usize,
    }

    /// Appends records of assorted sizes, syncs part way, appends more, crashes.
    fn torn_run(seed: u64) -> TornRun {
        let farm = DiskFarm::new(seed);
        farm.set_faults("n1", DiskFaults { torn_writes: true, ..DiskFaults::default() });
        let disk = farm.disk("n1");
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let written: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i; rng.gen_range(0..300)]).collect();
        let synced_records = rng.gen_range(0..20);
        let mut synced_len = 0;
        disk.write("wal", &[]).unwrap();
        for (i, record) in written.iter().enumerate() {
            if i == synced_records {
                disk.sync("wal").unwrap();
                synced_len = disk.read("wal").unwrap().len();
            }
            disk.append("wal", &records::encode(record)).unwrap();
        }
        let report = farm.crash("n1");
        let bytes = disk.read("wal").unwrap_or_default();
        TornRun { report, bytes, written, synced_records, synced_len }
    }

    #[test]
    fn torn_writes_keep_synced_records_and_tear_only_the_tail() {
        let (mut tears, mut torn_tails, mut corrupt_tails) = (0, 0, 0);
        for seed in 0..300 {
            let run = torn_run(seed);
            let decoded = records::decode_all(&run.bytes);
            let n = decoded.records.len();
            assert!(n >= run.synced_records, "seed {seed}: lost synced records");
            assert_eq!(decoded.records, run.written[..n], "seed {seed}");
            match decoded.tail {
                Tail::Clean => assert_eq!(decoded.valid_len, run.bytes.len()),
                Tail::Torn { offset } => {
                    assert!(offset >= run.synced_len, "seed {seed}");
                    torn_tails += 1;
                }
                // A torn sector's garbage second half fails the checksum of a record
                // whose length made it in whole.
                Tail::Corrupt { offset } => {
                    assert!(offset >= run.synced_len, "seed {seed}");
                    corrupt_tails += 1;
                }
            }
            tears += usize::from(run.report.any_torn());
        }
        assert!(tears > 0 && torn_tails > 0 && corrupt_tails > 0);
    }

    #[test]
    fn same_seed_same_tear() {
        for seed in 0..20 {
            let (a, b) = (torn_run(seed), torn_run(seed));
            assert_eq!((a.report, a.bytes), (b.report, b.bytes));
        }
    }

    #[test]
    fn tear_never_touches_synced_bytes() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        for _ in 0..2000 {
            let len = rng.gen_range(1..3000);
            let current: Vec<u8> = (0..len).map(|i| (i % 251) as u8 + 1).collect();
            let synced = rng.gen_range(0..len);
            let tear = tear(&current, synced, &mut rng);
            assert!(tear.content.len() >= synced && tear.content.len() <= len);
            assert_eq!(tear.content[..synced + tear.kept], current[..synced + tear.kept]);
        }
    }

    #[test]
    fn pick_cut_lands_on_sync_point_boundaries_or_end() {
        let mut rng = ChaCha8Rng::seed_from_u64(12);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..500 {
            seen.insert(pick_cut(100, 1600, &mut rng));
        }
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), [100, 512, 1024, 1536, 1600]);
    }

    #[test]
    fn node_seeds_differ_and_are_fixed() {
        assert_ne!(node_seed(1, "n1"), node_seed(1, "n2"));
        assert_ne!(node_seed(1, "n1"), node_seed(2, "n1"));
        assert_eq!(node_seed(1, "n1"), node_seed(1, "n1"));
    }
}
