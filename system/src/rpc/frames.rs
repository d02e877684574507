//! A connection wrapped in the frame codec: typed messages in, typed messages out.

use std::future::Future;
use std::io;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, Stream, StreamExt};
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
        next_payload(&mut self.inner).await
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

    /// Splits the connection into a reading and a writing half, for streaming protocols that
    /// read acknowledgements in one task while another streams (a WAL sender, a replication
    /// feed). What was already received stays with the reading half.
    pub fn split(self) -> (FrameReader<S>, FrameWriter<S>) {
        let (sink, stream) = self.inner.split();
        let encoding = self.encoding;
        (FrameReader { inner: stream, encoding }, FrameWriter { inner: sink, encoding })
    }
}

/// The reading half of a split [`Frames`]; cancel-safe, as [`Frames`] is.
pub struct FrameReader<S = Conn> {
    inner: SplitStream<Framed<S, LengthDelimitedCodec>>,
    encoding: Encoding,
}

impl<S: AsyncRead + AsyncWrite + Unpin> FrameReader<S> {
    /// Receives one message within `limit`; past it, `TimedOut`.
    pub async fn recv_within<T: DeserializeOwned>(&mut self, limit: Duration) -> io::Result<T> {
        let payload = within(limit, next_payload(&mut self.inner)).await?;
        self.encoding.decode(&payload)
    }
}

/// The writing half of a split [`Frames`].
pub struct FrameWriter<S = Conn> {
    inner: SplitSink<Framed<S, LengthDelimitedCodec>, Bytes>,
    encoding: Encoding,
}

impl<S: AsyncRead + AsyncWrite + Unpin> FrameWriter<S> {
    /// Sends one message and flushes it, within `limit`; past it, `TimedOut` (drop the
    /// connection then: half a frame may be on the stream).
    pub async fn send_within<T: Serialize>(&mut self, limit: Duration, msg: &T) -> io::Result<()> {
        let payload = Bytes::from(self.encoding.encode(msg)?);
        within(limit, self.inner.send(payload)).await
    }
}

async fn next_payload(stream: &mut (impl Stream<Item = io::Result<BytesMut>> + Unpin)) -> io::Result<Bytes> {
    match stream.next().await {
        Some(Ok(payload)) => Ok(payload.freeze()),
        Some(Err(e)) => Err(e),
        None => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "peer closed the connection")),
    }
}

/// Runs `f` within `limit`; past it, `TimedOut`.
pub(crate) async fn within<T>(limit: Duration, f: impl Future<Output = io::Result<T>>) -> io::Result<T> {
    match sim::timer::timeout(limit, f).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed")),
    }
}
