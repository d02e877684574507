//! What the real-runtime tests share: `stack up` as a child process, and a free range of ports
//! for it. Each test binary uses a part of it.
#![allow(dead_code, reason = "each test binary uses a part of this module")]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use tokio::io::AsyncBufReadExt;

pub const STACK: &str = env!("CARGO_BIN_EXE_stack");
/// A generous bound for a loaded 2-core machine; it fails the test, it measures nothing.
pub const READY_WITHIN: Duration = Duration::from_secs(300);

/// A base port whose whole range (20 ports per node, 50 nodes' worth) is free now: one of ten
/// ranges of 1,000 from `first`, starting from one the process id picks, so test binaries given
/// different `first`s never reach for the same ports.
pub fn free_base(first: u16) -> u16 {
    let start = (std::process::id() % 10) as u16;
    (0..10)
        .map(|k| first + ((start + k) % 10) * 1_000)
        .find(|base| (*base..base + 1_000).all(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()))
        .expect("a free range of ports")
}

/// A running `stack up`; killed on drop if the test did not stop it.
pub struct Up {
    pub child: tokio::process::Child,
}

impl Up {
    /// Starts `stack up` and waits for its ready line (its output is echoed to the test's).
    pub async fn start(data: &Path, base: u16) -> Up {
        let mut child = tokio::process::Command::new(STACK)
            .args(["up", "--data-dir"])
            .arg(data)
            .args(["--base-port", &base.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn stack up");
        let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("piped")).lines();
        let ready = async {
            while let Some(line) = lines.next_line().await.expect("read stack up") {
                eprintln!("stack up: {line}");
                if line.starts_with("ready") {
                    return;
                }
            }
            panic!("stack up ended before its ready line");
        };
        sim::timer::timeout(READY_WITHIN, ready).await.expect("stack up never printed its ready line");
        // Keep draining its output so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Up { child }
    }

    /// SIGTERM, then the exit status must be success.
    pub async fn stop(mut self) {
        let pid = self.child.id().expect("running");
        let status = Command::new("kill").args(["-TERM", &pid.to_string()]).status().expect("kill");
        assert!(status.success());
        let status = self.child.wait().await.expect("wait stack up");
        assert!(status.success(), "stack up exited with {status}");
    }
}
