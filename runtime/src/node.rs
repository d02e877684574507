//! One node in this OS process: its main from the stack builder, on tokio with real TCP
//! ([`sim::net::Net::tokio`] over the layout's directory), its files under
//! `<data dir>/nodes/<name>` ([`sim::disk::RealDisk`], whose syncs are fsyncs), the real clock.
//!
//! The node counts its lives in `<data dir>/lives/<name>` (the stores read a later life with no
//! hard state as a wiped disk, as in the simulation), and draws its rng seed from the OS: two
//! lives, or two stacks, never share keys or salts.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use sim::disk::{Disk, RealDisk};
use sim::net::Net;
use sim::NodeCtx;

use crate::data_dir::DataDir;
use crate::layout::Layout;

/// How often a node checks that its supervisor still runs.
const ORPHAN_CHECK: Duration = Duration::from_secs(1);

/// Runs `name` until SIGTERM (exit 0), SIGKILL, or its supervisor `parent` is gone.
pub async fn run(layout: Layout, name: &str, data: &DataDir, parent: u32) -> anyhow::Result<()> {
    let Some(spot) = layout.node(name).cloned() else {
        bail!("unknown node {name}");
    };
    let main = layout.main_of(name).context("node without a main")?;
    let incarnation = next_life(&data.lives().join(name)).context("counting the node's lives")?;
    let disk = RealDisk::new(data.node_disk(name)).context("opening the node's data directory")?;
    let net = Net::tokio(name, Arc::new(layout.directory()), None);
    let mut ctx = NodeCtx::real(name, &spot.zone, &spot.region, net, Disk::Real(disk), os_seed());
    ctx.incarnation = incarnation;
    tracing::info!(node = name, incarnation, "starting");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    tokio::select! {
        () = main(ctx) => bail!("the node's main returned"),
        _ = term.recv() => tracing::info!(node = name, "stopping on SIGTERM"),
        _ = interrupt.recv() => tracing::info!(node = name, "stopping on SIGINT"),
        () = orphaned(parent) => tracing::warn!(node = name, "the supervisor is gone; stopping"),
    }
    Ok(())
}

/// Returns once this process's parent is no longer `parent` (it died and the process was
/// adopted), so a supervisor killed without warning leaves no nodes behind.
async fn orphaned(parent: u32) {
    loop {
        if std::os::unix::process::parent_id() != parent {
            return;
        }
        sim::timer::sleep(ORPHAN_CHECK).await;
    }
}

/// Reads, increments and durably writes the life counter: 1 for the first life.
fn next_life(path: &Path) -> std::io::Result<u64> {
    let before = match std::fs::read_to_string(path) {
        Ok(s) => s.trim().parse::<u64>().unwrap_or(0),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(e),
    };
    let now = before + 1;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, now.to_string())?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(now)
}

/// A fresh seed for this life's rng (signing keys, salts, ids).
#[allow(clippy::disallowed_methods, reason = "the real runtime seeds each life from the OS")]
fn os_seed() -> u64 {
    use rand::RngCore;
    rand::rngs::OsRng.next_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lives_count_from_one() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("n");
        assert_eq!(next_life(&path).unwrap(), 1);
        assert_eq!(next_life(&path).unwrap(), 2);
    }
}
