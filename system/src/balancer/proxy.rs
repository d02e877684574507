//! The balancer's connection shell: probes, the front door's accept loop, forwarding and
//! splicing. Every decision is [`Upstreams`]'s; this file only does the I/O around it.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::Rng;
use serde_json::json;
use sim::net::Conn;
use sim::NodeCtx;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{oneshot, Semaphore};
use tokio::time::Instant;

use super::breaker::{Outcome, Transition};
use super::health::{Change, Probe};
use super::observations::{InstanceAdded, InstanceRemoved, SessionEnd, SessionEnded, SessionRouted};
use super::route::{self, Pool, Route};
use super::upstreams::Upstreams;
use super::{BalancerConfig, HTTP_PORT};
use crate::http::persistent::Persistent;
use crate::http::{self, health::HEALTH_PORT, HttpError, Request, Response};

/// What closes a session from outside: fired (or dropped) when its document moves.
type Closer = oneshot::Sender<()>;

pub(super) struct Balancer {
    pub(super) ctx: NodeCtx,
    pub(super) config: BalancerConfig,
    upstreams: Mutex<Upstreams<Closer>>,
}

impl Balancer {
    pub(super) fn new(ctx: NodeCtx, config: BalancerConfig) -> Self {
        let upstreams = Upstreams::new(config.pools(), config.fail_after, config.recover_after, config.breaker);
        Balancer { ctx, config, upstreams: Mutex::new(upstreams) }
    }

    fn upstreams(&self) -> MutexGuard<'_, Upstreams<Closer>> {
        self.upstreams.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now_ms(&self) -> u64 {
        self.ctx.clock.now_ms()
    }

    /// Probes one instance's `GET /health` every interval, each probe bounded by its timeout,
    /// over a connection kept between probes while it works (Envoy's `reuse_connection`).
    /// `offset_ms` spreads the probes of one balancer over the interval.
    pub(super) async fn probe_loop(self: Arc<Self>, pool: Pool, instance: String, offset_ms: u64) {
        let interval = Duration::from_millis(self.config.health_interval_ms.max(1));
        let timeout = Duration::from_millis(self.config.health_timeout_ms);
        sim::timer::sleep(Duration::from_millis(offset_ms)).await;
        let request = Request::get("/health");
        let mut upstream = Persistent::new(&instance, HEALTH_PORT);
        loop {
            let started = Instant::now();
            let answer = upstream.call(&self.ctx.net, &request, timeout).await;
            let probe = if answer.is_ok_and(|r| r.status == 200) { Probe::Passed } else { Probe::Failed };
            self.probed(pool, &instance, probe);
            sim::timer::sleep_until(started + interval).await;
        }
    }

    fn probed(&self, pool: Pool, instance: &str, probe: Probe) {
        let now_ms = self.now_ms();
        let probed = self.upstreams().probe(now_ms, instance, probe);
        let balancer = self.ctx.name.clone();
        match probed.change {
            None => {}
            Some(Change::Removed { failures, .. }) => {
                tracing::info!(instance, failures, "instance removed from rotation");
                self.ctx.observe(&InstanceRemoved {
                    balancer,
                    pool,
                    instance: instance.into(),
                    at_ms: now_ms,
                    failures,
                });
                self.ctx.sometimes("balancer.instance_removed");
            }
            Some(change) => {
                let first = matches!(change, Change::Added { .. });
                tracing::info!(instance, first, "instance in rotation");
                self.ctx.observe(&InstanceAdded { balancer, pool, instance: instance.into(), at_ms: now_ms, first });
                if !first {
                    self.ctx.sometimes("balancer.instance_readded");
                }
            }
        }
        if !probed.moved.is_empty() {
            self.ctx.sometimes("balancer.sessions_moved");
        }
        for (_, closer) in probed.moved {
            // The session may have ended on its own meanwhile; then nobody listens.
            let _ = closer.send(());
        }
    }

    /// Accepts front-door connections on [`HTTP_PORT`], at most `max_connections` at once: a
    /// connection beyond that is closed at once (the client retries, or tries another
    /// balancer), so a flood costs the balancer sockets but never unbounded tasks or memory.
    pub(super) async fn serve(self: Arc<Self>, ready: http::health::HealthFlag) -> std::io::Result<()> {
        let listener = self.ctx.net.bind(HTTP_PORT).await?;
        ready.set(true);
        let permits = Arc::new(Semaphore::new(self.config.max_connections.max(1)));
        loop {
            let (conn, _peer) = listener.accept().await?;
            match permits.clone().try_acquire_owned() {
                Ok(permit) => {
                    let me = self.clone();
                    tokio::spawn(async move {
                        me.connection(conn).await;
                        drop(permit);
                    });
                }
                Err(_) => {
                    self.ctx.sometimes("balancer.connection_refused_at_limit");
                    drop(conn);
                }
            }
        }
    }

    /// One front-door connection: read the head within the head timeout, route it, forward it.
    async fn connection(self: Arc<Self>, mut client: Conn) {
        let head_timeout = Duration::from_millis(self.config.head_timeout_ms);
        let request = match sim::timer::timeout(head_timeout, http::read_request(&mut client)).await {
            Ok(Ok(request)) => request,
            Ok(Err(HttpError::TooLarge(what))) => return self.reply(&mut client, 413, what).await,
            Ok(Err(HttpError::Malformed(_))) => return self.reply(&mut client, 400, "malformed request").await,
            // Closed, reset, or too slow to send a head (a slowloris): nothing to answer.
            Ok(Err(_)) | Err(_) => return,
        };
        match route::route(&request.method, &request.path, request.is_upgrade()) {
            Route::Reject { status, reason } => self.reply(&mut client, status, reason).await,
            Route::Any(pool) => self.forward(client, &request, pool).await,
            Route::Collab { doc } => self.collab(client, &request, &doc.to_string()).await,
        }
    }

    async fn reply(&self, client: &mut Conn, status: u16, reason: &str) {
        let write = Duration::from_millis(self.config.write_timeout_ms);
        let _ = sim::timer::timeout(write, http::write_response(client, &Response::error(status, reason))).await;
    }

    /// Connects to `instance`'s front port within the connect timeout and sends the request as
    /// received (head bytes, then body), reporting the outcome to its breaker.
    async fn open(&self, instance: &str, request: &Request) -> Result<Conn, Failed> {
        let connect = Duration::from_millis(self.config.connect_timeout_ms);
        let write = Duration::from_millis(self.config.write_timeout_ms);
        let result = async {
            let mut upstream = match sim::timer::timeout(connect, self.ctx.net.connect(instance, HTTP_PORT)).await {
                Ok(Ok(conn)) => conn,
                _ => return Err(Failed::Connect),
            };
            let send = async {
                upstream.write_all(request.head_bytes()).await?;
                upstream.write_all(&request.body).await?;
                upstream.flush().await
            };
            match sim::timer::timeout(write, send).await {
                Ok(Ok(())) => Ok(upstream),
                _ => Err(Failed::Send),
            }
        }
        .await;
        let outcome = if result.is_ok() { Outcome::Success } else { Outcome::Failure };
        self.attempted(instance, outcome);
        result
    }

    fn attempted(&self, instance: &str, outcome: Outcome) {
        let now_ms = self.now_ms();
        match self.upstreams().attempted(now_ms, instance, outcome) {
            Some(Transition::Opened) => {
                self.ctx.trace("balancer.breaker_opened", json!({ "instance": instance }));
                self.ctx.sometimes("balancer.breaker_opened");
            }
            Some(Transition::Closed) => self.ctx.trace("balancer.breaker_closed", json!({ "instance": instance })),
            None => {}
        }
    }

    /// An HTTP request for `pool`: to a healthy instance, then to another while the request
    /// reached none (connect failed) or may safely be sent twice (idempotent, and no response
    /// byte came back); then the response is spliced back.
    async fn forward(&self, mut client: Conn, request: &Request, pool: Pool) {
        let mut tried = BTreeSet::new();
        let response_timeout = Duration::from_millis(self.config.response_timeout_ms);
        loop {
            let picked = self.upstreams().pick(self.now_ms(), pool, &tried);
            let Some(instance) = picked else {
                let (status, reason) = if tried.is_empty() {
                    self.ctx.sometimes("balancer.no_healthy_instance");
                    (503, "no healthy instance")
                } else {
                    (502, "no instance answered")
                };
                return self.reply(&mut client, status, reason).await;
            };
            if !tried.is_empty() {
                self.ctx.sometimes("balancer.retried_another_instance");
            }
            tried.insert(instance.clone());
            let mut upstream = match self.open(&instance, request).await {
                Ok(upstream) => upstream,
                Err(Failed::Connect) => continue,
                Err(Failed::Send) if route::idempotent(&request.method) => continue,
                Err(Failed::Send) => return self.reply(&mut client, 502, "instance failed").await,
            };
            let mut first = vec![0u8; 16 * 1024];
            let n = match sim::timer::timeout(response_timeout, upstream.read(&mut first)).await {
                Ok(Ok(n)) if n > 0 => n,
                Ok(_) => {
                    // The instance closed or reset before answering anything.
                    self.attempted(&instance, Outcome::Failure);
                    if route::idempotent(&request.method) {
                        continue;
                    }
                    return self.reply(&mut client, 502, "instance closed before answering").await;
                }
                Err(_) => {
                    self.attempted(&instance, Outcome::Failure);
                    return self.reply(&mut client, 504, "instance did not answer in time").await;
                }
            };
            if write_within(&mut client, &first[..n], self.write_timeout()).await.is_err() {
                return;
            }
            tracing::debug!(pool = pool.as_str(), instance, path = request.path, "forwarded");
            // A plain request never moves: the sender lives as long as the splice.
            let (_never_sent, never) = oneshot::channel::<()>();
            self.splice(&mut client, &mut upstream, never).await;
            return;
        }
    }

    /// A WebSocket upgrade for `doc`: to the document's owner among the healthy collaboration
    /// instances and nowhere else, then the session is spliced until either side ends or the
    /// document moves.
    async fn collab(&self, mut client: Conn, request: &Request, doc: &str) {
        let owner = self.upstreams().owner(self.now_ms(), doc);
        let Some(instance) = owner else {
            self.ctx.sometimes("balancer.no_collab_owner");
            return self.reply(&mut client, 503, "no healthy collaboration instance").await;
        };
        let Ok(mut upstream) = self.open(&instance, request).await else {
            return self.reply(&mut client, 502, "collaboration instance unreachable").await;
        };
        let (closer, moved) = oneshot::channel();
        let opened = self.upstreams().open_session(self.now_ms(), doc, &instance, closer);
        let Some(id) = opened else {
            // The document moved while the connection was being made: the editor retries.
            self.ctx.sometimes("balancer.moved_while_connecting");
            return self.reply(&mut client, 503, "document is moving").await;
        };
        let balancer = self.ctx.name.clone();
        let at_ms = self.now_ms();
        self.ctx.observe(&SessionRouted {
            balancer: balancer.clone(),
            doc: doc.into(),
            instance: instance.clone(),
            at_ms,
        });
        let end = self.splice(&mut client, &mut upstream, moved).await;
        self.upstreams().close_session(id);
        let at_ms = self.now_ms();
        self.ctx.observe(&SessionEnded { balancer, doc: doc.into(), instance, at_ms, end });
        if end == SessionEnd::Moved {
            self.ctx.sometimes("balancer.session_closed_for_move");
        }
    }

    fn write_timeout(&self) -> Duration {
        Duration::from_millis(self.config.write_timeout_ms)
    }

    /// Copies bytes both ways until the instance's side ends (then the client's is closed: it
    /// learns at once that its instance is gone), the client's side fails, nothing passes for
    /// the idle timeout, or `moved` fires. The client closing its sending half is passed on as
    /// a shutdown, and the response still flows back. Every write is flushed (simulated streams
    /// send only on flush) and bounded by the write timeout, so a peer that stops reading
    /// cannot hold the session for ever.
    async fn splice(&self, client: &mut Conn, upstream: &mut Conn, mut moved: oneshot::Receiver<()>) -> SessionEnd {
        let idle = Duration::from_millis(self.config.idle_timeout_ms);
        let write = self.write_timeout();
        let (mut from_client, mut from_upstream) = (vec![0u8; 16 * 1024], vec![0u8; 16 * 1024]);
        let mut client_sending = true;
        let mut idle_timer = sim::timer::Deadline::after(idle);
        loop {
            tokio::select! {
                biased;
                _ = &mut moved => return SessionEnd::Moved,
                read = upstream.read(&mut from_upstream) => match read {
                    Ok(0) | Err(_) => return SessionEnd::Upstream,
                    Ok(n) => {
                        if write_within(client, &from_upstream[..n], write).await.is_err() {
                            return SessionEnd::Client;
                        }
                    }
                },
                read = client.read(&mut from_client), if client_sending => match read {
                    Ok(0) => {
                        client_sending = false;
                        let _ = sim::timer::timeout(write, upstream.shutdown()).await;
                    }
                    Err(_) => return SessionEnd::Client,
                    Ok(n) => {
                        if write_within(upstream, &from_client[..n], write).await.is_err() {
                            return SessionEnd::Upstream;
                        }
                    }
                },
                () = idle_timer.expired() => return SessionEnd::Idle,
            }
            idle_timer.set_after(idle);
        }
    }
}

/// Why an attempt to hand a request to an instance failed.
enum Failed {
    /// No connection: the request reached no one.
    Connect,
    /// Connected, but the request could not be written whole: it may have reached the instance.
    Send,
}

async fn write_within(conn: &mut Conn, bytes: &[u8], timeout: Duration) -> std::io::Result<()> {
    let write = async {
        conn.write_all(bytes).await?;
        conn.flush().await
    };
    sim::timer::timeout(timeout, write).await.map_err(|_| std::io::ErrorKind::TimedOut)?
}

/// Spreads the probes of `n` instances over one interval, from the node's seeded rng, so the
/// balancers do not probe in lockstep.
pub(super) fn probe_offsets(ctx: &mut NodeCtx, n: usize, interval_ms: u64) -> Vec<u64> {
    (0..n).map(|_| ctx.rng.gen_range(0..interval_ms.max(1))).collect()
}
