//! The disk seam: the only way the system under test touches storage.
//!
//! A node gets a [`Disk`], either [`Disk::Sim`] (in simulation, from a
//! [`DiskFarm`]) or [`Disk::Real`] (a directory, when run for real). Both offer the
//! same small, synchronous, whole-file API over a flat namespace of file names.
//!
//! # What the simulated disk models
//! - A page cache: writes are visible to reads at once but survive a power loss
//!   only once `sync`ed. A file that was never synced vanishes in a crash; a file
//!   rewritten or truncated since its last sync goes back to its synced content.
//! - Torn appends: on a crash, part of an unsynced appended tail may survive, cut
//!   at a 512-byte sector boundary, possibly ending in a half-written sector.
//! - Injected I/O errors, bit rot found on read (and persisted, as a bad sector
//!   would be), latent sector damage, and a disk replaced by an empty one.
//!
//! # How a schedule reaches it (see [`crate::fault`])
//! - `Fault::Disk { faults }` sets [`DiskFaults`] until the next `HealAll`: with
//!   `io_error`, every operation (read, write, append, `sync`, rename, remove, list)
//!   fails with that chance as "injected I/O error" and changes nothing; a store
//!   must stop acknowledging past a failed write or fsync.
//! - `Fault::Corrupt` flips one block of a synced file ([`DiskFarm::corrupt_block`]).
//! - `Fault::Crash` kills the process only: the page cache (unsynced data) stays,
//!   until a power loss ([`DiskFarm::crash`]: `Fault::Kill`, the run's ending).
//! - `Fault::Wipe` is a power loss followed by [`DiskFarm::wipe`].
//! - A journaled filesystem's metadata: `rename` and `remove` are atomic and
//!   durable as soon as they return. Write-to-temp, `sync`, `rename` is therefore
//!   the atomic-replace idiom; a renamed file's *content* is durable only if it
//!   was synced before the rename (rename without sync may leave nothing).
//!
//! # What it leaves out, and why
//! - Latency, capacity (ENOSPC), directories, file handles and offsets.
//! - Partial effects of a failed operation (a failed op changes nothing), and
//!   Linux's "fsync error clears the dirty pages" behaviour.
//! - Sectors of one append reaching the platter out of order.
//!
//! The contract the stores are held to is narrow on purpose: acknowledge only what
//! has been `sync`ed, and detect damage by checksum ([`records`]) rather than trust
//! what comes back. A store that relies on anything beyond this seam's guarantees
//! has a bug the simulation should be able to show.

use std::io;

pub mod real_disk;
pub mod records;
pub mod sim_disk;

pub use real_disk::RealDisk;
pub use sim_disk::{CrashReport, DiskFarm, DiskFaults, DiskStats, SimDisk};

/// A node's storage, simulated or real.
#[derive(Clone, Debug)]
pub enum Disk {
    Sim(SimDisk),
    Real(RealDisk),
}

macro_rules! dispatch {
    ($self:ident . $op:ident ( $($arg:expr),* )) => {
        match $self {
            Disk::Sim(disk) => disk.$op($($arg),*),
            Disk::Real(disk) => disk.$op($($arg),*),
        }
    };
}

impl Disk {
    /// Appends to the file, creating it if missing.
    pub fn append(&self, file: &str, data: &[u8]) -> io::Result<()> {
        dispatch!(self.append(file, data))
    }

    /// Creates or truncates the file, then writes `data`.
    pub fn write(&self, file: &str, data: &[u8]) -> io::Result<()> {
        dispatch!(self.write(file, data))
    }

    /// The whole file; `NotFound` if missing.
    pub fn read(&self, file: &str) -> io::Result<Vec<u8>> {
        dispatch!(self.read(file))
    }

    /// fsync: the file's current content becomes durable when this returns.
    ///
    /// It takes simulated time on the simulated disk (see [`SimDisk::fsync_latency`]), so a
    /// crash can land while an fsync is in flight: what it was making durable is then lost or
    /// torn, and whoever awaited it never acknowledged anything.
    pub async fn sync(&self, file: &str) -> io::Result<()> {
        match self {
            Disk::Sim(disk) => {
                crate::timer::sleep(disk.fsync_latency()).await;
                disk.sync(file)
            }
            Disk::Real(disk) => {
                let file = file.to_string();
                off_runtime(disk, move |d| d.sync(&file)).await
            }
        }
    }

    /// Sets the length (extending with zeros). Not durable until `sync`.
    pub fn truncate(&self, file: &str, len: u64) -> io::Result<()> {
        dispatch!(self.truncate(file, len))
    }

    /// Atomically replaces `to` with `from`; durable once it returns (see module doc).
    pub fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        dispatch!(self.rename(from, to))
    }

    /// Atomically replaces `file` with `bytes`, durable once it returns: write `<file>.tmp`,
    /// fsync it, rename it over `file` (the idiom the module doc describes). A crash at any
    /// point leaves either the old content or the new, never a mix; a crash before the rename
    /// may leave the temporary behind, which the next replace overwrites.
    pub async fn replace_file(&self, file: &str, bytes: &[u8]) -> io::Result<()> {
        let tmp = format!("{file}.tmp");
        if let Disk::Real(disk) = self {
            let (file, bytes) = (file.to_string(), bytes.to_vec());
            return off_runtime(disk, move |d| {
                d.write(&tmp, &bytes)?;
                d.sync(&tmp)?;
                d.rename(&tmp, &file)
            })
            .await;
        }
        self.write(&tmp, bytes)?;
        self.sync(&tmp).await?;
        self.rename(&tmp, file)
    }

    /// Deletes the file; durable once it returns.
    pub fn remove(&self, file: &str) -> io::Result<()> {
        dispatch!(self.remove(file))
    }

    /// All file names, sorted.
    pub fn list(&self) -> io::Result<Vec<String>> {
        dispatch!(self.list())
    }

    pub fn exists(&self, file: &str) -> bool {
        dispatch!(self.exists(file))
    }
}

/// Real fsyncs (and the directory sync of a rename) run on tokio's blocking pool: one can take
/// tens of milliseconds, and on a runtime worker it would stall every connection of the node
/// meanwhile (a Kafka broker's periodic writeback and checkpoint showed as a 60 ms p99 on
/// produce acknowledgements in `stack bench`). Kafka, too, flushes off its request threads.
#[cfg(not(madsim))]
async fn off_runtime<T: Send + 'static>(
    disk: &RealDisk,
    op: impl FnOnce(&RealDisk) -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    let disk = disk.clone();
    tokio::task::spawn_blocking(move || op(&disk)).await.map_err(io::Error::other)?
}

/// Under madsim no real disk is used by a simulation, and there is no blocking pool.
#[cfg(madsim)]
async fn off_runtime<T>(disk: &RealDisk, op: impl FnOnce(&RealDisk) -> io::Result<T>) -> io::Result<T> {
    op(disk)
}

impl From<SimDisk> for Disk {
    fn from(disk: SimDisk) -> Self {
        Disk::Sim(disk)
    }
}

impl From<RealDisk> for Disk {
    fn from(disk: RealDisk) -> Self {
        Disk::Real(disk)
    }
}

/// Names are flat so that the simulated and real disks agree on what a name means,
/// and so that no name can escape a real disk's directory.
pub(crate) fn check_name(name: &str) -> io::Result<()> {
    let bad = name.is_empty() || name == "." || name.contains("..") || name.contains(['/', '\\', '\0']);
    if bad {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid file name {name:?}: must be a flat relative name"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both backends must behave the same through the seam.
    async fn conformance(disk: &Disk) {
        assert_eq!(disk.list().unwrap(), Vec::<String>::new());
        assert_eq!(disk.read("a").unwrap_err().kind(), io::ErrorKind::NotFound);
        assert!(!disk.exists("a"));

        disk.append("b.log", b"hello").unwrap();
        disk.append("b.log", b" world").unwrap();
        assert_eq!(disk.read("b.log").unwrap(), b"hello world");
        disk.sync("b.log").await.unwrap();

        disk.write("a", b"first").unwrap();
        disk.write("a", b"2nd").unwrap();
        assert_eq!(disk.read("a").unwrap(), b"2nd");

        disk.truncate("b.log", 5).unwrap();
        assert_eq!(disk.read("b.log").unwrap(), b"hello");
        disk.truncate("b.log", 7).unwrap();
        assert_eq!(disk.read("b.log").unwrap(), b"hello\0\0");

        disk.write("c.tmp", b"new state").unwrap();
        disk.sync("c.tmp").await.unwrap();
        disk.rename("c.tmp", "a").unwrap();
        assert_eq!(disk.read("a").unwrap(), b"new state");
        assert!(!disk.exists("c.tmp"));
        assert_eq!(disk.list().unwrap(), vec!["a", "b.log"]);

        disk.remove("a").unwrap();
        assert!(!disk.exists("a"));
        assert_eq!(disk.remove("a").unwrap_err().kind(), io::ErrorKind::NotFound);
        assert_eq!(disk.sync("a").await.unwrap_err().kind(), io::ErrorKind::NotFound);
        assert_eq!(disk.rename("a", "z").unwrap_err().kind(), io::ErrorKind::NotFound);
        assert_eq!(disk.truncate("a", 0).unwrap_err().kind(), io::ErrorKind::NotFound);
        assert_eq!(disk.list().unwrap(), vec!["b.log"]);

        for bad in ["", ".", "..", "../x", "a/b", "/etc", "x..y", "a\\b"] {
            let err = disk.write(bad, b"x").unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
            assert!(!disk.exists(bad));
        }
        let err = disk.rename("b.log", "../b.log").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);

        disk.replace_file("state", b"one").await.unwrap();
        disk.replace_file("state", b"two").await.unwrap();
        assert_eq!(disk.read("state").unwrap(), b"two");
        assert_eq!(disk.list().unwrap(), vec!["b.log", "state"]);
    }

    #[tokio::test]
    async fn a_replaced_file_survives_a_crash_whole() {
        let farm = DiskFarm::new(1);
        let disk = Disk::from(farm.disk("n1"));
        disk.replace_file("state", b"old").await.unwrap();
        disk.replace_file("state", b"new").await.unwrap();
        farm.crash("n1");
        assert_eq!(disk.read("state").unwrap(), b"new");
        assert!(!disk.exists("state.tmp"));
    }

    #[tokio::test]
    async fn sim_disk_conforms() {
        conformance(&Disk::from(DiskFarm::new(1).disk("n1"))).await;
    }

    #[tokio::test]
    async fn real_disk_conforms() {
        let dir = tempfile::tempdir().unwrap();
        conformance(&Disk::from(RealDisk::new(dir.path().join("n1")).unwrap())).await;
    }
}
