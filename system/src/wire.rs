//! Length-prefixed frames: how every internal RPC of the stack delimits its messages on a stream,
//! and how a message becomes a frame's payload.
//!
//! A frame is a 4-byte little-endian length and that many bytes. Input is untrusted: a length
//! over [`MAX_FRAME`] is an error, never an allocation. [`codec`] is the one definition of that
//! format, as a `tokio_util` codec: [`crate::rpc`] wraps every connection in it. The stream
//! functions below ([`write_frame`], [`read_frame`], [`send`], [`recv`], ...) speak the same
//! format on a bare stream, for shells not yet on [`crate::rpc`]; a test holds the two together.
//!
//! Two encodings ([`Encoding`]): JSON for low-rate protocols that benefit from readable captures
//! and from serde's self-describing features (tagged enums, `Value`), and postcard for hot paths
//! such as replication, where JSON's byte arrays as number lists cost more than the protocol
//! itself. Postcard cannot decode self-describing types (`#[serde(tag)]`, `untagged`,
//! `serde_json::Value`); use JSON for those.

use std::io;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::codec::LengthDelimitedCodec;

/// The largest frame accepted (16 MiB): larger lengths mean a broken or hostile peer.
pub const MAX_FRAME: usize = 16 << 20;

/// The frame format as a codec: a 4-byte little-endian length, at most [`MAX_FRAME`].
pub fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(4)
        .little_endian()
        .max_frame_length(MAX_FRAME)
        .new_codec()
}

/// How a message is turned into a frame's payload and back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Json,
    Postcard,
}

impl Encoding {
    /// The message's bytes; a message serde cannot encode is `InvalidInput`.
    pub fn encode<T: Serialize>(self, msg: &T) -> io::Result<Vec<u8>> {
        let bytes = match self {
            Encoding::Json => serde_json::to_vec(msg).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
            Encoding::Postcard => postcard::to_stdvec(msg).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
        };
        Ok(bytes)
    }

    /// Decodes a payload; a malformed one is `InvalidData`, not a panic.
    pub fn decode<T: DeserializeOwned>(self, bytes: &[u8]) -> io::Result<T> {
        match self {
            Encoding::Json => serde_json::from_slice(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
            Encoding::Postcard => postcard::from_bytes(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
        }
    }
}

pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, payload: &[u8]) -> io::Result<()> {
    if payload.len() > MAX_FRAME {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "frame too large"));
    }
    let mut buf = Vec::with_capacity(4 + payload.len());
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(payload);
    w.write_all(&buf).await?;
    w.flush().await
}

pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).await?;
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("frame of {len} bytes")));
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await?;
    Ok(payload)
}

/// Sends one message as a JSON frame.
pub async fn send<W: AsyncWrite + Unpin, T: Serialize>(w: &mut W, msg: &T) -> io::Result<()> {
    write_frame(w, &Encoding::Json.encode(msg)?).await
}

/// Receives one JSON frame; a malformed message is `InvalidData`, not a panic.
pub async fn recv<R: AsyncRead + Unpin, T: DeserializeOwned>(r: &mut R) -> io::Result<T> {
    Encoding::Json.decode(&read_frame(r).await?)
}

/// Sends one message as a postcard frame.
pub async fn send_bin<W: AsyncWrite + Unpin, T: Serialize>(w: &mut W, msg: &T) -> io::Result<()> {
    write_frame(w, &Encoding::Postcard.encode(msg)?).await
}

/// Receives one postcard frame; a malformed message is `InvalidData`, not a panic.
pub async fn recv_bin<R: AsyncRead + Unpin, T: DeserializeOwned>(r: &mut R) -> io::Result<T> {
    Encoding::Postcard.decode(&read_frame(r).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_oversized_lengths_are_rejected() {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        send(&mut a, &vec![1u32, 2, 3]).await.unwrap();
        let got: Vec<u32> = recv(&mut b).await.unwrap();
        assert_eq!(got, [1, 2, 3]);
        send_bin(&mut a, &(7u64, vec![9u8; 3])).await.unwrap();
        let got: (u64, Vec<u8>) = recv_bin(&mut b).await.unwrap();
        assert_eq!(got, (7, vec![9, 9, 9]));
        write_frame(&mut a, &[0xff; 3]).await.unwrap();
        let err = recv_bin::<_, (u64, String)>(&mut b).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        a.write_all(&u32::MAX.to_le_bytes()).await.unwrap();
        let err = read_frame(&mut b).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    /// The codec and the stream functions are one format: each reads what the other wrote.
    #[tokio::test]
    async fn the_codec_and_the_stream_functions_agree() {
        use bytes::Bytes;
        use futures_util::{SinkExt, StreamExt};
        use tokio_util::codec::Framed;

        let (mut a, b) = tokio::io::duplex(1 << 16);
        let mut framed = Framed::new(b, codec());
        write_frame(&mut a, b"from the stream").await.unwrap();
        assert_eq!(&framed.next().await.unwrap().unwrap()[..], b"from the stream");
        framed.send(Bytes::from_static(b"from the codec")).await.unwrap();
        assert_eq!(read_frame(&mut a).await.unwrap(), b"from the codec");
        a.write_all(&((MAX_FRAME + 1) as u32).to_le_bytes()).await.unwrap();
        let err = framed.next().await.unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
