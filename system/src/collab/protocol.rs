//! The collaboration wire protocol: standard y-sync (v1 encoding, one message per WebSocket
//! frame) plus one extension, the durability acknowledgement.
//!
//! | tag | message | payload |
//! | --- | --- | --- |
//! | 0 | sync | 0 step 1 (state vector), 1 step 2 (update), 2 update — `yrs::sync::SyncMessage` |
//! | 1 | awareness | `buf` of an awareness update (`yrs::sync::awareness::AwarenessUpdate`) |
//! | 3 | awareness query | none |
//! | 100 | ack (extension) | `varuint n`, then `n × (client, clock_start, clock_end_exclusive)`, varuints |
//!
//! The ack is sent only to clients that connected with `ack=1`, so a stock Yjs client never
//! sees a tag it does not know. Tag 2 (auth) is y-websocket's server-to-client permission
//! message: a client sending it, or an ack, is refused, as is any unknown tag.
//!
//! Every frame is untrusted: its size is bounded ([`MAX_FRAME_BYTES`]), a message must fill its
//! frame exactly, updates are decoded (not only framed) before the room sees them, counts,
//! nesting and clocks yrs does not bound are checked before its decoders run ([`crate::v1_update`]), and
//! the decoders run under `catch_unwind`, because yrs asserts on some impossible inputs (a client
//! id over 53 bits) rather than returning an error. An error closes that one connection.
//!
//! ```
//! use system::collab::protocol::{decode, encode_ack, AckRange, Frame};
//!
//! let ranges = vec![AckRange { client: 7, clock_start: 0, clock_end: 3 }];
//! let bytes = encode_ack(&ranges);
//! assert_eq!(bytes, [100, 1, 7, 0, 3]);
//! assert!(matches!(decode(&bytes), Ok(Frame::Ack(r)) if r == ranges));
//! assert!(decode(&[100, 1, 7, 3, 3]).is_err()); // an empty range is malformed
//! ```

use std::panic::{catch_unwind, AssertUnwindSafe};

use serde::{Deserialize, Serialize};
use yrs::encoding::read::{Cursor, Read};
use yrs::encoding::write::Write;
use yrs::sync::awareness::AwarenessUpdate;
use yrs::sync::{Message, SyncMessage};
use yrs::updates::decoder::{Decode, DecoderV1};
use yrs::updates::encoder::{Encode, Encoder, EncoderV1};
use yrs::{IdSet, StateVector, Update};

use crate::v1_update;

/// Largest frame accepted (and the WebSocket message limit): a whole document's state in one
/// step 2 must fit. y-websocket sets no limit; ws's default `maxPayload` is 100 MiB.
pub const MAX_FRAME_BYTES: usize = 1 << 20;

/// Bytes a WebSocket reads from its stream at a time. y-sync frames are small (one edit is tens
/// of bytes); tungstenite's default 128 KiB is zeroed on every read, which costs more than the
/// whole frame handling. Larger messages still arrive, over several reads.
pub const READ_BUFFER_BYTES: usize = 16 << 10;

/// The WebSocket settings of both ends of a y-sync connection: the frame limit and the read
/// buffer above.
pub fn ws_config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(MAX_FRAME_BYTES))
        .max_frame_size(Some(MAX_FRAME_BYTES))
        .read_buffer_size(READ_BUFFER_BYTES)
}
/// Most ranges in one ack (more is malformed).
pub const MAX_ACK_RANGES: usize = 4_096;
/// Tag of the acknowledgement extension.
pub const MSG_ACK: u8 = 100;
/// Largest client id Yjs produces (53 bits, a JavaScript safe integer).
pub const MAX_CLIENT_ID: u64 = (1 << 53) - 1;

/// Edits of one client, clocks `clock_start..clock_end` (end exclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AckRange {
    pub client: u64,
    pub clock_start: u32,
    pub clock_end: u32,
}

/// One decoded frame.
#[derive(Debug)]
pub enum Frame {
    /// Sync step 1: the sender's state vector.
    SyncStep1(StateVector),
    /// Sync step 2: what the receiver lacked (an update), with its original bytes.
    SyncStep2(Vec<u8>, Update),
    /// An incremental update, with its original bytes.
    Update(Vec<u8>, Update),
    /// An awareness update (decoded; the frame is relayed as it came).
    Awareness(AwarenessUpdate),
    AwarenessQuery,
    /// The acknowledgement extension (only a server sends it).
    Ack(Vec<AckRange>),
}

/// Why a frame was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("frame of {0} bytes over the limit")]
    TooLarge(usize),
    #[error("empty frame")]
    Empty,
    #[error("undecodable {0}")]
    Malformed(&'static str),
    #[error("unknown or unexpected message tag {0}")]
    UnknownTag(u64),
    #[error("{0} trailing bytes after the message")]
    Trailing(usize),
}

impl From<v1_update::Malformed> for ProtocolError {
    fn from(m: v1_update::Malformed) -> Self {
        ProtocolError::Malformed(m.0)
    }
}

/// Decodes one frame, validating everything a room will use.
pub fn decode(frame: &[u8]) -> Result<Frame, ProtocolError> {
    if frame.len() > MAX_FRAME_BYTES {
        return Err(ProtocolError::TooLarge(frame.len()));
    }
    if frame.is_empty() {
        return Err(ProtocolError::Empty);
    }
    catch_unwind(AssertUnwindSafe(|| decode_unchecked(frame))).unwrap_or(Err(ProtocolError::Malformed("frame (panic)")))
}

fn decode_unchecked(frame: &[u8]) -> Result<Frame, ProtocolError> {
    let mut d = DecoderV1::new(Cursor::new(frame));
    let tag: u64 = d.read_var().map_err(|_| ProtocolError::Malformed("tag"))?;
    step1_bounds(frame)?;
    let out = match tag {
        0 => match SyncMessage::decode(&mut d).map_err(|_| ProtocolError::Malformed("sync message"))? {
            SyncMessage::SyncStep1(sv) => {
                if sv.iter().any(|(c, _)| c.get() > MAX_CLIENT_ID) {
                    return Err(ProtocolError::Malformed("state vector"));
                }
                Frame::SyncStep1(sv)
            }
            SyncMessage::SyncStep2(bytes) => {
                let update = decode_update(&bytes)?;
                Frame::SyncStep2(bytes, update)
            }
            SyncMessage::Update(bytes) => {
                let update = decode_update(&bytes)?;
                Frame::Update(bytes, update)
            }
        },
        1 => {
            let buf = d.read_buf().map_err(|_| ProtocolError::Malformed("awareness"))?;
            v1_update::check_awareness(buf)?;
            Frame::Awareness(AwarenessUpdate::decode_v1(buf).map_err(|_| ProtocolError::Malformed("awareness"))?)
        }
        3 => Frame::AwarenessQuery,
        100 => Frame::Ack(read_ack(&mut d)?),
        other => return Err(ProtocolError::UnknownTag(other)),
    };
    let rest = remaining(&mut d);
    if rest > 0 {
        return Err(ProtocolError::Trailing(rest));
    }
    Ok(out)
}

/// A sync step 1's state vector within its bounds ([`crate::v1_update`]); anything else about the frame
/// is the decoder's to judge.
fn step1_bounds(frame: &[u8]) -> Result<(), ProtocolError> {
    let mut c = Cursor::new(frame);
    let (Ok(0u64), Ok(0u32), Ok(sv)) = (c.read_var(), c.read_var(), c.read_buf()) else { return Ok(()) };
    Ok(v1_update::check_state_vector(sv)?)
}

fn remaining(d: &mut DecoderV1<'_>) -> usize {
    let mut n = 0;
    while d.read_u8().is_ok() {
        n += 1;
    }
    n
}

/// Decodes a v1 update, refusing client ids Yjs cannot produce.
pub fn decode_update(bytes: &[u8]) -> Result<Update, ProtocolError> {
    v1_update::check(bytes)?;
    let update = catch_unwind(AssertUnwindSafe(|| Update::decode_v1(bytes)))
        .map_err(|_| ProtocolError::Malformed("update (panic)"))?
        .map_err(|_| ProtocolError::Malformed("update"))?;
    let ids = update.insertions(true);
    if ids.client_ids().chain(update.delete_set().client_ids()).any(|c| c.get() > MAX_CLIENT_ID) {
        return Err(ProtocolError::Malformed("update client id"));
    }
    Ok(update)
}

fn read_ack(d: &mut DecoderV1<'_>) -> Result<Vec<AckRange>, ProtocolError> {
    let bad = |_| ProtocolError::Malformed("ack");
    let n: u64 = d.read_var().map_err(bad)?;
    if n as usize > MAX_ACK_RANGES {
        return Err(ProtocolError::Malformed("ack count"));
    }
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let client: u64 = d.read_var().map_err(bad)?;
        let clock_start: u32 = d.read_var().map_err(bad)?;
        let clock_end: u32 = d.read_var().map_err(bad)?;
        if client > MAX_CLIENT_ID || clock_start >= clock_end {
            return Err(ProtocolError::Malformed("ack range"));
        }
        out.push(AckRange { client, clock_start, clock_end });
    }
    Ok(out)
}

/// Sync step 1 carrying `sv`.
pub fn encode_step1(sv: &StateVector) -> Vec<u8> {
    Message::Sync(SyncMessage::SyncStep1(sv.clone())).encode_v1()
}

/// Sync step 2 carrying `update` (v1 bytes).
pub fn encode_step2(update: Vec<u8>) -> Vec<u8> {
    Message::Sync(SyncMessage::SyncStep2(update)).encode_v1()
}

/// A sync update carrying `update` (v1 bytes).
pub fn encode_update(update: Vec<u8>) -> Vec<u8> {
    Message::Sync(SyncMessage::Update(update)).encode_v1()
}

/// An awareness message of one client's state (one entry, so the bytes never depend on
/// the iteration order of yrs's `HashMap`).
pub fn encode_awareness_one(client: u64, clock: u32, json: &str) -> Vec<u8> {
    let mut e = EncoderV1::new();
    e.write_var(1u8);
    let mut inner = EncoderV1::new();
    inner.write_var(1u32);
    inner.write_var(client);
    inner.write_var(clock);
    inner.write_string(json);
    e.write_buf(inner.to_vec());
    e.to_vec()
}

/// The acknowledgement extension.
pub fn encode_ack(ranges: &[AckRange]) -> Vec<u8> {
    let mut e = EncoderV1::new();
    e.write_var(MSG_ACK);
    e.write_var(ranges.len() as u64);
    for r in ranges {
        e.write_var(r.client);
        e.write_var(r.clock_start);
        e.write_var(r.clock_end);
    }
    e.to_vec()
}

/// The (client, clock range) of every block an update inserts, deleted or not: what an
/// acknowledgement of it covers. Deletions carry no clock of their own, so an update that
/// only deletes has no ranges.
pub fn update_ranges(update: &Update) -> Vec<AckRange> {
    ranges_of(&update.insertions(true))
}

/// [`update_ranges`] from the update's insertions (`Update::insertions(true)`), for a caller
/// that already has them.
pub fn ranges_of(insertions: &IdSet) -> Vec<AckRange> {
    let mut out = Vec::new();
    for (client, ranges) in insertions.iter() {
        for r in ranges.iter() {
            if r.start < r.end {
                out.push(AckRange { client: client.get(), clock_start: r.start, clock_end: r.end });
            }
        }
    }
    out.sort();
    out
}

/// Whether an update changes nothing (a step 2 from a client that lacked nothing).
pub fn is_noop(update: &Update) -> bool {
    update.insertions(true).is_empty() && update.delete_set().is_empty()
}

#[cfg(test)]
mod tests {
    use yrs::{Doc, GetString, ReadTxn, Text, Transact};

    use super::*;

    fn typed(client: u64, text: &str) -> (Doc, Vec<u8>) {
        let doc = Doc::with_client_id(client);
        let t = doc.get_or_insert_text("t");
        let mut txn = doc.transact_mut();
        t.insert(&mut txn, 0, text);
        let update = txn.encode_update_v1();
        drop(txn);
        (doc, update)
    }

    #[test]
    fn sync_messages_round_trip() {
        let (doc, update) = typed(5, "hello");
        let sv = doc.transact().state_vector();
        match decode(&encode_step1(&sv)).unwrap() {
            Frame::SyncStep1(got) => assert_eq!(got, sv),
            other => panic!("{other:?}"),
        }
        match decode(&encode_update(update.clone())).unwrap() {
            Frame::Update(bytes, u) => {
                assert_eq!(bytes, update);
                assert_eq!(update_ranges(&u), vec![AckRange { client: 5, clock_start: 0, clock_end: 5 }]);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(decode(&encode_step2(update)).unwrap(), Frame::SyncStep2(..)));
        assert!(matches!(decode(&[3]).unwrap(), Frame::AwarenessQuery));
    }

    #[test]
    fn awareness_round_trips() {
        let bytes = encode_awareness_one(9, 2, "{\"user\":\"a\"}");
        match decode(&bytes).unwrap() {
            Frame::Awareness(a) => {
                let e = &a.clients[&yrs::ClientID::new(9)];
                assert_eq!((e.clock, &*e.json), (2, "{\"user\":\"a\"}"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ack_ranges_from_a_later_update_start_at_its_clock() {
        let (doc, _) = typed(5, "ab");
        let t = doc.get_or_insert_text("t");
        let mut txn = doc.transact_mut();
        t.insert(&mut txn, 2, "cde");
        let u = Update::decode_v1(&txn.encode_update_v1()).unwrap();
        drop(txn);
        assert_eq!(update_ranges(&u), vec![AckRange { client: 5, clock_start: 2, clock_end: 5 }]);
        assert_eq!(t.get_string(&doc.transact()), "abcde");
    }

    #[test]
    fn malformed_frames_are_errors() {
        let (_, update) = typed(5, "hello");
        let mut framed = encode_update(update);
        let bad: Vec<Vec<u8>> = vec![
            vec![],
            vec![0],
            vec![0, 7, 0],
            vec![0, 2, 5, 1, 2],
            vec![0, 2, 200, 200, 200, 200, 200, 200, 200, 200, 200, 1],
            vec![1, 3, 1],
            vec![2, 0],
            vec![42, 0],
            vec![100, 1, 1, 5, 2],
            vec![100, 1, 5],
            vec![100, 0, 7],
            vec![0xff; 11],
            vec![100, 200, 200, 200, 1],
            vec![100, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0, 1],
            {
                framed.push(0);
                framed.clone()
            },
            framed[..framed.len() - 3].to_vec(),
            vec![0; MAX_FRAME_BYTES + 1],
        ];
        for b in bad {
            assert!(decode(&b).is_err(), "{:?} decoded", &b[..b.len().min(16)]);
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let (_, update) = typed(5, "hello world");
        let good = encode_update(update);
        for _ in 0..3_000 {
            let mut b = good.clone();
            for _ in 0..rng.gen_range(1..4) {
                let i = rng.gen_range(0..b.len());
                b[i] = rng.gen();
            }
            let _ = decode(&b);
            let n = rng.gen_range(0..24);
            let junk: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
            let _ = decode(&junk);
        }
    }

    #[test]
    fn noop_update_is_recognised() {
        let doc = Doc::with_client_id(3);
        let empty = doc.transact().encode_state_as_update_v1(&StateVector::default());
        assert!(is_noop(&decode_update(&empty).unwrap()));
        let (_, update) = typed(5, "x");
        assert!(!is_noop(&decode_update(&update).unwrap()));
    }
}
