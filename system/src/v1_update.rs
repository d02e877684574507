//! A yrs v1 update (lib0 encoding, as `yrs::Update::decode_v1` reads it), walked without
//! allocating. One walk serves two readers:
//! - the collaboration protocol checks untrusted bytes before yrs's decoders run ([`check`]),
//!   refusing what they leave unbounded:
//!   - a count (clients, blocks, ranges, array or map entries, strings) larger than the bytes
//!     left: yrs reserves room for a count before reading its entries, so five bytes claiming
//!     four billion entries would ask for gigabytes;
//!   - `Any` values (array and map contents, sub-document options) nested deeper than
//!     [`MAX_ANY_DEPTH`]: yrs decodes them recursively, and a frame of nested arrays two bytes
//!     a level would overflow the stack, which kills the process (no `catch_unwind` catches it);
//!   - clocks that overflow `u32` (a block's clock plus its length, a deleted range's end): yrs
//!     adds them unchecked, which panics in a debug build and wraps in a release one;
//!   - legacy JSON content, which yrs decodes and encodes differently (see `content`);
//! - the document service's rebuild reads each stored operation's causal bounds
//!   ([`causal_bounds`]): decoding every update with yrs only to read them built every block,
//!   string and set on the heap and threw them away, a quarter of a rebuild of the paper trace.
//!
//! Anything else malformed is left to yrs's decoders, which refuse it.
//!
//! The layout: a varint count of clients; per client, a count of blocks, the client id and the
//! first block's clock, then the blocks (an info byte: 0 a GC range, 10 a skipped range, else an
//! item with optional origins, a parent when it has neither, an optional parent key, and content
//! of kind `info & 0b1111`); then the delete set (per client, ranges of clock and length).

use std::collections::BTreeMap;

use yrs::encoding::read::{Cursor, Read};
use yrs::Update;

/// Deepest nesting of `Any` arrays and maps accepted (serde_json's own limit; documents nest a
/// few levels).
pub const MAX_ANY_DEPTH: usize = 128;

/// What was wrong with the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed {0}")]
pub struct Malformed(pub &'static str);

type Checked = Result<(), Malformed>;

/// (client, clock) pairs, one per client, in client order.
pub type Clocks = Vec<(u64, u32)>;

/// What an operation needs integrated before it, and what it adds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// Per client it inserts for, the clock of its first item (its items continue the
    /// document's from there); per other client whose items it deletes, the end of the deleted
    /// range (the items must exist to be deleted, or yrs parks the deletion).
    pub needs: Clocks,
    /// Per client it inserts for, the end of its items.
    pub upper: Clocks,
    /// Whether it deletes anything.
    pub deletes: bool,
}

/// Checks an update before yrs decodes it.
pub fn check(bytes: &[u8]) -> Checked {
    walk(bytes, &mut ())
}

/// A v1 state vector (sync step 1's payload): its count fits its bytes.
pub fn check_state_vector(bytes: &[u8]) -> Checked {
    let c = &mut Cursor::new(bytes);
    let n: u32 = var(c)?;
    count(c, n as u64)
}

/// An awareness update's buffer (`AwarenessUpdate::decode_v1`'s input): its count fits.
pub fn check_awareness(bytes: &[u8]) -> Checked {
    let c = &mut Cursor::new(bytes);
    // A `usize` count there (a `u32` read would wrap a larger one to a small one).
    let n: u64 = var(c)?;
    count(c, n)
}

/// The causal bounds of an update's bytes, exactly as yrs's decode would give them
/// ([`of_update`]); an error for bytes [`check`] refuses.
pub fn causal_bounds(bytes: &[u8]) -> Result<Bounds, Malformed> {
    let mut sink = BoundsSink::default();
    walk(bytes, &mut sink)?;
    Ok(sink.finish())
}

/// The bounds of an update yrs decoded: the lower state vector, the insertions' ends, the
/// delete set's ends.
pub fn of_update(update: &Update) -> Bounds {
    let mut needs: BTreeMap<u64, u32> = update.state_vector_lower().iter().map(|(c, k)| (c.get(), *k)).collect();
    // yrs's `Update::state_vector` counts only clients whose blocks start at clock 0; the
    // insertions give the true upper bound of an incremental update.
    let mut upper = Clocks::new();
    for (c, ranges) in update.insertions(true).iter() {
        if let Some(end) = ranges.iter().map(|r| r.end).max() {
            upper.push((c.get(), end));
        }
    }
    upper.sort_unstable();
    for (c, ranges) in update.delete_set().iter() {
        let c = c.get();
        if upper.binary_search_by_key(&c, |(k, _)| *k).is_ok() {
            continue; // deletes of its own client's items: the insert bound covers them
        }
        if let Some(end) = ranges.iter().map(|r| r.end).max() {
            let e = needs.entry(c).or_insert(0);
            *e = (*e).max(end);
        }
    }
    Bounds { needs: needs.into_iter().collect(), upper, deletes: !update.delete_set().is_empty() }
}

/// The bounds of stored bytes: walked, else (content the walk refuses, such as legacy JSON)
/// from yrs's decode; `None` if they are not an update at all.
pub fn bounds_of_bytes(bytes: &[u8]) -> Option<Bounds> {
    use yrs::updates::decoder::Decode;
    causal_bounds(bytes).ok().or_else(|| Update::decode_v1(bytes).ok().map(|u| of_update(&u)))
}

/// What a walk reports: every block that yrs keeps (items of zero length it drops), and every
/// client's deleted ranges.
trait Sink {
    fn block(&mut self, client: u64, clock: u32, len: u32, skip: bool);
    fn deleted(&mut self, client: u64, end: u32);
}

/// [`check`] reports to nobody.
impl Sink for () {
    fn block(&mut self, _: u64, _: u32, _: u32, _: bool) {}
    fn deleted(&mut self, _: u64, _: u32) {}
}

/// Mirrors what [`of_update`] reads from yrs's decoded update: per client, the clock of its
/// first block that is not a skip (`state_vector_lower`) and the end of its last (a client
/// listed twice keeps its first start); per client of the delete set, the last listing's end
/// (yrs's `IdSet` keeps the last).
#[derive(Default)]
struct BoundsSink {
    lower: Clocks,
    upper: Clocks,
    deleted: Clocks,
}

impl Sink for BoundsSink {
    fn block(&mut self, client: u64, clock: u32, len: u32, skip: bool) {
        if skip {
            return;
        }
        if !self.lower.iter().any(|(c, _)| *c == client) {
            self.lower.push((client, clock));
        }
        let end = clock + len; // the walk checked it fits
        match self.upper.iter_mut().find(|(c, _)| *c == client) {
            Some((_, e)) => *e = (*e).max(end),
            None => self.upper.push((client, end)),
        }
    }

    fn deleted(&mut self, client: u64, end: u32) {
        match self.deleted.iter_mut().find(|(c, _)| *c == client) {
            Some((_, e)) => *e = end,
            None => self.deleted.push((client, end)),
        }
    }
}

impl BoundsSink {
    fn finish(self) -> Bounds {
        let BoundsSink { mut lower, mut upper, deleted } = self;
        lower.sort_unstable();
        upper.sort_unstable();
        let deletes = !deleted.is_empty();
        for (client, end) in deleted {
            if upper.binary_search_by_key(&client, |(c, _)| *c).is_ok() {
                continue; // deletes of its own client's items: the insert bound covers them
            }
            match lower.binary_search_by_key(&client, |(c, _)| *c) {
                Ok(i) => lower[i].1 = lower[i].1.max(end),
                Err(i) => lower.insert(i, (client, end)),
            }
        }
        Bounds { needs: lower, upper, deletes }
    }
}

fn bad(what: &'static str) -> Malformed {
    Malformed(what)
}

fn walk(bytes: &[u8], sink: &mut impl Sink) -> Checked {
    let c = &mut Cursor::new(bytes);
    let clients: u32 = var(c)?;
    count(c, clients as u64)?;
    for _ in 0..clients {
        let blocks: u32 = var(c)?;
        count(c, blocks as u64)?;
        let client: u64 = var(c)?;
        let mut clock: u32 = var(c)?;
        for _ in 0..blocks {
            let (len, skip) = block(c)?;
            if len == 0 {
                continue; // yrs drops an empty item without advancing the clock
            }
            let end = clock.checked_add(len).ok_or(bad("update clock"))?;
            sink.block(client, clock, len, skip);
            clock = end;
        }
    }
    delete_set(c, sink)
}

fn var<T: yrs::encoding::varint::VarInt>(c: &mut Cursor<'_>) -> Result<T, Malformed> {
    c.read_var().map_err(|_| bad("update"))
}

/// A count of entries, each at least a byte, must fit in what is left.
fn count(c: &Cursor<'_>, n: u64) -> Checked {
    match n <= (c.buf.len() - c.next) as u64 {
        true => Ok(()),
        false => Err(bad("count over the bytes left")),
    }
}

/// A string; returns its length in UTF-16 units, as Yjs counts a string's clock length: one
/// per character, two for those beyond the basic plane (the four-byte ones in UTF-8).
fn string(c: &mut Cursor<'_>) -> Result<u32, Malformed> {
    let s = c.read_string().map_err(|_| bad("update string"))?;
    let units = s.bytes().filter(|b| b & 0xc0 != 0x80).count() + s.bytes().filter(|b| *b >= 0xf0).count();
    u32::try_from(units).map_err(|_| bad("update string"))
}

/// One block (`Update::decode_block`); returns its clock length and whether it is a skip.
fn block(c: &mut Cursor<'_>) -> Result<(u32, bool), Malformed> {
    const HAS_ORIGIN: u8 = 0b1000_0000;
    const HAS_RIGHT_ORIGIN: u8 = 0b0100_0000;
    const HAS_PARENT_SUB: u8 = 0b0010_0000;
    let info = c.read_u8().map_err(|_| bad("update"))?;
    match info {
        // Skip and GC: a length, never zero (yrs refuses an empty one).
        10 | 0 => match var(c)? {
            0 => Err(bad("empty block")),
            len => Ok((len, info == 10)),
        },
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
            content(c, info & 0b1111).map(|len| (len, false))
        }
    }
}

/// An item's content (`ItemContent::decode`); returns its clock length.
fn content(c: &mut Cursor<'_>, kind: u8) -> Result<u32, Malformed> {
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
fn delete_set(c: &mut Cursor<'_>, sink: &mut impl Sink) -> Checked {
    let clients: u32 = var(c)?;
    count(c, clients as u64)?;
    for _ in 0..clients {
        let client: u64 = var(c)?;
        let ranges: u32 = var(c)?;
        count(c, ranges as u64)?;
        let mut end = None;
        for _ in 0..ranges {
            let clock: u32 = var(c)?;
            let len: u32 = var(c)?;
            let e = clock.checked_add(len).ok_or(bad("deleted range"))?;
            end = end.max(Some(e));
        }
        if let Some(end) = end {
            sink.deleted(client, end);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use yrs::updates::decoder::Decode;
    use yrs::{Array, Doc, GetString, Map, ReadTxn, StateVector, Text, Transact};

    use super::*;

    fn decoded(bytes: &[u8]) -> Bounds {
        of_update(&Update::decode_v1(bytes).expect("valid update"))
    }

    /// Three clients editing text (accents, CJK, newlines), a map and an array, syncing now and
    /// then: every local edit, every sync diff and every full state must walk to the bounds yrs
    /// decodes.
    #[test]
    fn causal_bounds_agree_with_yrs() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        // Offsets in UTF-16 units, as stock Yjs counts them; pieces stay in the basic plane so a
        // random position never splits a surrogate pair (an emoji is checked on its own below).
        let docs: Vec<Doc> = (1..=3).map(|c| crate::doc_update::server_doc(c * 1_000_003)).collect();
        let mut walked = 0;
        for step in 0..600 {
            let d = &docs[rng.gen_range(0..docs.len())];
            let text = d.get_or_insert_text("content");
            let meta = d.get_or_insert_map("meta");
            let list = d.get_or_insert_array("list");
            let bytes = {
                let mut t = d.transact_mut();
                let len = text.len(&t);
                match rng.gen_range(0..10) {
                    0 => {
                        meta.insert(&mut t, "title", format!("t{step}"));
                    }
                    1 => {
                        list.insert(&mut t, 0, vec![step as i64, 2]);
                    }
                    2 | 3 if len > 3 => {
                        let at = rng.gen_range(0..len - 1);
                        text.remove_range(&mut t, at, rng.gen_range(1..=(len - at).min(4)));
                    }
                    _ => {
                        let piece = ["a", "héllo ", "日本", "x\ny"][rng.gen_range(0..4)];
                        text.insert(&mut t, rng.gen_range(0..=len), piece);
                    }
                }
                t.encode_update_v1()
            };
            let mut all = vec![bytes];
            if step % 7 == 0 {
                let other = &docs[rng.gen_range(0..docs.len())];
                let sv = other.transact().state_vector();
                let diff = d.transact().encode_diff_v1(&sv);
                other.transact_mut().apply_update(Update::decode_v1(&diff).unwrap()).unwrap();
                all.push(diff);
                all.push(d.transact().encode_state_as_update_v1(&StateVector::default()));
            }
            for b in all {
                assert_eq!(causal_bounds(&b), Ok(decoded(&b)), "step {step}");
                walked += 1;
            }
        }
        assert!(walked > 600);
        assert!(!docs[0].get_or_insert_text("content").get_string(&docs[0].transact()).is_empty());
        let emoji = {
            let d = Doc::with_client_id(9);
            let text = d.get_or_insert_text("content");
            let mut t = d.transact_mut();
            text.insert(&mut t, 0, "a😀");
            t.encode_update_v1()
        };
        assert_eq!(causal_bounds(&emoji).expect("walks").upper, vec![(9, 3)], "an emoji is two UTF-16 units");
        assert_eq!(causal_bounds(&emoji), Ok(decoded(&emoji)));
    }

    #[test]
    fn junk_is_refused_without_reading_past_the_end() {
        for junk in [&[0xff, 0xff, 0xff][..], &[1, 1], &[], &[0x80; 12]] {
            assert!(causal_bounds(junk).is_err(), "{junk:?}");
            assert_eq!(bounds_of_bytes(junk), None, "{junk:?}");
        }
        // A huge declared string length.
        assert!(check(&[1, 1, 5, 0, 4 | 0x80, 5, 0, 0xff, 0xff, 0xff, 0xff, 0x0f]).is_err());
        // A count of clients over the bytes left.
        assert_eq!(check(&[0xff, 0xff, 0xff, 0xff, 0x0f]), Err(Malformed("count over the bytes left")));
    }
}
