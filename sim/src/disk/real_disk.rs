//! The real disk: one directory per node, plain `std::fs`.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::check_name;

/// A node's storage as files in one directory.
#[derive(Clone)]
pub struct RealDisk {
    dir: Arc<PathBuf>,
}

impl RealDisk {
    /// Uses `dir`, creating it (and its parents) if missing.
    pub fn new(dir: PathBuf) -> io::Result<Self> {
        fs::create_dir_all(&dir)?;
        Ok(RealDisk { dir: Arc::new(dir) })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn append(&self, file: &str, data: &[u8]) -> io::Result<()> {
        let path = self.path(file)?;
        let mut f = OpenOptions::new().create(true).append(true).open(path)?;
        f.write_all(data)
    }

    pub fn write(&self, file: &str, data: &[u8]) -> io::Result<()> {
        fs::write(self.path(file)?, data)
    }

    pub fn read(&self, file: &str) -> io::Result<Vec<u8>> {
        fs::read(self.path(file)?)
    }

    /// Syncs the file, then the directory, so that a file created since the last
    /// sync is durable along with its content.
    pub fn sync(&self, file: &str) -> io::Result<()> {
        // Write access: Windows refuses to flush a read-only handle.
        OpenOptions::new().write(true).open(self.path(file)?)?.sync_all()?;
        self.sync_dir()
    }

    pub fn truncate(&self, file: &str, len: u64) -> io::Result<()> {
        OpenOptions::new().write(true).open(self.path(file)?)?.set_len(len)
    }

    /// The directory is synced so the rename is durable when this returns, as the
    /// simulated disk promises.
    pub fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        fs::rename(self.path(from)?, self.path(to)?)?;
        self.sync_dir()
    }

    pub fn remove(&self, file: &str) -> io::Result<()> {
        fs::remove_file(self.path(file)?)?;
        self.sync_dir()
    }

    /// Regular files with UTF-8 names, sorted; anything else in the directory was not
    /// put there through this seam.
    pub fn list(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(self.dir.as_path())? {
            let entry = entry?;
            if !entry.file_type()?.is_file() {
                continue;
            }
            if let Ok(name) = entry.file_name().into_string() {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    pub fn exists(&self, file: &str) -> bool {
        self.path(file).is_ok_and(|p| p.is_file())
    }

    fn path(&self, file: &str) -> io::Result<PathBuf> {
        check_name(file)?;
        Ok(self.dir.join(file))
    }

    #[cfg(unix)]
    fn sync_dir(&self) -> io::Result<()> {
        fs::File::open(self.dir.as_path())?.sync_all()
    }

    /// Windows cannot open a directory as a file to flush it; NTFS journals
    /// metadata itself.
    #[cfg(not(unix))]
    fn sync_dir(&self) -> io::Result<()> {
        Ok(())
    }
}

impl fmt::Debug for RealDisk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RealDisk").field(&self.dir).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_reopen() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("nested").join("node");
        let disk = RealDisk::new(dir.clone()).unwrap();
        disk.append("wal.log", b"abc").unwrap();
        disk.append("wal.log", b"def").unwrap();
        disk.sync("wal.log").unwrap();
        disk.write("state.tmp", b"s1").unwrap();
        disk.sync("state.tmp").unwrap();
        disk.rename("state.tmp", "state").unwrap();

        // A second handle on the same directory is what a restarted node gets.
        let again = RealDisk::new(dir).unwrap();
        assert_eq!(again.read("wal.log").unwrap(), b"abcdef");
        assert_eq!(again.read("state").unwrap(), b"s1");
        assert_eq!(again.list().unwrap(), vec!["state", "wal.log"]);
    }

    #[test]
    fn list_skips_directories() {
        let tmp = tempfile::tempdir().unwrap();
        let disk = RealDisk::new(tmp.path().to_path_buf()).unwrap();
        fs::create_dir(tmp.path().join("sub")).unwrap();
        disk.write("f", b"").unwrap();
        assert_eq!(disk.list().unwrap(), vec!["f"]);
        assert!(!disk.exists("sub"));
    }
}
