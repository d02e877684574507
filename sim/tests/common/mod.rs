//! Test bodies shared by the simulated and the real-runtime tests: the same node code must
//! behave the same over every implementation of the seams.

use std::time::Duration;

use sim::NodeCtx;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const PORT: u16 = 9000;

/// Echoes one byte per connection read, forever.
pub async fn echo_server(ctx: NodeCtx) {
    let listener = ctx.net.bind(PORT).await.expect("bind");
    while let Ok((mut conn, _)) = listener.accept().await {
        tokio::spawn(async move {
            let mut b = [0u8; 1];
            while conn.read_exact(&mut b).await.is_ok() {
                if conn.write_all(&b).await.is_err() || conn.flush().await.is_err() {
                    return;
                }
            }
        });
    }
}

/// One ping on a fresh connection: the round trip in ms, or None on failure within 1 s.
pub async fn ping(ctx: &NodeCtx, to: &str) -> Option<u64> {
    let start = tokio::time::Instant::now();
    let attempt = async {
        let mut c = ctx.net.connect(to, PORT).await.ok()?;
        c.write_all(&[7]).await.ok()?;
        c.flush().await.ok()?;
        let mut b = [0u8; 1];
        c.read_exact(&mut b).await.ok()?;
        Some(())
    };
    sim::timer::timeout(Duration::from_secs(1), attempt).await.ok()??;
    Some(start.elapsed().as_millis() as u64)
}
