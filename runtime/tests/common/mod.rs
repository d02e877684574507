//! What the real-runtime tests share: `stack up` as a child process, and a free range of ports
//! for it. Each test binary uses a part of it.
#![allow(dead_code, reason = "each test binary uses a part of this module")]

use std::path::Path;
use std::time::Duration;

pub const STACK: &str = env!("CARGO_BIN_EXE_stack");
/// A generous bound for a loaded 2-core machine; it fails the test, it measures nothing.
pub const READY_WITHIN: Duration = Duration::from_secs(300);

/// Test binaries that bring up a stack, each with its own share of the port blocks below.
pub const BINARIES: u16 = 4;

const FIRST_BLOCK: u16 = 11_000;

/// A base port whose whole block (20 ports per node, 50 nodes' worth: 1,000 ports) is free now.
/// Blocks start at 11,000, above the last of the ports the Fetch standard bars (10080; Node's
/// `fetch` refuses them, and 2049, 6000 and 6665 to 6697 are among them), and stop below the
/// kernel's ephemeral range (32,768 by default): a block there would race every outgoing
/// connection on the machine, the stack's own among them, and on a busy machine no block of
/// 1,000 ephemeral ports is ever wholly free. Binary `binary` (0 to `BINARIES` - 1) owns every
/// `BINARIES`-th block, so binaries never reach for the same ports; the process id picks where
/// in its share a binary starts looking.
pub fn free_base(binary: u16) -> u16 {
    assert!(binary < BINARIES, "binary {binary} has no share of the port blocks");
    let ephemeral = ephemeral_ports();
    let blocks: Vec<u16> = (0..)
        .map(|k| FIRST_BLOCK + (binary + k * BINARIES) * 1_000)
        // Every binary keeps one block even on a machine whose ephemeral range starts low.
        .take_while(|base| {
            u32::from(*base) + 1_000 <= u32::from(*ephemeral.start()).max(u32::from(FIRST_BLOCK + BINARIES * 1_000))
        })
        .collect();
    let start = std::process::id() as usize % blocks.len();
    // A port a test before this one used may stay taken for a while after its process ended
    // (a closing connection's state outlives it), so look again for up to a minute.
    let mut busy = Vec::new();
    for _ in 0..60 {
        busy.clear();
        for k in 0..blocks.len() {
            let base = blocks[(start + k) % blocks.len()];
            match (base..base + 1_000).find_map(|p| std::net::TcpListener::bind(("127.0.0.1", p)).err().map(|e| (p, e)))
            {
                None => return base,
                Some((port, e)) => busy.push(format!("{port}: {e}")),
            }
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    panic!("no free block of 1,000 ports among {blocks:?}; the first port taken in each: {busy:?}")
}

/// The kernel's ephemeral port range; Linux's default when it cannot be read.
fn ephemeral_ports() -> std::ops::RangeInclusive<u16> {
    let read = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok();
    let parsed = read.and_then(|s| {
        let mut it = s.split_whitespace().map(|p| p.parse::<u16>().ok());
        Some(it.next()??..=it.next()??)
    });
    parsed.filter(|r| *r.start() >= 10_000).unwrap_or(32_768..=60_999)
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
