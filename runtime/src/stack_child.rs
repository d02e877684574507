//! `stack up` as a child process: what `stack chaos`, `stack bench` and the real-runtime tests
//! each need, a whole stack they start, wait for and stop.

use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::AsyncBufReadExt;

/// A running `stack up` (the supervisor); killed on drop if not stopped.
pub struct StackChild {
    child: tokio::process::Child,
}

impl StackChild {
    /// Runs `exe up --data-dir root --base-port base` and waits up to `ready_within` for its
    /// `ready` line. Every line it prints goes to `echo` (the ready line included); its output
    /// is drained afterwards, so it never blocks on a full pipe.
    pub async fn start(
        exe: &Path,
        root: &Path,
        base: u16,
        ready_within: Duration,
        echo: impl Fn(&str) + Send + 'static,
    ) -> anyhow::Result<StackChild> {
        let mut child = tokio::process::Command::new(exe)
            .args(["up", "--data-dir"])
            .arg(root)
            .args(["--base-port", &base.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("spawning {} up", exe.display()))?;
        let mut lines = tokio::io::BufReader::new(child.stdout.take().context("piped stdout")?).lines();
        let ready = async {
            while let Some(line) = lines.next_line().await? {
                echo(&line);
                if line.starts_with("ready") {
                    return anyhow::Ok(());
                }
            }
            bail!("stack up ended before it was ready")
        };
        sim::timer::timeout(ready_within, ready)
            .await
            .with_context(|| format!("stack up was not ready in {} s", ready_within.as_secs()))??;
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(StackChild { child })
    }

    /// This very binary's `stack up` (the `stack chaos` and `stack bench` commands bring up a
    /// stack of their own), printing its ready line under `label`.
    pub async fn start_own(root: &Path, base: u16, label: &str) -> anyhow::Result<StackChild> {
        let exe = std::env::current_exe().context("finding the stack binary")?;
        let label = label.to_string();
        let echo = move |line: &str| {
            if line.starts_with("ready") {
                println!("{label}: {line}");
            }
        };
        StackChild::start(&exe, root, base, Duration::from_secs(300), echo).await
    }

    /// SIGTERM (the supervisor stops every node and exits), then its exit status, waiting at
    /// most 30 s.
    pub async fn stop(mut self) -> anyhow::Result<ExitStatus> {
        if let Some(pid) = self.child.id().and_then(|p| libc::pid_t::try_from(p).ok()) {
            // SAFETY: kill(2) on our own child, which has not been reaped (we hold it).
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        sim::timer::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .context("stack up did not exit within 30 s of SIGTERM")?
            .context("waiting for stack up")
    }
}
