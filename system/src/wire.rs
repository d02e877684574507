//! Length-prefixed frames: how every internal RPC of the stack delimits its messages on a stream,
//! and how a message becomes a frame's payload.
//!
//! A frame is a 4-byte little-endian length and that many bytes. Input is untrusted: a length
//! over [`MAX_FRAME`] is an error, never an allocation. [`codec`] is the one definition of that
//! format, as a `tokio_util` codec: [`crate::rpc`] wraps every connection in it.
//!
//! Two encodings ([`Encoding`]): JSON for low-rate protocols that benefit from readable captures
//! and from serde's self-describing features (tagged enums, `Value`), and postcard for hot paths
//! such as replication, where JSON's byte arrays as number lists cost more than the protocol
//! itself. Postcard cannot decode self-describing types (`#[serde(tag)]`, `untagged`,
//! `serde_json::Value`); use JSON for those.

use std::io;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio_util::codec::LengthDelimitedCodec;

/// The largest frame accepted (16 MiB): larger lengths mean a broken or hostile peer.
pub const MAX_FRAME: usize = 16 << 20;

/// The frame format as a codec: a 4-byte little-endian length, at most [`MAX_FRAME`].
pub fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder().length_field_length(4).little_endian().max_frame_length(MAX_FRAME).new_codec()
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
            Encoding::Postcard => {
                postcard::to_stdvec(msg).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?
            }
        };
        Ok(bytes)
    }

    /// Decodes a payload; a malformed one is `InvalidData`, not a panic.
    pub fn decode<T: DeserializeOwned>(self, bytes: &[u8]) -> io::Result<T> {
        match self {
            Encoding::Json => serde_json::from_slice(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
            Encoding::Postcard => {
                postcard::from_bytes(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use futures_util::{SinkExt, StreamExt};
    use tokio::io::AsyncWriteExt;
    use tokio_util::codec::Framed;

    use super::*;

    #[tokio::test]
    async fn frames_round_trip_in_both_encodings_and_oversized_lengths_are_rejected() {
        let (a, b) = tokio::io::duplex(1 << 16);
        let (mut tx, mut rx) = (Framed::new(a, codec()), Framed::new(b, codec()));
        for encoding in [Encoding::Json, Encoding::Postcard] {
            tx.send(Bytes::from(encoding.encode(&(7u64, vec![9u8; 3])).unwrap())).await.unwrap();
            let got: (u64, Vec<u8>) = encoding.decode(&rx.next().await.unwrap().unwrap()).unwrap();
            assert_eq!(got, (7, vec![9, 9, 9]));
        }
        tx.send(Bytes::from_static(&[0xff; 3])).await.unwrap();
        let garbage = rx.next().await.unwrap().unwrap();
        let err = Encoding::Postcard.decode::<(u64, String)>(&garbage).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let mut raw = tx.into_inner();
        raw.write_all(&((MAX_FRAME + 1) as u32).to_le_bytes()).await.unwrap();
        let err = rx.next().await.unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    /// The length prefix is 4 bytes, little-endian, as the module says.
    #[tokio::test]
    async fn a_frame_is_a_little_endian_length_and_its_bytes() {
        use tokio::io::AsyncReadExt;
        let (a, mut b) = tokio::io::duplex(1 << 16);
        let mut tx = Framed::new(a, codec());
        tx.send(Bytes::from_static(b"abc")).await.unwrap();
        let mut raw = [0u8; 7];
        b.read_exact(&mut raw).await.unwrap();
        assert_eq!(&raw, b"\x03\x00\x00\x00abc");
    }
}
