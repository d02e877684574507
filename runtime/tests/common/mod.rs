//! What the real-runtime tests share: `stack up` as a child process, and a free range of ports
//! for it. Each test binary uses a part of it.
#![allow(dead_code, reason = "each test binary uses a part of this module")]

use std::path::Path;
use std::time::Duration;

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
    pub child: runtime::stack_child::StackChild,
}

impl Up {
    /// Starts `stack up` and waits for its ready line (its output is echoed to the test's).
    pub async fn start(data: &Path, base: u16) -> Up {
        let echo = |line: &str| eprintln!("stack up: {line}");
        let child = runtime::stack_child::StackChild::start(Path::new(STACK), data, base, READY_WITHIN, echo)
            .await
            .expect("stack up ready");
        Up { child }
    }

    /// SIGTERM, then the exit status must be success.
    pub async fn stop(self) {
        let status = self.child.stop().await.expect("stack up stops");
        assert!(status.success(), "stack up exited with {status}");
    }
}
