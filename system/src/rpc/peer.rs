//! One-way frames to one peer: the sender behind Raft's and MongoDB replication's messages.

use std::marker::PhantomData;
use std::time::Duration;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use sim::net::Net;
use sim::NodeCtx;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::backoff::Backoff;
use super::frames::{within, Frames};
use crate::wire::Encoding;

/// How a [`PeerSender`] reaches its peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerOptions {
    pub port: u16,
    pub encoding: Encoding,
    pub connect_timeout_ms: u64,
    /// A frame that cannot be written by then is undelivered and the connection dropped.
    pub write_timeout_ms: u64,
    /// The connection is replaced this often, so one stuck after a partition heals (writes
    /// still fit in its buffer, nothing arrives) does not outlive it.
    pub max_conn_age_ms: u64,
    pub backoff: Backoff,
}

impl PeerOptions {
    /// 1 s to connect, 1 s to write, a new connection every 3 s, reconnects after 100 ms
    /// doubling to 400 ms: well inside a Raft election timeout (10 ticks), so a peer back from a
    /// restart hears its leader again before it would stand for election.
    pub fn new(port: u16, encoding: Encoding) -> Self {
        PeerOptions {
            port,
            encoding,
            connect_timeout_ms: 1_000,
            write_timeout_ms: 1_000,
            max_conn_age_ms: 3_000,
            backoff: Backoff { base_ms: 100, max_ms: 400 },
        }
    }
}

/// The queue of one-way frames to one peer, drained by a task of its own over a cached
/// connection.
///
/// The policy for frames it cannot deliver, the same for every protocol: when the connect
/// fails or times out, or a write fails or misses its deadline, the connection is dropped,
/// the frame is dropped, and so is every frame queued while the sender backs off before its
/// next connect. Each dropped frame is handed to the `undelivered` callback. Frames are
/// dropped, not kept for later, because the protocols above retransmit from their own state
/// (heartbeats repeat, a leader resends what a follower lacks, fetches are retried): a queue
/// kept through an outage would deliver stale terms and votes after it, and grow without
/// bound while the peer is away. Protocols that act on a loss (MongoDB ends a split vote at
/// once) learn of it through the callback. A frame written is not known to be delivered: the
/// peer may die before reading it, as with any TCP stream.
pub struct PeerSender<M> {
    tx: mpsc::UnboundedSender<M>,
}

impl<M> Clone for PeerSender<M> {
    fn clone(&self) -> Self {
        PeerSender { tx: self.tx.clone() }
    }
}

impl<M: Serialize + Send + 'static> PeerSender<M> {
    /// Starts the sender task for `peer` (its backoff jitter is forked from the node's rng).
    pub fn spawn(
        ctx: &mut NodeCtx,
        peer: &str,
        options: PeerOptions,
        undelivered: impl FnMut(M) + Send + 'static,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let rng = ChaCha8Rng::from_rng(&mut ctx.rng).expect("chacha never fails");
        let task = Task {
            net: ctx.net.clone(),
            peer: peer.to_string(),
            options,
            rng,
            failures: 0,
            undelivered,
            frames: PhantomData,
        };
        tokio::spawn(task.run(rx));
        PeerSender { tx }
    }

    /// Queues `msg`; never waits. Dropped silently if the sender task has ended.
    pub fn send(&self, msg: M) {
        let _ = self.tx.send(msg);
    }
}

struct Task<M, F> {
    net: Net,
    peer: String,
    options: PeerOptions,
    rng: ChaCha8Rng,
    failures: u32,
    undelivered: F,
    frames: PhantomData<fn(M)>,
}

impl<M: Serialize, F: FnMut(M)> Task<M, F> {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<M>) {
        let max_age = Duration::from_millis(self.options.max_conn_age_ms);
        let write = Duration::from_millis(self.options.write_timeout_ms);
        let mut conn: Option<(Instant, Frames)> = None;
        while let Some(msg) = rx.recv().await {
            if conn.as_ref().is_some_and(|(opened, _)| opened.elapsed() > max_age) {
                // Dropped, not shut down: a shutdown waits on the peer, which may be gone.
                conn = None;
            }
            if conn.is_none() {
                conn = connect(&self.net, &self.peer, &self.options).await.map(|frames| (Instant::now(), frames));
            }
            let sent = match conn.as_mut() {
                Some((_, frames)) => frames.send_within(write, &msg).await.is_ok(),
                None => false,
            };
            if sent {
                self.failures = 0;
            } else {
                conn = None;
                (self.undelivered)(msg);
                self.back_off(&mut rx).await;
            }
        }
    }

    /// Waits out the backoff, then drops (and reports) what queued meanwhile.
    async fn back_off(&mut self, rx: &mut mpsc::UnboundedReceiver<M>) {
        self.failures += 1;
        sim::timer::sleep(self.options.backoff.delay(self.failures, &mut self.rng)).await;
        while let Ok(msg) = rx.try_recv() {
            (self.undelivered)(msg);
        }
    }
}

/// (A free function: borrowing the whole task across the await would need its callback `Sync`.)
async fn connect(net: &Net, peer: &str, options: &PeerOptions) -> Option<Frames> {
    let limit = Duration::from_millis(options.connect_timeout_ms);
    let conn = within(limit, net.connect(peer, options.port)).await.ok()?;
    Some(Frames::new(conn, options.encoding))
}
