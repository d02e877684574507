//! The client side: cached connections to the peers on one port, with deadlines and backoff.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sim::net::Net;
use sim::NodeCtx;
use tokio::time::Instant;

use super::backoff::Backoff;
use super::frames::{within, Frames};
use crate::wire::Encoding;

/// How a [`Channel`] reaches its peers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelOptions {
    pub port: u16,
    pub encoding: Encoding,
    /// A connect that has not completed by then fails (a partitioned peer never answers).
    pub connect_timeout_ms: u64,
    /// A request that cannot be written by then fails and its connection is dropped.
    pub write_timeout_ms: u64,
    /// A cached connection unused this long is closed rather than reused: below the servers'
    /// idle timeout ([`super::Listen`]), so a client never sends on a connection the server
    /// has already closed.
    pub idle_timeout_ms: u64,
    pub backoff: Backoff,
    /// Retry a request once on a fresh connection when a cached one fails with an error (not
    /// a timeout) before the reply: the server closed it, or restarted, while it sat idle.
    /// Only for idempotent requests: the first attempt may have been processed.
    pub retry_stale_once: bool,
}

impl ChannelOptions {
    /// 1 s to connect, 1 s to write, 10 s of idle reuse, reconnects after 50 ms doubling to 1 s
    /// (the Java Kafka client's `reconnect.backoff.ms` and `reconnect.backoff.max.ms`).
    pub fn new(port: u16, encoding: Encoding) -> Self {
        ChannelOptions {
            port,
            encoding,
            connect_timeout_ms: 1_000,
            write_timeout_ms: 1_000,
            idle_timeout_ms: 10_000,
            backoff: Backoff { base_ms: 50, max_ms: 1_000 },
            retry_stale_once: false,
        }
    }
}

/// Why a call got no reply.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("cannot connect: {0}")]
    Connect(io::Error),
    #[error("backing off after failures; the next attempt is past the call's deadline")]
    BackingOff,
    #[error("no reply within the deadline")]
    TimedOut,
    /// The connection failed while the request was being written: the request did not reach
    /// the peer whole, so the peer cannot have acted on it (a non-idempotent request may be
    /// sent again). A write that times out is `TimedOut` instead: it may have gone out.
    #[error("the connection failed before the request was sent: {0}")]
    Unsent(io::Error),
    #[error("the connection failed: {0}")]
    Broken(io::Error),
    #[error("the reply does not decode: {0}")]
    Malformed(io::Error),
}

impl From<RpcError> for io::Error {
    fn from(e: RpcError) -> io::Error {
        match e {
            RpcError::Connect(e) | RpcError::Unsent(e) | RpcError::Broken(e) | RpcError::Malformed(e) => e,
            RpcError::BackingOff => io::Error::new(io::ErrorKind::ConnectionRefused, "backing off"),
            RpcError::TimedOut => io::Error::new(io::ErrorKind::TimedOut, "no reply within the deadline"),
        }
    }
}

/// A client of every peer listening on one port. Clones share the cache.
///
/// A call takes a cached connection to the peer (or opens one), writes the request, and waits
/// for the reply, all within the call's deadline; on success the connection goes back to the
/// cache. On any failure the connection is dropped (never reused: it may carry a late reply,
/// or be stuck behind a partition), and the peer is backed off: the next connect to it waits
/// for [`Backoff::delay`], reset by the next success. Sequential callers thus reuse one
/// connection per peer; concurrent callers each hold their own, as a connection pool does.
#[derive(Clone)]
pub struct Channel {
    inner: Arc<Inner>,
}

struct Inner {
    net: Net,
    options: ChannelOptions,
    state: Mutex<State>,
}

struct State {
    peers: BTreeMap<String, Peer>,
    /// Draws the backoff jitter: forked from the node's rng, so a seed replays it.
    rng: ChaCha8Rng,
}

#[derive(Default)]
struct Peer {
    /// Cached connections, with when each was last used.
    idle: Vec<(Instant, Link)>,
    failures: u32,
    retry_at: Option<Instant>,
}

impl Channel {
    /// A channel of this node (its backoff jitter is forked from the node's rng).
    pub fn new(ctx: &mut NodeCtx, options: ChannelOptions) -> Self {
        let rng = ChaCha8Rng::from_rng(&mut ctx.rng).expect("chacha never fails");
        let state = State { peers: BTreeMap::new(), rng };
        Channel { inner: Arc::new(Inner { net: ctx.net.clone(), options, state: Mutex::new(state) }) }
    }

    pub fn options(&self) -> &ChannelOptions {
        &self.inner.options
    }

    /// Sends `req` to `peer` and waits for its reply, all within `timeout`.
    pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        peer: &str,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, RpcError> {
        let deadline = Instant::now() + timeout;
        let payload = Bytes::from(self.inner.options.encoding.encode(req).map_err(RpcError::Malformed)?);
        let (frames, reused) = match self.take_idle(peer) {
            Some(frames) => (frames, true),
            None => (self.open(peer, deadline).await?, false),
        };
        let result = match exchange(frames, payload.clone(), &self.inner.options, deadline).await {
            Err(RpcError::Broken(_) | RpcError::Unsent(_)) if reused && self.inner.options.retry_stale_once => {
                let frames = self.open(peer, deadline).await?;
                exchange(frames, payload, &self.inner.options, deadline).await
            }
            other => other,
        };
        match result {
            Ok((frames, reply)) => {
                self.succeeded(peer, frames);
                self.inner.options.encoding.decode(&reply).map_err(RpcError::Malformed)
            }
            Err(e) => {
                self.failed(peer);
                Err(e)
            }
        }
    }

    /// Closes the cached connections to `peer` (a client that learns the peer is no longer
    /// the one to talk to, e.g. a deposed leader, need not hold its connection).
    pub fn forget(&self, peer: &str) {
        if let Some(p) = self.state().peers.get_mut(peer) {
            p.idle.clear();
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The most recently used cached connection, unless it idled too long.
    fn take_idle(&self, peer: &str) -> Option<Link> {
        let max_idle = Duration::from_millis(self.inner.options.idle_timeout_ms);
        let mut state = self.state();
        let p = state.peers.get_mut(peer)?;
        p.idle.retain(|(used, _)| used.elapsed() < max_idle);
        p.idle.pop().map(|(_, link)| link)
    }

    /// Connects to `peer` once its backoff has passed, within the connect timeout and the
    /// call's deadline.
    async fn open(&self, peer: &str, deadline: Instant) -> Result<Link, RpcError> {
        let retry_at = self.state().peers.get(peer).and_then(|p| p.retry_at);
        if let Some(at) = retry_at {
            if at >= deadline {
                return Err(RpcError::BackingOff);
            }
            sim::timer::sleep_until(at).await;
        }
        let limit = Duration::from_millis(self.inner.options.connect_timeout_ms)
            .min(deadline.saturating_duration_since(Instant::now()));
        match connect(&self.inner.net, peer, &self.inner.options, limit).await {
            Ok(frames) => Ok(Link::new(frames, deadline)),
            Err(e) => {
                self.failed(peer);
                Err(e)
            }
        }
    }

    fn succeeded(&self, peer: &str, link: Link) {
        let mut state = self.state();
        let p = state.peers.entry(peer.to_string()).or_default();
        p.failures = 0;
        p.retry_at = None;
        p.idle.push((Instant::now(), link));
    }

    fn failed(&self, peer: &str) {
        let backoff = self.inner.options.backoff;
        let state = &mut *self.state();
        let p = state.peers.entry(peer.to_string()).or_default();
        p.failures += 1;
        p.retry_at = Some(Instant::now() + backoff.delay(p.failures, &mut state.rng));
    }
}

/// One call on a fresh connection, closed afterwards: for clients too rare or too short-lived
/// to keep a connection (and so without backoff: a caller retrying in a loop must pause).
pub async fn call_once<Req: Serialize, Resp: DeserializeOwned>(
    net: &Net,
    peer: &str,
    options: &ChannelOptions,
    req: &Req,
    timeout: Duration,
) -> Result<Resp, RpcError> {
    let deadline = Instant::now() + timeout;
    let payload = Bytes::from(options.encoding.encode(req).map_err(RpcError::Malformed)?);
    let limit = Duration::from_millis(options.connect_timeout_ms).min(timeout);
    let frames = connect(net, peer, options, limit).await?;
    let (_, reply) = exchange(Link::new(frames, deadline), payload, options, deadline).await?;
    options.encoding.decode(&reply).map_err(RpcError::Malformed)
}

async fn connect(net: &Net, peer: &str, options: &ChannelOptions, limit: Duration) -> Result<Frames, RpcError> {
    let conn = within(limit, net.connect(peer, options.port)).await.map_err(RpcError::Connect)?;
    Ok(Frames::new(conn, options.encoding))
}

/// A connection with the deadline of its current call. The deadline lives as long as the
/// connection, so calls in quick succession move one timer rather than each adding its own
/// (see [`sim::timer::Deadline`]).
struct Link {
    frames: Frames,
    deadline: sim::timer::Deadline,
}

impl Link {
    fn new(frames: Frames, deadline: Instant) -> Self {
        Link { frames, deadline: sim::timer::Deadline::at(deadline) }
    }
}

/// Writes the request and reads one reply on `link`, by `deadline`; the connection comes
/// back only on success.
async fn exchange(
    mut link: Link,
    payload: Bytes,
    options: &ChannelOptions,
    deadline: Instant,
) -> Result<(Link, Bytes), RpcError> {
    link.deadline.set(deadline);
    let Link { frames, deadline: timer } = &mut link;
    let io = async {
        let write = Duration::from_millis(options.write_timeout_ms);
        within(write, frames.send_raw(payload)).await.map_err(|e| failure(e, RpcError::Unsent))?;
        frames.recv_raw().await.map_err(|e| failure(e, RpcError::Broken))
    };
    let reply = tokio::select! {
        biased;
        reply = io => reply?,
        () = timer.expired() => return Err(RpcError::TimedOut),
    };
    Ok((link, reply))
}

/// An I/O error of an exchange: a deadline is `TimedOut`, anything else `broke`.
fn failure(e: io::Error, broke: fn(io::Error) -> RpcError) -> RpcError {
    match e.kind() {
        io::ErrorKind::TimedOut => RpcError::TimedOut,
        _ => broke(e),
    }
}
