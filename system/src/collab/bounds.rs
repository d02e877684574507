//! What yrs's decoders leave unbounded, checked before they run: a pass over a v1 update, a
//! state vector or an awareness update that reads exactly what the decoder will read, and
//! refuses
//! - a count (clients, blocks, ranges, array or map entries, strings) larger than the bytes left:
//!   yrs reserves room for a count before reading its entries, so five bytes claiming four
//!   billion entries would ask for gigabytes;
//! - `Any` values (array and map contents, sub-document options) nested deeper than
//!   [`MAX_ANY_DEPTH`]: yrs decodes them recursively, and a frame of nested arrays two bytes a
//!   level would overflow the stack, which kills the process (no `catch_unwind` catches it);
//! - clocks that overflow `u32` (a block's clock plus its length, a deleted range's end): yrs adds
//!   them unchecked, which panics in a debug build and wraps in a release one;
//! - legacy JSON content, which yrs decodes and encodes differently (see [`content`]).
//!
//! Anything else malformed is left to yrs's decoders, which refuse it. The pass allocates
//! nothing.

use yrs::encoding::read::{Cursor, Read};

use super::protocol::ProtocolError;

/// Deepest nesting of `Any` arrays and maps accepted (serde_json's own limit; documents nest a
/// few levels).
pub const MAX_ANY_DEPTH: usize = 128;

type Checked = Result<(), ProtocolError>;

fn bad(what: &'static str) -> ProtocolError {
    ProtocolError::Malformed(what)
}

/// A v1 update (`yrs::Update::decode_v1`'s input).
pub fn update(bytes: &[u8]) -> Checked {
    let c = &mut Cursor::new(bytes);
    let clients: u32 = var(c)?;
    count(c, clients as u64)?;
    for _ in 0..clients {
        let blocks: u32 = var(c)?;
        count(c, blocks as u64)?;
        let _client: u64 = var(c)?;
        let mut clock: u32 = var(c)?;
        for _ in 0..blocks {
            let len = block(c)?;
            clock = clock.checked_add(len).ok_or(bad("update clock"))?;
        }
    }
    delete_set(c)
}

/// A v1 state vector (sync step 1's payload).
pub fn state_vector(bytes: &[u8]) -> Checked {
    let c = &mut Cursor::new(bytes);
    let n: u32 = var(c)?;
    count(c, n as u64)
}

/// An awareness update's buffer (`AwarenessUpdate::decode_v1`'s input).
pub fn awareness(bytes: &[u8]) -> Checked {
    let c = &mut Cursor::new(bytes);
    // A `usize` count there (a `u32` read would wrap a larger one to a small one).
    let n: u64 = var(c)?;
    count(c, n)
}

fn var<T: yrs::encoding::varint::VarInt>(c: &mut Cursor<'_>) -> Result<T, ProtocolError> {
    c.read_var().map_err(|_| bad("update"))
}

/// A count of entries, each at least a byte, must fit in what is left.
fn count(c: &Cursor<'_>, n: u64) -> Checked {
    match n <= (c.buf.len() - c.next) as u64 {
        true => Ok(()),
        false => Err(bad("count over the bytes left")),
    }
}

/// A string; returns its length in UTF-16 units, as Yjs counts a string's clock length.
fn string(c: &mut Cursor<'_>) -> Result<u32, ProtocolError> {
    c.read_string().map(|s| s.encode_utf16().count() as u32).map_err(|_| bad("update string"))
}

/// One block (`Update::decode_block`); returns its clock length.
fn block(c: &mut Cursor<'_>) -> Result<u32, ProtocolError> {
    const HAS_ORIGIN: u8 = 0b1000_0000;
    const HAS_RIGHT_ORIGIN: u8 = 0b0100_0000;
    const HAS_PARENT_SUB: u8 = 0b0010_0000;
    let info = c.read_u8().map_err(|_| bad("update"))?;
    match info {
        // Skip and GC: a length.
        10 | 0 => var(c),
        info => {
            for flag in [HAS_ORIGIN, HAS_RIGHT_ORIGIN] {
                if info & flag != 0 {
                    let _client: u64 = var(c)?;
                    let _clock: u32 = var(c)?;
                }
            }
            if info & (HAS_ORIGIN | HAS_RIGHT_ORIGIN) == 0 {
                let named: u32 = var(c)?;
                if named == 1 {
                    string(c)?;
                } else {
                    let _client: u64 = var(c)?;
                    let _clock: u32 = var(c)?;
                }
                if info & HAS_PARENT_SUB != 0 {
                    string(c)?;
                }
            }
            content(c, info & 0b1111)
        }
    }
}

/// An item's content (`ItemContent::decode`); returns its clock length.
fn content(c: &mut Cursor<'_>, kind: u8) -> Result<u32, ProtocolError> {
    match kind {
        // Deleted: a length.
        1 => var(c),
        // JSON (legacy: Yjs writes `Any` content instead since v13). yrs reads n + 1 strings of
        // a JSON content of n and writes n, so a document holding one can no longer encode its
        // state (`encode_state_as_update_v1` panics), and every later sync step 2 of the room,
        // and the document service's rebuild, would fail: refused.
        2 => Err(bad("legacy JSON content")),
        // Binary.
        3 => c.read_buf().map(|_| 1).map_err(|_| bad("update buffer")),
        // String: its length in UTF-16 units, as Yjs counts.
        4 => string(c),
        // Embed (a JSON string).
        5 => string(c).map(|_| 1),
        // Format: a key and a JSON string.
        6 => {
            string(c)?;
            string(c).map(|_| 1)
        }
        // Type: its type ref, and an XML element's name.
        7 => {
            if c.read_u8().map_err(|_| bad("update type"))? == 3 {
                string(c)?;
            }
            Ok(1)
        }
        // Any: n values.
        8 => {
            let n: u32 = var(c)?;
            count(c, n as u64)?;
            for _ in 0..n {
                any(c, 0)?;
            }
            Ok(n)
        }
        // Sub-document: a guid and options.
        9 => {
            string(c)?;
            any(c, 0).map(|_| 1)
        }
        // yrs refuses the rest.
        _ => Err(bad("update content")),
    }
}

/// One `Any` (lib0's encoding, `Any::decode`).
fn any(c: &mut Cursor<'_>, depth: usize) -> Checked {
    if depth > MAX_ANY_DEPTH {
        return Err(bad("value nested too deep"));
    }
    let short = |_| bad("update value");
    match c.read_u8().map_err(short)? {
        127 | 126 | 121 | 120 => Ok(()),
        125 => c.read_var::<i64>().map(drop).map_err(short),
        124 => c.read_f32().map(drop).map_err(short),
        123 => c.read_f64().map(drop).map_err(short),
        122 => c.read_i64().map(drop).map_err(short),
        119 => string(c).map(drop),
        118 => {
            let n: u64 = var(c)?;
            count(c, n)?;
            for _ in 0..n {
                string(c)?;
                any(c, depth + 1)?;
            }
            Ok(())
        }
        117 => {
            let n: u64 = var(c)?;
            count(c, n)?;
            for _ in 0..n {
                any(c, depth + 1)?;
            }
            Ok(())
        }
        116 => c.read_buf().map(drop).map_err(short),
        _ => Err(bad("update value")),
    }
}

/// The delete set after the blocks (`IdSet::decode`).
fn delete_set(c: &mut Cursor<'_>) -> Checked {
    let clients: u32 = var(c)?;
    count(c, clients as u64)?;
    for _ in 0..clients {
        let _client: u64 = var(c)?;
        let ranges: u32 = var(c)?;
        count(c, ranges as u64)?;
        for _ in 0..ranges {
            let clock: u32 = var(c)?;
            let len: u32 = var(c)?;
            clock.checked_add(len).ok_or(bad("deleted range"))?;
        }
    }
    Ok(())
}
