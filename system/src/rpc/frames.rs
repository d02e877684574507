//! A connection wrapped in the frame codec: typed messages in, typed messages out.

use std::future::Future;
use std::io;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sim::net::Conn;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use crate::wire::{self, Encoding};

/// A stream of frames in one [`Encoding`].
///
/// Reading is cancel-safe (a partly received frame stays buffered), so a read may sit in a
/// `select!` or under a timeout. A write that times out may leave half a frame on the stream:
/// drop the connection then, as every user in [`crate::rpc`] does.
pub struct Frames<S = Conn> {
    inner: Framed<S, LengthDelimitedCodec>,
    encoding: Encoding,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Frames<S> {
    pub fn new(stream: S, encoding: Encoding) -> Self {
        Frames { inner: Framed::new(stream, wire::codec()), encoding }
    }

    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// Sends one message and flushes it (madsim's streams send only on flush). The message is
    /// encoded before the future is made, so the future does not borrow it.
    pub fn send<T: Serialize>(&mut self, msg: &T) -> impl Future<Output = io::Result<()>> + Send + '_
    where
        S: Send,
    {
        let encoded = self.encoding.encode(msg);
        async move { self.send_raw(Bytes::from(encoded?)).await }
    }

    /// Sends one already encoded payload and flushes it.
    pub async fn send_raw(&mut self, payload: Bytes) -> io::Result<()> {
        self.inner.send(payload).await
    }

    /// Receives one message; the peer closing the stream is `UnexpectedEof`.
    pub async fn recv<T: DeserializeOwned>(&mut self) -> io::Result<T> {
        let payload = self.recv_raw().await?;
        self.encoding.decode(&payload)
    }

    /// Receives one payload, undecoded.
    pub async fn recv_raw(&mut self) -> io::Result<Bytes> {
        match self.inner.next().await {
            Some(Ok(payload)) => Ok(payload.freeze()),
            Some(Err(e)) => Err(e),
            None => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "peer closed the connection")),
        }
    }

    /// [`Frames::send`] within `limit`; past it, `TimedOut`.
    pub fn send_within<T: Serialize>(
        &mut self,
        limit: Duration,
        msg: &T,
    ) -> impl Future<Output = io::Result<()>> + Send + '_
    where
        S: Send,
    {
        within(limit, self.send(msg))
    }

    /// [`Frames::recv`] within `limit`; past it, `TimedOut`.
    pub async fn recv_within<T: DeserializeOwned>(&mut self, limit: Duration) -> io::Result<T> {
        within(limit, self.recv()).await
    }
}

/// Runs `f` within `limit`; past it, `TimedOut`.
pub(crate) async fn within<T>(limit: Duration, f: impl Future<Output = io::Result<T>>) -> io::Result<T> {
    match tokio::time::timeout(limit, f).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed")),
    }
}
