//! Version vectors: a document's yrs state vector (client id → the next clock expected from that
//! client), kept in a `BTreeMap` so that iteration, encoding and JSON are the same on every run
//! (yrs's own `StateVector` is a `HashMap`).
//!
//! The wire form is yrs's v1 state vector encoding (a lib0 varuint count, then `client, clock`
//! varuint pairs), written with the highest client first as Yjs's `writeStateVector` does, so
//! the same vector always gives the same bytes. The JSON form (how MongoDB stores it) maps the
//! client id in decimal to its clock, so a `$max` merge per field advances it.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use yrs::{ClientID, StateVector};

/// Yjs client ids are 53-bit (JavaScript safe integers); yrs asserts it.
pub const MAX_CLIENT: u64 = (1 << 53) - 1;
/// More clients than any document of a run has: a longer vector on the wire is refused.
const MAX_ENTRIES: u64 = 1 << 16;

#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VersionVector(pub BTreeMap<u64, u32>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VectorError {
    #[error("malformed state vector: {0}")]
    Malformed(&'static str),
}

impl VersionVector {
    pub fn get(&self, client: u64) -> u32 {
        self.0.get(&client).copied().unwrap_or(0)
    }

    /// Raises `client`'s clock to at least `clock`.
    pub fn raise(&mut self, client: u64, clock: u32) {
        let e = self.0.entry(client).or_insert(0);
        *e = (*e).max(clock);
    }

    /// Entry-wise maximum.
    pub fn merge(&mut self, other: &VersionVector) {
        for (c, k) in &other.0 {
            self.raise(*c, *k);
        }
    }

    /// Every entry of `other` is at most ours: we have seen everything it has.
    pub fn covers(&self, other: &VersionVector) -> bool {
        other.0.iter().all(|(c, k)| self.get(*c) >= *k)
    }

    pub fn is_empty(&self) -> bool {
        self.0.values().all(|k| *k == 0)
    }

    /// The sum of the clocks: how many items (characters, structs) the vector accounts for.
    pub fn total(&self) -> u64 {
        self.0.values().map(|k| u64::from(*k)).sum()
    }

    pub fn from_yrs(sv: &StateVector) -> Self {
        VersionVector(sv.iter().map(|(c, k)| (c.get(), *k)).collect())
    }

    pub fn to_yrs(&self) -> StateVector {
        self.0.iter().filter(|(c, _)| **c <= MAX_CLIENT).map(|(c, k)| (ClientID::new(*c), *k)).collect()
    }

    /// The v1 encoding, highest client first.
    pub fn encode_v1(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 + self.0.len() * 8);
        write_var(&mut out, self.0.len() as u64);
        for (c, k) in self.0.iter().rev() {
            write_var(&mut out, *c);
            write_var(&mut out, u64::from(*k));
        }
        out
    }

    /// Decodes a v1 state vector from untrusted bytes (bounded, never panics).
    pub fn decode_v1(bytes: &[u8]) -> Result<Self, VectorError> {
        let mut at = 0;
        let n = read_var(bytes, &mut at)?;
        if n > MAX_ENTRIES {
            return Err(VectorError::Malformed("too many entries"));
        }
        let mut v = VersionVector::default();
        for _ in 0..n {
            let client = read_var(bytes, &mut at)?;
            let clock = read_var(bytes, &mut at)?;
            if client > MAX_CLIENT {
                return Err(VectorError::Malformed("client id over 53 bits"));
            }
            let clock = u32::try_from(clock).map_err(|_| VectorError::Malformed("clock over 32 bits"))?;
            v.raise(client, clock);
        }
        if at != bytes.len() {
            return Err(VectorError::Malformed("trailing bytes"));
        }
        Ok(v)
    }

    pub fn to_hex(&self) -> String {
        hex(&self.encode_v1())
    }

    /// `{ "<client>": clock }`, as MongoDB keeps it.
    pub fn to_json(&self) -> Value {
        Value::Object(self.0.iter().map(|(c, k)| (c.to_string(), Value::from(*k))).collect::<Map<_, _>>())
    }

    /// The fields of a `$max` merge that raises a stored vector to this one.
    pub fn to_fields(&self) -> BTreeMap<String, u64> {
        self.0.iter().map(|(c, k)| (c.to_string(), u64::from(*k))).collect()
    }

    /// Reads the JSON form; fields that are not `client: clock` are ignored (the `_id` of a
    /// stored document, say).
    pub fn from_json(value: &Value) -> Self {
        let mut v = VersionVector::default();
        if let Some(map) = value.as_object() {
            for (c, k) in map {
                let (Ok(c), Some(k)) = (c.parse::<u64>(), k.as_u64()) else { continue };
                if let (true, Ok(k)) = (c <= MAX_CLIENT, u32::try_from(k)) {
                    v.raise(c, k);
                }
            }
        }
        v
    }
}

/// lib0's unsigned varint (7 bits a byte, low first).
fn write_var(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn read_var(bytes: &[u8], at: &mut usize) -> Result<u64, VectorError> {
    let mut n: u64 = 0;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*at).ok_or(VectorError::Malformed("truncated"))?;
        *at += 1;
        n |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Ok(n);
        }
    }
    Err(VectorError::Malformed("varint too long"))
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

/// Parses hex (either case); None on an odd length or a non-hex digit.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    let s = s.as_bytes();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    s.chunks(2).map(|p| Some(digit(p[0])? << 4 | digit(p[1])?)).collect()
}

/// FNV-1a, 64 bits: a stable digest of a snapshot's bytes for the immutability check (not a
/// defence against forgery; nothing here is adversarial once stored).
pub fn digest(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use yrs::updates::decoder::Decode;
    use yrs::updates::encoder::Encode;

    use super::*;

    fn vv(pairs: &[(u64, u32)]) -> VersionVector {
        let mut v = VersionVector::default();
        for (c, k) in pairs {
            v.raise(*c, *k);
        }
        v
    }

    #[test]
    fn v1_encoding_round_trips_and_matches_yrs() {
        let v = vv(&[(7, 3), (300, 1_000_000), (MAX_CLIENT, 1)]);
        let bytes = v.encode_v1();
        assert_eq!(VersionVector::decode_v1(&bytes).unwrap(), v);
        let theirs = StateVector::decode_v1(&bytes).unwrap();
        assert_eq!(VersionVector::from_yrs(&theirs), v);
        assert_eq!(VersionVector::decode_v1(&v.to_yrs().encode_v1()).unwrap(), v);
        assert_eq!(VersionVector::from_json(&v.to_json()), v);
        assert_eq!(unhex(&v.to_hex()).unwrap(), bytes);
    }

    #[test]
    fn hostile_vectors_are_refused() {
        assert!(VersionVector::decode_v1(&[]).is_err());
        assert!(VersionVector::decode_v1(&[1, 5]).is_err(), "truncated");
        assert!(VersionVector::decode_v1(&[0xff, 0xff, 0xff, 0xff, 0x7f]).is_err(), "huge count");
        let mut big = vec![1];
        write_var(&mut big, 1 << 60);
        big.push(1);
        assert!(VersionVector::decode_v1(&big).is_err(), "client over 53 bits");
        assert!(VersionVector::decode_v1(&[0, 0]).is_err(), "trailing bytes");
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
    }

    #[test]
    fn covers_is_entrywise() {
        let a = vv(&[(1, 5), (2, 3)]);
        assert!(a.covers(&vv(&[(1, 5)])));
        assert!(!a.covers(&vv(&[(3, 1)])));
        assert!(a.covers(&VersionVector::default()));
    }
}
