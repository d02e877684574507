//! Checksummed record framing, shared by every WAL and log in the project.
//!
//! Frame: `[len: u32 LE][crc: u32 LE][payload; len]`.
//!
//! The checksum is CRC-32 (crc32fast) over the 4 length bytes followed by the
//! payload. Covering the length too means a run of zero bytes (a zero-filled torn
//! sector, a preallocated file) never decodes as a stream of valid empty records,
//! which it would if only the payload were checksummed (CRC-32 of nothing is 0).
//!
//! Decoding stops at the first bad record and says why, so recovery can truncate
//! the log to `valid_len` and carry on appending.

/// Bytes of framing before each payload.
pub const HEADER_LEN: usize = 8;

/// Longest payload accepted. A larger length in a header is damage, not data, and
/// must not make a reader wait for (or allocate) gigabytes.
pub const MAX_RECORD_LEN: usize = 64 << 20;

/// The result of decoding a whole log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    pub records: Vec<Vec<u8>>,
    /// Byte offset just after the last good record; truncate to this on recovery.
    pub valid_len: usize,
    pub tail: Tail,
}

/// What follows the last good record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tail {
    /// The input ended exactly after a record.
    Clean,
    /// An incomplete record at end of input: header or payload cut short. The usual
    /// outcome of a crash during an unsynced append.
    Torn { offset: usize },
    /// A record whose checksum does not match, or whose length is over
    /// `MAX_RECORD_LEN`. Damage in the middle of synced data shows up here, and so
    /// does a torn sector whose second half is garbage; only the caller knows
    /// (from what it acknowledged) which it may truncate.
    Corrupt { offset: usize },
}

impl Tail {
    /// Where the bad bytes start, if any.
    pub fn offset(&self) -> Option<usize> {
        match *self {
            Tail::Clean => None,
            Tail::Torn { offset } | Tail::Corrupt { offset } => Some(offset),
        }
    }
}

impl Decoded {
    pub fn is_clean(&self) -> bool {
        self.tail == Tail::Clean
    }
}

/// Frames one payload.
///
/// # Panics
/// If `payload` is longer than `MAX_RECORD_LEN`: writing a record no reader would
/// accept is a bug in the caller.
pub fn encode(payload: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(HEADER_LEN + payload.len());
    encode_into(&mut buf, payload);
    buf
}

/// Appends the framed payload to `buf`, so a batch can go out in one write.
///
/// # Panics
/// As [`encode`].
pub fn encode_into(buf: &mut Vec<u8>, payload: &[u8]) {
    assert!(payload.len() <= MAX_RECORD_LEN, "record of {} bytes is over MAX_RECORD_LEN", payload.len());
    let len = payload.len() as u32;
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&checksum(len, payload).to_le_bytes());
    buf.extend_from_slice(payload);
}

/// Decodes records from the start of `bytes` up to the first bad one. Never panics.
pub fn decode_all(bytes: &[u8]) -> Decoded {
    let mut records = Vec::new();
    let mut offset = 0;
    let tail = loop {
        match decode_one(&bytes[offset..]) {
            Step::End => break Tail::Clean,
            Step::Torn => break Tail::Torn { offset },
            Step::Corrupt => break Tail::Corrupt { offset },
            Step::Record(payload) => {
                records.push(payload.to_vec());
                offset += HEADER_LEN + payload.len();
            }
        }
    };
    Decoded { records, valid_len: offset, tail }
}

enum Step<'a> {
    End,
    Record(&'a [u8]),
    Torn,
    Corrupt,
}

fn decode_one(rest: &[u8]) -> Step<'_> {
    if rest.is_empty() {
        return Step::End;
    }
    let Some((len, crc)) = read_header(rest) else {
        return Step::Torn;
    };
    if len as usize > MAX_RECORD_LEN {
        return Step::Corrupt;
    }
    let Some(payload) = rest.get(HEADER_LEN..HEADER_LEN + len as usize) else {
        return Step::Torn;
    };
    if checksum(len, payload) != crc {
        return Step::Corrupt;
    }
    Step::Record(payload)
}

fn read_header(rest: &[u8]) -> Option<(u32, u32)> {
    let len = rest.get(0..4)?.try_into().ok()?;
    let crc = rest.get(4..8)?.try_into().ok()?;
    Some((u32::from_le_bytes(len), u32::from_le_bytes(crc)))
}

fn checksum(len: u32, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&len.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn log_of(payloads: &[&[u8]]) -> Vec<u8> {
        let mut buf = Vec::new();
        for p in payloads {
            encode_into(&mut buf, p);
        }
        buf
    }

    #[test]
    fn roundtrip() {
        let payloads: [&[u8]; 4] = [b"one", b"", b"three", &[0u8; 1000]];
        let log = log_of(&payloads);
        let decoded = decode_all(&log);
        assert_eq!(decoded.records, payloads.map(<[u8]>::to_vec));
        assert_eq!(decoded.valid_len, log.len());
        assert!(decoded.is_clean());
        assert_eq!(encode(b"one"), log[..HEADER_LEN + 3]);
    }

    #[test]
    fn empty_input_is_clean() {
        let d = decode_all(&[]);
        assert!(d.records.is_empty());
        assert_eq!((d.valid_len, d.tail), (0, Tail::Clean));
    }

    #[test]
    fn zeros_are_not_records() {
        let d = decode_all(&[0u8; 64]);
        assert!(d.records.is_empty());
        assert_eq!(d.tail, Tail::Corrupt { offset: 0 });
    }

    #[test]
    fn every_cut_is_torn_or_clean() {
        let log = log_of(&[b"alpha", b"beta", b"gamma"]);
        let ends = [0, 13, 25, 38];
        for cut in 0..=log.len() {
            let d = decode_all(&log[..cut]);
            let good = ends.iter().filter(|&&e| e > 0 && e <= cut).count();
            assert_eq!(d.records.len(), good, "cut {cut}");
            assert_eq!(d.valid_len, ends[good]);
            let expected = if ends.contains(&cut) { Tail::Clean } else { Tail::Torn { offset: ends[good] } };
            assert_eq!(d.tail, expected, "cut {cut}");
        }
    }

    #[test]
    fn flipped_byte_is_corrupt_at_its_record() {
        let log = log_of(&[b"alpha", b"beta", b"gamma"]);
        // Bytes of the crc or payload of the second record (13..25); its length
        // bytes are skipped because a changed length may point past the end (torn).
        for at in 17..25 {
            let mut bad = log.clone();
            bad[at] ^= 0x40;
            let d = decode_all(&bad);
            assert_eq!(d.records, vec![b"alpha".to_vec()]);
            assert_eq!(d.tail, Tail::Corrupt { offset: 13 }, "flip at {at}");
        }
    }

    #[test]
    fn absurd_length_is_corrupt_even_at_the_end() {
        let mut log = log_of(&[b"ok"]);
        log.extend_from_slice(&u32::MAX.to_le_bytes());
        log.extend_from_slice(&[0; 4]);
        let d = decode_all(&log);
        assert_eq!(d.tail, Tail::Corrupt { offset: 10 });
        assert_eq!(d.valid_len, 10);
    }

    #[test]
    #[should_panic]
    fn encode_rejects_oversized() {
        let _ = encode(&vec![0; MAX_RECORD_LEN + 1]);
    }

    /// Whatever the input, decoding never panics, and what it accepts re-encodes to
    /// exactly the accepted prefix.
    fn check_invariants(bytes: &[u8]) {
        let d = decode_all(bytes);
        assert!(d.valid_len <= bytes.len());
        let mut again = Vec::new();
        for r in &d.records {
            encode_into(&mut again, r);
        }
        assert_eq!(again, bytes[..d.valid_len]);
        match d.tail {
            Tail::Clean => assert_eq!(d.valid_len, bytes.len()),
            Tail::Torn { offset } | Tail::Corrupt { offset } => {
                assert_eq!(offset, d.valid_len);
                assert!(offset < bytes.len());
            }
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for _ in 0..2000 {
            let mut bytes = vec![0u8; rng.gen_range(0..200)];
            rng.fill(&mut bytes[..]);
            // Small lengths make the header plausible more often than pure noise does.
            if bytes.len() >= 4 && crate::ratio::Ratio::new(1, 2).draw(&mut rng) {
                bytes[0..4].copy_from_slice(&rng.gen_range(0u32..64).to_le_bytes());
            }
            check_invariants(&bytes);
        }
    }

    #[test]
    fn damaged_logs_never_panic() {
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let log = log_of(&[b"first", &[7; 300], b"", b"last record"]);
        for _ in 0..2000 {
            let mut bad = log.clone();
            for _ in 0..rng.gen_range(1..4) {
                let at = rng.gen_range(0..bad.len());
                bad[at] = rng.gen();
            }
            bad.truncate(rng.gen_range(0..=bad.len()));
            check_invariants(&bad);
        }
    }
}
