//! The server side: one accept loop for every listener of the stack.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use sim::net::Net;

use super::frames::Frames;
use crate::wire::Encoding;

/// Where and how a server listens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listen {
    pub port: u16,
    pub encoding: Encoding,
    /// A connection that sends nothing for this long is closed (its client reconnects): a
    /// stream stuck behind a healed partition does not hold a task forever.
    pub idle_timeout_ms: u64,
    /// A reply that cannot be written within this long closes the connection.
    pub write_timeout_ms: u64,
}

impl Listen {
    /// A listener closing connections idle for 30 s (MongoDB's and Kafka's servers close idle
    /// connections too, after longer: `connections.max.idle.ms` is 10 min) and giving up on a
    /// reply after 2 s.
    pub fn new(port: u16, encoding: Encoding) -> Self {
        Listen { port, encoding, idle_timeout_ms: 30_000, write_timeout_ms: 2_000 }
    }

    pub fn idle_timeout_ms(mut self, ms: u64) -> Self {
        self.idle_timeout_ms = ms;
        self
    }
}

/// What a handler does with one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer<R> {
    /// Write this reply, then read the next request.
    Reply(R),
    /// Nothing to answer (a one-way frame); read the next request.
    Quiet,
    /// Close the connection (an untrusted frame, or the node's loop has stopped).
    Close,
}

/// Accepts connections on `listen.port`, and for each runs `on_conn(frames, peer)` as its own
/// task, where `peer` names the connecting node. Returns only when binding or accepting fails,
/// with the error (a bound port stays bound until the node dies).
pub async fn accept_each<F, Fut>(net: Net, listen: Listen, mut on_conn: F) -> io::Error
where
    F: FnMut(Frames, String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = match net.bind(listen.port).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(port = listen.port, error = %e, "cannot listen");
            return e;
        }
    };
    loop {
        match listener.accept().await {
            Ok((conn, peer)) => {
                tokio::spawn(on_conn(Frames::new(conn, listen.encoding), peer));
            }
            Err(e) => return e,
        }
    }
}

/// A request/reply server: each request read from a connection (within the idle timeout) is
/// handed to `handler`, and its [`Answer`] written back before the next request is read, so
/// replies keep the order of requests. Returns only when binding or accepting fails.
pub async fn serve<Req, Resp, H, Fut>(net: Net, listen: Listen, handler: H) -> io::Error
where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
    H: Fn(Req) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Answer<Resp>> + Send + 'static,
{
    let handler = Arc::new(handler);
    accept_each(net, listen, move |frames, _peer| serve_conn(frames, listen, handler.clone())).await
}

async fn serve_conn<Req, Resp, H, Fut>(mut frames: Frames, listen: Listen, handler: Arc<H>)
where
    Req: DeserializeOwned,
    Resp: Serialize,
    H: Fn(Req) -> Fut,
    Fut: Future<Output = Answer<Resp>>,
{
    let idle_timeout = Duration::from_millis(listen.idle_timeout_ms);
    let mut idle = sim::timer::Deadline::after(idle_timeout);
    let write = Duration::from_millis(listen.write_timeout_ms);
    loop {
        // The idle timeout counts from here, as a `recv_within` would, with one timer entry
        // per idle period rather than one per request.
        idle.set_after(idle_timeout);
        let req = tokio::select! {
            biased;
            req = frames.recv::<Req>() => match req {
                Ok(req) => req,
                Err(_) => return,
            },
            () = idle.expired() => return,
        };
        match handler(req).await {
            Answer::Reply(resp) => {
                if frames.send_within(write, &resp).await.is_err() {
                    return;
                }
            }
            Answer::Quiet => {}
            Answer::Close => return,
        }
    }
}
