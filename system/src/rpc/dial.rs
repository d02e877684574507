//! The client side of streaming protocols: connections that carry a session (a WAL stream, a
//! replication link) rather than one call each.

use std::future::Future;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sim::net::Net;
use sim::NodeCtx;

use super::backoff::Backoff;
use super::channel::RpcError;
use super::frames::{within, Frames};
use crate::wire::Encoding;

/// How a [`Dialer`] reaches its peers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DialOptions {
    pub port: u16,
    pub encoding: Encoding,
    /// A connect that has not completed by then fails (a partitioned peer never answers).
    pub connect_timeout_ms: u64,
    /// The pause before [`Dialer::redial`] connects again.
    pub backoff: Backoff,
}

impl DialOptions {
    /// 1 s to connect; reconnects after 500 ms doubling to 1 s (PostgreSQL's
    /// `wal_retrieve_retry_interval` is 5 s and Redis retries its master link every second,
    /// from `replicationCron`; scaled down as the stores' other timeouts are).
    pub fn new(port: u16, encoding: Encoding) -> Self {
        DialOptions { port, encoding, connect_timeout_ms: 1_000, backoff: Backoff { base_ms: 500, max_ms: 1_000 } }
    }

    pub fn connect_timeout_ms(mut self, ms: u64) -> Self {
        self.connect_timeout_ms = ms;
        self
    }
}

/// Opens streaming connections to the peers on one port. Clones share the backoff's rng.
///
/// [`Dialer::dial`] is one connect within the deadline, for protocols whose core decides when
/// to try again (Redis's replication core). [`Dialer::redial`] is the reconnect loop for those
/// that simply keep a session up (a walreceiver following its primary): the session runs until
/// the connection fails, then the dialer waits out the backoff and connects again. Deadlines on
/// the session's own reads and writes are the session's: [`Frames`] has `recv_within` and
/// `send_within`, and a split connection keeps them.
#[derive(Clone)]
pub struct Dialer {
    net: Net,
    options: DialOptions,
    /// Draws the backoff jitter: forked from the node's rng, so a seed replays it.
    rng: Arc<Mutex<ChaCha8Rng>>,
}

impl Dialer {
    /// A dialer of this node (its backoff jitter is forked from the node's rng).
    pub fn new(ctx: &mut NodeCtx, options: DialOptions) -> Self {
        let rng = ChaCha8Rng::from_rng(&mut ctx.rng).expect("chacha never fails");
        Dialer { net: ctx.net.clone(), options, rng: Arc::new(Mutex::new(rng)) }
    }

    /// Connects to `peer` within the connect timeout.
    pub async fn dial(&self, peer: &str) -> Result<Frames, RpcError> {
        let limit = Duration::from_millis(self.options.connect_timeout_ms);
        let conn = within(limit, self.net.connect(peer, self.options.port)).await.map_err(RpcError::Connect)?;
        Ok(Frames::new(conn, self.options.encoding))
    }

    /// Keeps a session with `peer` up until `session` returns `Break`: connects, runs
    /// `session` on the connection, and after it returns `Continue` (the connection failed or
    /// the peer refused) or a connect fails, waits out the backoff and connects again. Failed
    /// connects in a row back off further; a session that ran starts the count again (the peer
    /// was reachable). A caller that must stop sooner drops or aborts the future.
    pub async fn redial<F, Fut>(&self, peer: &str, mut session: F)
    where
        F: FnMut(Frames) -> Fut,
        Fut: Future<Output = ControlFlow<()>>,
    {
        let mut failures = 0;
        loop {
            match self.dial(peer).await {
                Ok(frames) => {
                    if session(frames).await.is_break() {
                        return;
                    }
                    failures = 1;
                }
                Err(_) => failures += 1,
            }
            let pause = {
                let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
                self.options.backoff.delay(failures, &mut *rng)
            };
            sim::timer::sleep(pause).await;
        }
    }
}
