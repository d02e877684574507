//! An operation's causal bounds, read straight from its yrs v1 bytes: what must be integrated
//! before it (per client, the clock its items continue from, and the end of the items it
//! deletes of other clients) and what it adds (per client, the end of its items).
//!
//! [`super::rebuild`] needs the bounds of every stored operation before it applies any, to
//! order them. Decoding each update with yrs only to read its bounds built every block, string
//! and set on the heap and threw them away, and the update was decoded again to be applied: a
//! quarter of a rebuild of the paper trace. [`scan`] walks the bytes without allocating. It
//! reads the block kinds text documents hold (strings and deleted ranges, under any parent);
//! for any other content, or anything it does not fully understand, it answers `None` and the
//! caller reads the bounds from yrs's own decode ([`of_update`]), so the two always agree where
//! `scan` answers (a test holds them to it).
//!
//! The layout (lib0 v1, as `yrs::Update::decode_v1` reads it): a varint count of clients; per
//! client, a count of blocks, the client id and the first block's clock, then the blocks (an
//! info byte: 0 a GC range, 10 a skipped range, else an item with optional origins, a parent
//! when it has neither, an optional parent key, and content of kind `info & 0b1111`); then the
//! delete set (per client, ranges of clock and length).

use std::collections::BTreeMap;

use yrs::Update;

/// (client, clock) pairs, one per client, in client order.
pub type Clocks = Vec<(u64, u32)>;

/// What an operation needs and adds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// Per client it inserts for, the clock of its first item; per other client whose items it
    /// deletes, the end of the deleted range.
    pub needs: Clocks,
    /// Per client it inserts for, the end of its items.
    pub upper: Clocks,
    /// Whether it deletes anything.
    pub deletes: bool,
}

const GC: u8 = 0;
const SKIP: u8 = 10;
const DELETED: u8 = 1;
const STRING: u8 = 4;
const HAS_ORIGIN: u8 = 0b1000_0000;
const HAS_RIGHT_ORIGIN: u8 = 0b0100_0000;
const HAS_PARENT_SUB: u8 = 0b0010_0000;

/// The bounds read from the bytes, or `None` when they hold anything but string and deleted
/// items, or are not a well-formed update.
pub fn scan(bytes: &[u8]) -> Option<Bounds> {
    let mut r = Reader { buf: bytes, at: 0 };
    let mut lower = Clocks::new();
    let mut upper = Clocks::new();
    let clients = r.var_u32()?;
    for _ in 0..clients {
        let blocks = r.var_u32()?;
        let client = r.var_u64()?;
        let mut clock = r.var_u32()?;
        let mut first = None;
        for _ in 0..blocks {
            let info = r.byte()?;
            let len = match info {
                SKIP => {
                    // A gap: neither needed nor inserted.
                    clock = clock.checked_add(r.nonzero_u32()?)?;
                    continue;
                }
                GC => r.nonzero_u32()?,
                _ => r.item_len(info)?,
            };
            if len == 0 {
                continue; // yrs drops an empty item without advancing the clock
            }
            first.get_or_insert(clock);
            clock = clock.checked_add(len)?;
        }
        if let Some(start) = first {
            // A client listed twice: rare enough to leave to yrs.
            if lower.iter().any(|(c, _)| *c == client) {
                return None;
            }
            lower.push((client, start));
            upper.push((client, clock));
        }
    }
    lower.sort_unstable();
    upper.sort_unstable();
    let mut needs = lower;
    let mut deletes = false;
    let mut seen: Vec<u64> = Vec::new();
    for _ in 0..r.var_u32()? {
        let client = r.var_u64()?;
        let ranges = r.var_u32()?;
        if ranges == 0 || seen.contains(&client) {
            return None;
        }
        seen.push(client);
        let mut end = 0u32;
        for _ in 0..ranges {
            let clock = r.var_u32()?;
            end = end.max(clock.checked_add(r.nonzero_u32()?)?);
        }
        deletes = true;
        if upper.binary_search_by_key(&client, |(c, _)| *c).is_ok() {
            continue; // deletes of its own client's items: the insert bound covers them
        }
        match needs.binary_search_by_key(&client, |(c, _)| *c) {
            Ok(i) => needs[i].1 = needs[i].1.max(end),
            Err(i) => needs.insert(i, (client, end)),
        }
    }
    Some(Bounds { needs, upper, deletes })
}

/// The bounds of an update yrs decoded (for content [`scan`] leaves to yrs).
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
            continue;
        }
        if let Some(end) = ranges.iter().map(|r| r.end).max() {
            let e = needs.entry(c).or_insert(0);
            *e = (*e).max(end);
        }
    }
    Bounds { needs: needs.into_iter().collect(), upper, deletes: !update.delete_set().is_empty() }
}

/// The bounds of an operation's bytes: scanned, else decoded; `None` if they are not an update.
pub fn of_bytes(bytes: &[u8]) -> Option<Bounds> {
    use yrs::updates::decoder::Decode;
    scan(bytes).or_else(|| Update::decode_v1(bytes).ok().map(|u| of_update(&u)))
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    /// lib0's unsigned varint: seven bits a byte, least significant first.
    fn var_u64(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            let bits = u64::from(b & 0x7f);
            if shift == 63 && bits > 1 {
                return None; // past 64 bits: leave the verdict to yrs
            }
            value |= bits << shift;
            if b & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    fn var_u32(&mut self) -> Option<u32> {
        u32::try_from(self.var_u64()?).ok()
    }

    fn nonzero_u32(&mut self) -> Option<u32> {
        self.var_u32().filter(|n| *n > 0)
    }

    fn id(&mut self) -> Option<()> {
        self.var_u64()?;
        self.var_u32()?;
        Some(())
    }

    /// A length-prefixed UTF-8 string (yrs refuses invalid UTF-8, so this does too).
    fn string(&mut self) -> Option<&str> {
        let len = self.var_u32()? as usize;
        let end = self.at.checked_add(len)?;
        let bytes = self.buf.get(self.at..end)?;
        self.at = end;
        std::str::from_utf8(bytes).ok()
    }

    /// Reads an item's header and content; its length in clock units (yrs counts a string in
    /// UTF-16 code units), or `None` for content left to yrs.
    fn item_len(&mut self, info: u8) -> Option<u32> {
        if info & HAS_ORIGIN != 0 {
            self.id()?;
        }
        if info & HAS_RIGHT_ORIGIN != 0 {
            self.id()?;
        }
        if info & (HAS_ORIGIN | HAS_RIGHT_ORIGIN) == 0 {
            if self.var_u32()? == 1 {
                self.string()?; // a root type's name
            } else {
                self.id()?; // a nested type's id
            }
            if info & HAS_PARENT_SUB != 0 {
                self.string()?;
            }
        }
        match info & 0b1111 {
            DELETED => self.var_u32(),
            STRING => {
                let s = self.string()?;
                // UTF-16 units: one per character, two for those beyond the basic plane
                // (the four-byte ones in UTF-8).
                let units = s.bytes().filter(|b| b & 0xc0 != 0x80).count() + s.bytes().filter(|b| *b >= 0xf0).count();
                u32::try_from(units).ok()
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use yrs::updates::decoder::Decode;
    use yrs::{Doc, GetString, Map, ReadTxn, StateVector, Text, Transact};

    use super::*;

    fn decoded(bytes: &[u8]) -> Bounds {
        of_update(&Update::decode_v1(bytes).expect("valid update"))
    }

    /// Two or three clients editing text (with emoji and accents), syncing now and then: every
    /// local edit, every sync diff and every full state must scan to what yrs decodes.
    #[test]
    fn scan_agrees_with_yrs_on_text_updates() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        // Offsets in UTF-16 units, as stock Yjs counts them; pieces stay in the basic plane so a
        // random position never splits a surrogate pair (an emoji is checked on its own below).
        let docs: Vec<Doc> = (1..=3)
            .map(|c| {
                Doc::with_options(yrs::Options {
                    offset_kind: yrs::OffsetKind::Utf16,
                    ..yrs::Options::with_client_id(yrs::block::ClientID::new(c * 1_000_003))
                })
            })
            .collect();
        let mut scanned = 0;
        for step in 0..600 {
            let d = &docs[rng.gen_range(0..docs.len())];
            let text = d.get_or_insert_text("content");
            let bytes = {
                let mut t = d.transact_mut();
                let len = text.len(&t);
                if len > 3 && rng.gen_bool(0.3) {
                    let at = rng.gen_range(0..len - 1);
                    text.remove_range(&mut t, at, rng.gen_range(1..=(len - at).min(4)));
                } else {
                    let piece = ["a", "héllo ", "日本", "x\ny"][rng.gen_range(0..4)];
                    text.insert(&mut t, rng.gen_range(0..=len), piece);
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
                let s = scan(&b).expect("text updates scan");
                assert_eq!(s, decoded(&b), "step {step}");
                scanned += 1;
            }
        }
        assert!(scanned > 600);
        let emoji = {
            let d = Doc::with_client_id(9);
            let text = d.get_or_insert_text("content");
            let mut t = d.transact_mut();
            text.insert(&mut t, 0, "a😀");
            t.encode_update_v1()
        };
        assert_eq!(scan(&emoji).expect("scans").upper, vec![(9, 3)], "an emoji is two UTF-16 units");
        assert_eq!(scan(&emoji), Some(decoded(&emoji)));
        assert!(!docs[0].get_or_insert_text("content").get_string(&docs[0].transact()).is_empty());
    }

    #[test]
    fn other_content_and_junk_are_left_to_yrs() {
        let d = Doc::with_client_id(5);
        let map = d.get_or_insert_map("meta");
        let bytes = {
            let mut t = d.transact_mut();
            map.insert(&mut t, "title", "plan");
            t.encode_update_v1()
        };
        assert_eq!(scan(&bytes), None, "an Any value is not scanned");
        assert_eq!(of_bytes(&bytes), Some(decoded(&bytes)));
        for junk in [&[0xff, 0xff, 0xff][..], &[1, 1], &[], &[0x80; 12]] {
            assert_eq!(scan(junk), None, "{junk:?}");
        }
        // A huge declared string length is refused without reading past the end.
        assert_eq!(scan(&[1, 1, 5, 0, 4 | HAS_ORIGIN, 5, 0, 0xff, 0xff, 0xff, 0xff, 0x0f]), None);
    }
}
