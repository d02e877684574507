//! The y-sync wire messages an editor sends and receives (one message per WebSocket frame, v1
//! encoding), plus the stack's one extension, message type 100 `ack` (only sent to clients that
//! connected with `ack=1`): `varuint n`, then `n` × (`client`, `clock_start`,
//! `clock_end_exclusive`), each a varuint: those ranges of edits are durable.
//!
//! Decoding takes untrusted bytes: lengths are bounded and errors are returned, never panicked on.

use yrs::sync::{Message, SyncMessage};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;

use super::ydoc::{self, Sv};

/// y-sync's message type for the acknowledgement extension.
pub const MSG_ACK: u64 = 100;
/// At most this many ranges in one ack (a bound on untrusted input).
pub const MAX_ACK_RANGES: u64 = 100_000;

/// A range of one client's clocks, `start..end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct ClockRange {
    pub client: u64,
    pub start: u32,
    pub end: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    Step1(Sv),
    Step2(Vec<u8>),
    Update(Vec<u8>),
    Awareness,
    Ack(Vec<ClockRange>),
    /// A message type this client does not handle (a stock client ignores them too).
    Other(u64),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("empty frame")]
    Empty,
    #[error("truncated varuint")]
    Truncated,
    #[error("varuint overflows")]
    Overflow,
    #[error("ack with {0} ranges")]
    TooManyRanges(u64),
    #[error("bad ack range {0:?}")]
    BadRange(ClockRange),
    #[error("trailing bytes after ack")]
    Trailing,
    #[error("undecodable y-sync message: {0}")]
    Sync(String),
}

fn read_var(bytes: &[u8], at: &mut usize) -> Result<u64, FrameError> {
    let mut out: u64 = 0;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*at).ok_or(FrameError::Truncated)?;
        *at += 1;
        out |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(out);
        }
    }
    Err(FrameError::Overflow)
}

fn write_var(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub fn decode(bytes: &[u8]) -> Result<Frame, FrameError> {
    if bytes.is_empty() {
        return Err(FrameError::Empty);
    }
    let mut at = 0;
    let tag = read_var(bytes, &mut at)?;
    if tag == MSG_ACK {
        let n = read_var(bytes, &mut at)?;
        if n > MAX_ACK_RANGES {
            return Err(FrameError::TooManyRanges(n));
        }
        let mut ranges = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let client = read_var(bytes, &mut at)?;
            let (start, end) = (read_var(bytes, &mut at)?, read_var(bytes, &mut at)?);
            let r =
                ClockRange { client, start: start.min(u32::MAX as u64) as u32, end: end.min(u32::MAX as u64) as u32 };
            if start > end || end > u32::MAX as u64 {
                return Err(FrameError::BadRange(r));
            }
            ranges.push(r);
        }
        if at != bytes.len() {
            return Err(FrameError::Trailing);
        }
        return Ok(Frame::Ack(ranges));
    }
    if tag > 3 {
        return Ok(Frame::Other(tag));
    }
    match Message::decode_v1(bytes).map_err(|e| FrameError::Sync(e.to_string()))? {
        Message::Sync(SyncMessage::SyncStep1(sv)) => Ok(Frame::Step1(ydoc::to_sv(&sv))),
        Message::Sync(SyncMessage::SyncStep2(u)) => Ok(Frame::Step2(u)),
        Message::Sync(SyncMessage::Update(u)) => Ok(Frame::Update(u)),
        Message::Awareness(_) => Ok(Frame::Awareness),
        Message::Auth(_) => Ok(Frame::Other(2)),
        Message::AwarenessQuery => Ok(Frame::Other(3)),
        Message::Custom(tag, _) => Ok(Frame::Other(u64::from(tag))),
    }
}

pub fn step1(sv: &Sv) -> Vec<u8> {
    Message::Sync(SyncMessage::SyncStep1(ydoc::from_sv(sv))).encode_v1()
}

pub fn step2(update: Vec<u8>) -> Vec<u8> {
    Message::Sync(SyncMessage::SyncStep2(update)).encode_v1()
}

pub fn update(update: Vec<u8>) -> Vec<u8> {
    Message::Sync(SyncMessage::Update(update)).encode_v1()
}

/// An ack frame (what the collaboration service sends; used by tests and the attacker).
pub fn ack(ranges: &[ClockRange]) -> Vec<u8> {
    let mut out = Vec::new();
    write_var(&mut out, MSG_ACK);
    write_var(&mut out, ranges.len() as u64);
    for r in ranges {
        write_var(&mut out, r.client);
        write_var(&mut out, u64::from(r.start));
        write_var(&mut out, u64::from(r.end));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let sv = Sv::from([(3, 10), (1 << 40, 2)]);
        assert_eq!(decode(&step1(&sv)).unwrap(), Frame::Step1(sv));
        assert_eq!(decode(&step2(vec![0, 0])).unwrap(), Frame::Step2(vec![0, 0]));
        assert_eq!(decode(&update(vec![1, 2])).unwrap(), Frame::Update(vec![1, 2]));
        let ranges = vec![ClockRange { client: 300, start: 0, end: 129 }, ClockRange { client: 1, start: 5, end: 6 }];
        assert_eq!(decode(&ack(&ranges)).unwrap(), Frame::Ack(ranges));
    }

    #[test]
    fn malformed_frames_are_errors_not_panics() {
        assert_eq!(decode(&[]), Err(FrameError::Empty));
        assert_eq!(decode(&[100, 1, 5]), Err(FrameError::Truncated));
        assert_eq!(decode(&[100, 1, 1, 9, 3]), Err(FrameError::BadRange(ClockRange { client: 1, start: 9, end: 3 })));
        assert_eq!(decode(&[100, 0, 7]), Err(FrameError::Trailing));
        assert_eq!(decode(&[0xff; 11]), Err(FrameError::Overflow));
        assert!(decode(&[0, 2, 200, 1]).is_err());
        assert_eq!(decode(&[9]).unwrap(), Frame::Other(9));
        let mut big = vec![100];
        write_var(&mut big, MAX_ACK_RANGES + 1);
        assert_eq!(decode(&big), Err(FrameError::TooManyRanges(MAX_ACK_RANGES + 1)));
    }
}
